/* Register-only fused multiply-add throughput: the ceiling that the benchmark suite
 * measures SGEMM against. Twelve independent chains per thread hide the FMA latency
 * (4 cycles, two pipes: 8 would do); nothing touches memory inside the loop. */
#include "internal.h"

#if PD_X86
#include "simd.h"
#endif

#define PEAK_CHAINS 12
#define PD_MAX_PEAK_TASKS 64 /* pd_parallel's cap */

typedef struct peak_job {
    int32_t isa;
    int64_t rounds; /* per task */
    float sink[PD_MAX_PEAK_TASKS];
} peak_job;

/* (no FMA instruction to count on here: a multiply and an add, two flops) */
static float peak_scalar(int64_t rounds) {
    float a[PEAK_CHAINS];
    for (int j = 0; j < PEAK_CHAINS; j++) {
        a[j] = 0.1f * (float)j;
    }
    for (int64_t r = 0; r < rounds; r++) {
        for (int j = 0; j < PEAK_CHAINS; j++) {
            a[j] = a[j] * 0.999f + 0.001f;
        }
    }
    float s = 0.0f;
    for (int j = 0; j < PEAK_CHAINS; j++) {
        s += a[j];
    }
    return s;
}

#if PD_X86
PD_TARGET_AVX2 static float peak_avx2(int64_t rounds) {
    __m256 a[PEAK_CHAINS];
    const __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
    for (int j = 0; j < PEAK_CHAINS; j++) {
        a[j] = _mm256_set1_ps(0.1f * (float)j);
    }
    for (int64_t r = 0; r < rounds; r++) {
#pragma GCC unroll 12
        for (int j = 0; j < PEAK_CHAINS; j++) {
            a[j] = _mm256_fmadd_ps(a[j], b, c);
        }
    }
    float s = 0.0f;
    for (int j = 0; j < PEAK_CHAINS; j++) {
        s += _mm256_cvtss_f32(a[j]);
    }
    return s;
}

PD_TARGET_AVX512 static float peak_avx512(int64_t rounds) {
    __m512 a[PEAK_CHAINS];
    const __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
    for (int j = 0; j < PEAK_CHAINS; j++) {
        a[j] = _mm512_set1_ps(0.1f * (float)j);
    }
    for (int64_t r = 0; r < rounds; r++) {
#pragma GCC unroll 12
        for (int j = 0; j < PEAK_CHAINS; j++) {
            a[j] = _mm512_fmadd_ps(a[j], b, c);
        }
    }
    float s = 0.0f;
    for (int j = 0; j < PEAK_CHAINS; j++) {
        s += _mm512_cvtss_f32(a[j]);
    }
    return s;
}
#endif

static void peak_task(void *ctx, int32_t t, int32_t n_tasks) {
    peak_job *j = ctx;
    (void)n_tasks;
    float s = 0.0f;
#if PD_X86
    if (j->isa == PD_ISA_AVX512) {
        s = peak_avx512(j->rounds);
    } else if (j->isa == PD_ISA_AVX2) {
        s = peak_avx2(j->rounds);
    } else
#endif
    {
        s = peak_scalar(j->rounds);
    }
    j->sink[t] = s; /* (a result, so the loop is not optimised away) */
}

int64_t pd_fma_peak(int64_t flops) {
    if (flops < 0) {
        return -1;
    }
    const int32_t isa = pd_isa_active();
    const int64_t lanes = isa == PD_ISA_AVX512 ? 16 : isa == PD_ISA_AVX2 ? 8 : 1;
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
