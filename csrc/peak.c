/* Register-only fused multiply-add throughput: the ceiling that the benchmark suite
 * measures SGEMM against. Twelve independent chains per thread hide the FMA latency
 * (4 cycles, two pipes: 8 would do); nothing touches memory inside the loop. */
#include "internal.h"

#if PD_X86
#include "simd.h"
#endif

#define PEAK_CHAINS 12 /* (PEAK_BODY's) */
#define PD_MAX_PEAK_TASKS 64 /* pd_parallel's cap */

typedef struct peak_job {
    int32_t isa;
    int64_t rounds; /* per task */
    float sink[PD_MAX_PEAK_TASKS];
} peak_job;

/* Twelve chains v = v * b + c, `rounds` times, then the sum of their first lanes (a
 * result, so the loop is not optimised away). Named variables, not an array: they
 * stay in registers even at -O1 (the sanitizer build), where an array did not. */
#define PEAK_BODY(T, SET1, FMA, FIRST)                                                   \
    const T b = SET1(0.999f), c = SET1(0.001f);                                          \
    T v0 = SET1(0.0f), v1 = SET1(0.1f), v2 = SET1(0.2f), v3 = SET1(0.3f);                \
    T v4 = SET1(0.4f), v5 = SET1(0.5f), v6 = SET1(0.6f), v7 = SET1(0.7f);                \
    T v8 = SET1(0.8f), v9 = SET1(0.9f), v10 = SET1(1.0f), v11 = SET1(1.1f);              \
    for (int64_t r = 0; r < rounds; r++) {                                               \
        v0 = FMA(v0, b, c);                                                              \
        v1 = FMA(v1, b, c);                                                              \
        v2 = FMA(v2, b, c);                                                              \
        v3 = FMA(v3, b, c);                                                              \
        v4 = FMA(v4, b, c);                                                              \
        v5 = FMA(v5, b, c);                                                              \
        v6 = FMA(v6, b, c);                                                              \
        v7 = FMA(v7, b, c);                                                              \
        v8 = FMA(v8, b, c);                                                              \
        v9 = FMA(v9, b, c);                                                              \
        v10 = FMA(v10, b, c);                                                            \
        v11 = FMA(v11, b, c);                                                            \
    }                                                                                    \
    return FIRST(v0) + FIRST(v1) + FIRST(v2) + FIRST(v3) + FIRST(v4) + FIRST(v5) +       \
           FIRST(v6) + FIRST(v7) + FIRST(v8) + FIRST(v9) + FIRST(v10) + FIRST(v11)

/* (no FMA instruction to count on here: a multiply and an add, two flops) */
#define SC_SET1(x) (x)
#define SC_FMA(v, b, c) ((v) * (b) + (c))
#define SC_FIRST(v) (v)
static float peak_scalar(int64_t rounds) { PEAK_BODY(float, SC_SET1, SC_FMA, SC_FIRST); }

#if PD_X86
PD_TARGET_AVX2 static float peak_avx2(int64_t rounds) {
    PEAK_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_cvtss_f32);
}

/* (through a cast: SIMDe has no _mm512_cvtss_f32) */
#define AX_FIRST(v) _mm256_cvtss_f32(_mm512_castps512_ps256(v))
PD_TARGET_AVX512 static float peak_avx512(int64_t rounds) {
    PEAK_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, AX_FIRST);
}
#endif

static void peak_task(void *ctx, int32_t t, int32_t n_tasks) {
    peak_job *j = ctx;
    (void)n_tasks;
    float s = 0.0f;
#if PD_X86
    if (j->isa == PD_ISA_AVX512) {
        s = peak_avx512(j->rounds);
    } else if (j->isa == PD_ISA_AVX2 || j->isa == PD_ISA_ZEN4) { /* zen4's SGEMM is ymm */
        s = peak_avx2(j->rounds);
    } else
#endif
    {
        s = peak_scalar(j->rounds);
    }
    j->sink[t] = s;
}

int64_t pd_fma_peak(int64_t flops) {
    if (flops < 0) {
        return -1;
    }
    const int32_t isa = pd_isa_active();
    const int64_t lanes = isa == PD_ISA_AVX512 ? 16 : isa == PD_ISA_SCALAR ? 1 : 8;
    int32_t tasks = pd_get_num_threads();
    if (tasks > PD_MAX_PEAK_TASKS) {
        tasks = PD_MAX_PEAK_TASKS;
    }
    const int64_t per_round = 2 * PEAK_CHAINS * lanes; /* flops of one round, one task */
    peak_job j = {.isa = isa, .rounds = flops / (per_round * tasks)};
    if (pd_parallel(tasks, peak_task, &j) != PD_OK) {
        return -1;
    }
    return j.rounds * per_round * tasks;
}
