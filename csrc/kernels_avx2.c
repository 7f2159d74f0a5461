/* AVX2+FMA kernels. Philox runs on 4 blocks per vector and 3 vectors at once, so
 * one iteration yields 12 mask bytes = 96 elements. */
#include "internal.h"

#if PD_X86
#include <string.h>

#include "ref.h"
#include "simd.h"

/* Philox on 4 consecutive blocks per vector, one block per 64-bit slot, its words in
 * the even 32-bit slots. _mm256_mul_epu32 reads only even slots and returns the
 * full 64-bit product, so a round needs no lane shuffles: hi is one 64-bit shift
 * away and lo is already in place. Odd slots carry junk that no result reads.
 *
 * Per-call constants. In rounds 0 and 1 only the counter word c0 differs between
 * blocks, so the products that involve only (stream, step, key) are computed once,
 * in scalar code, and those rounds cost about half of a general one. */
typedef struct {
    __m256i k0[10], k1[10]; /* the key schedule, broadcast (rounds 2..9 use it) */
    __m256i c, d, e, l0;    /* round 0/1 constants, named as in philox4 */
} philox_plan;

PD_TARGET_AVX2 static inline void plan_init(philox_plan *pl, const uint32_t key[2],
                                            uint32_t stream, uint64_t step) {
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        pl->k0[r] = _mm256_set1_epi32((int)k0);
        pl->k1[r] = _mm256_set1_epi32((int)k1);
        k0 += PD_PHILOX_W0;
        k1 += PD_PHILOX_W1;
    }
    /* round 0: c0' = hi(c2 * M1) ^ c1 ^ k0 =: a and c1' = lo(c2 * M1) =: b are the
     * same for every block; c2' = hi(c0 * M0) ^ (c3 ^ k1) */
    uint64_t p1 = (uint64_t)PD_PHILOX_M1 * (uint32_t)step;
    uint32_t a = (uint32_t)(p1 >> 32) ^ stream ^ key[0], b = (uint32_t)p1;
    uint32_t c = (uint32_t)(step >> 32) ^ key[1];
    /* round 1: c0 * M0 = a * M0 is the same for every block too */
    uint64_t p0 = (uint64_t)PD_PHILOX_M0 * a;
    pl->c = _mm256_set1_epi32((int)c);
    pl->d = _mm256_set1_epi32((int)(b ^ (key[0] + PD_PHILOX_W0)));
    pl->e = _mm256_set1_epi32((int)((uint32_t)(p0 >> 32) ^ (key[1] + PD_PHILOX_W1)));
    pl->l0 = _mm256_set1_epi32((int)(uint32_t)p0);
}

/* Vectors per main-loop iteration. One vector's rounds are a latency chain
 * (multiply -> shift -> xor); three independent chains (12 blocks) hide it, and
 * more (4, 6, 8 measured on Zen 3) only add spills without running faster. */
#define WIDE 3

/* Philox4x32-10 for blocks first..first+4*nv-1: w[v][j] is word j of blocks
 * first+4v..first+4v+3. Called with a constant nv, so the loops unroll into
 * registers. */
PD_TARGET_AVX2 static inline __attribute__((always_inline)) void
philox4(__m256i w[][4], int nv, uint32_t first, const philox_plan *pl) {
    const __m256i m0 = _mm256_set1_epi32((int)PD_PHILOX_M0);
    const __m256i m1 = _mm256_set1_epi32((int)PD_PHILOX_M1);
    for (int v = 0; v < nv; v++) {
        __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32((int)(first + 4u * (uint32_t)v)),
                                      _mm256_setr_epi32(0, 0, 1, 0, 2, 0, 3, 0));
        /* round 0: c2 = hi(c0 * M0) ^ c;  c3 = lo(c0 * M0)  (c0, c1 are constants) */
        __m256i p = _mm256_mul_epu32(c0, m0);
        __m256i c2 = _mm256_xor_si256(_mm256_srli_epi64(p, 32), pl->c);
        /* round 1: c0 = hi(c2 * M1) ^ d;  c1 = lo(c2 * M1);  c2 = c3 ^ e;  c3 = l0 */
        __m256i q = _mm256_mul_epu32(c2, m1);
        w[v][0] = _mm256_xor_si256(_mm256_srli_epi64(q, 32), pl->d);
        w[v][1] = q;
        w[v][2] = _mm256_xor_si256(p, pl->e);
        w[v][3] = pl->l0;
    }
#pragma GCC unroll 8
    for (int r = 2; r < 10; r++) {
        for (int v = 0; v < nv; v++) {
            /* p0 = hi0:lo0 = c0 * M0, p1 = hi1:lo1 = c2 * M1 (per 64-bit slot) */
            __m256i p0 = _mm256_mul_epu32(w[v][0], m0), p1 = _mm256_mul_epu32(w[v][2], m1);
            /* c0 = hi1 ^ c1 ^ k0;  c1 = lo1;  c2 = hi0 ^ c3 ^ k1;  c3 = lo0 */
            w[v][0] = _mm256_xor_si256(_mm256_srli_epi64(p1, 32), _mm256_xor_si256(w[v][1], pl->k0[r]));
            w[v][2] = _mm256_xor_si256(_mm256_srli_epi64(p0, 32), _mm256_xor_si256(w[v][3], pl->k1[r]));
            w[v][1] = p1;
            w[v][3] = p0;
        }
    }
}

/* Keep decisions of the 4 blocks in w[4] as 16-bit lanes (0xffff = keep): slot s of
 * k01 holds elements 0..3 of block s, slot s of k23 elements 4..7. u >= t is
 * max_epu16(u, t) == u (t < 2^16 here). */
PD_TARGET_AVX2 static inline void keep4(const __m256i w[4], __m256i tv, __m256i *k01,
                                        __m256i *k23) {
    /* words 0 and 1 (2 and 3) of a block side by side in its 64-bit slot */
    __m256i m01 = _mm256_blend_epi32(w[0], _mm256_slli_epi64(w[1], 32), 0xAA);
    __m256i m23 = _mm256_blend_epi32(w[2], _mm256_slli_epi64(w[3], 32), 0xAA);
    *k01 = _mm256_cmpeq_epi16(_mm256_max_epu16(m01, tv), m01);
    *k23 = _mm256_cmpeq_epi16(_mm256_max_epu16(m23, tv), m23);
}

/* The 4 mask bytes of keep4's result: one 8-lane row per block, packed to bytes. */
PD_TARGET_AVX2 static inline uint32_t mask4(__m256i k01, __m256i k23) {
    __m256i rows = _mm256_packs_epi16(_mm256_unpacklo_epi64(k01, k23),
                                      _mm256_unpackhi_epi64(k01, k23));
    return (uint32_t)_mm256_movemask_epi8(rows);
}

/* y = keep ? x * s : +0.0 for the 32 elements of keep4's 4 blocks. */
PD_TARGET_AVX2 static inline void apply4(__m256i k01, __m256i k23, const float *x, float *y,
                                         __m256 sv) {
    /* 16-bit keeps widened to 32-bit lanes: lo* hold blocks 0 | 2, hi* blocks 1 | 3 */
    __m256i lo01 = _mm256_unpacklo_epi16(k01, k01), hi01 = _mm256_unpackhi_epi16(k01, k01);
    __m256i lo23 = _mm256_unpacklo_epi16(k23, k23), hi23 = _mm256_unpackhi_epi16(k23, k23);
    __m256i keep[4] = {_mm256_permute2x128_si256(lo01, lo23, 0x20),
                       _mm256_permute2x128_si256(hi01, hi23, 0x20),
                       _mm256_permute2x128_si256(lo01, lo23, 0x31),
                       _mm256_permute2x128_si256(hi01, hi23, 0x31)};
    for (int s = 0; s < 4; s++) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * s), sv);
        _mm256_storeu_ps(y + 8 * s, _mm256_and_ps(v, _mm256_castsi256_ps(keep[s])));
    }
}

PD_TARGET_AVX2 static void philox_avx2(const uint32_t key[2], uint32_t stream, uint64_t step,
                                       uint64_t first, int64_t n, uint32_t *out) {
    philox_plan pl;
    plan_init(&pl, key, stream, step);
    int64_t b = 0;
    for (; b + 4 <= n; b += 4) {
        __m256i w[1][4];
        philox4(w, 1, (uint32_t)(first + (uint64_t)b), &pl);
        for (int j = 0; j < 4; j++) {
            uint32_t lanes[8];
            _mm256_storeu_si256((__m256i *)lanes, w[0][j]);
            for (int s = 0; s < 4; s++) {
                out[4 * (b + s) + j] = lanes[2 * s];
            }
        }
    }
    pd_philox_blocks_scalar(key, stream, step, first + (uint64_t)b, n - b, out + 4 * b);
}

/* Blocks b..b+4*nv-1 of drop_avx2 (all 8 elements of each exist); nv is a constant
 * at every call, so the loops unroll into registers. */
PD_TARGET_AVX2 static inline __attribute__((always_inline)) void
drop_blocks(int nv, int64_t b, uint64_t first, const philox_plan *pl, __m256i tv, __m256 sv,
            const float *x, float *y, uint8_t *mask) {
    __m256i w[WIDE][4];
    philox4(w, nv, (uint32_t)(first + (uint64_t)b), pl);
    for (int v = 0; v < nv; v++) {
        __m256i k01, k23;
        keep4(w[v], tv, &k01, &k23);
        if (mask != NULL) {
            uint32_t bits = mask4(k01, k23);
            memcpy(mask + b + 4 * v, &bits, 4);
        }
        apply4(k01, k23, x + 8 * (b + 4 * v), y + 8 * (b + 4 * v), sv);
    }
}

/* Mask and apply in one pass: the element loads and stores overlap the Philox
 * arithmetic, and the keeps reach the floats without a round trip through bits. */
PD_TARGET_AVX2 static void drop_avx2(const uint32_t key[2], uint32_t stream, uint64_t step,
                                     uint64_t first, const float *x, float *y, int64_t n,
                                     uint32_t t, float s, uint8_t *mask) {
    philox_plan pl;
    plan_init(&pl, key, stream, step);
    const __m256i tv = _mm256_set1_epi16((short)t);
    const __m256 sv = _mm256_set1_ps(s);
    const int64_t full = n >> 3; /* blocks whose 8 elements all exist */
    int64_t b = 0;
    for (; b + 4 * WIDE <= full; b += 4 * WIDE) {
        drop_blocks(WIDE, b, first, &pl, tv, sv, x, y, mask);
    }
    for (; b + 4 <= full; b += 4) {
        drop_blocks(1, b, first, &pl, tv, sv, x, y, mask);
    }
    pd_drop_ref(key, stream, step, first + (uint64_t)b, x + 8 * b, y + 8 * b, n - 8 * b, t, s,
                mask != NULL ? mask + b : NULL);
}

PD_TARGET_AVX2 static void apply_avx2(const float *x, const uint8_t *mask, float *y, int64_t n,
                                      float s) {
    const __m256 sv = _mm256_set1_ps(s);
    /* Lane k of chunk u tests bit 8u + k of a 32-bit mask word. */
    const __m256i bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint32_t word;
        memcpy(&word, mask + (i >> 3), 4);
        __m256i w = _mm256_set1_epi32((int)word);
        for (int u = 0; u < 4; u++) {
            /* y = keep ? x * s : +0.0 */
            __m256i bu = _mm256_slli_epi32(bits, 8 * u);
            __m256 keep = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(w, bu), bu));
            __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * u), sv);
            _mm256_storeu_ps(y + i + 8 * u, _mm256_and_ps(v, keep));
        }
    }
    for (; i + 8 <= n; i += 8) {
        __m256i w = _mm256_set1_epi32(mask[i >> 3]);
        __m256 keep = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(w, bits), bits));
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), sv);
        _mm256_storeu_ps(y + i, _mm256_and_ps(v, keep));
    }
    pd_apply_ref(x, mask, y, i, n, s);
}

PD_TARGET_AVX2 void pd_relu_forward_f32_avx2(const float *x, float *y, int64_t n) {
    const __m256 zero = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        /* keep = x > 0 || isnan(x); y = keep ? x : +0.0 */
        __m256 keep = _mm256_or_ps(_mm256_cmp_ps(v, zero, _CMP_GT_OQ),
                                   _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        _mm256_storeu_ps(y + i, _mm256_and_ps(v, keep));
    }
    pd_relu_fwd_ref(x, y, i, n);
}

PD_TARGET_AVX2 void pd_relu_backward_f32_avx2(const float *dy, const float *x, float *dx, int64_t n) {
    const __m256 zero = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        /* dx = x > 0 ? dy : (isnan(x) ? x : +0.0) */
        __m256 pos = _mm256_cmp_ps(v, zero, _CMP_GT_OQ);
        __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
        __m256 r = _mm256_or_ps(_mm256_and_ps(pos, _mm256_loadu_ps(dy + i)), _mm256_and_ps(nan, v));
        _mm256_storeu_ps(dx + i, r);
    }
    pd_relu_bwd_ref(dy, x, dx, i, n);
}

const pd_kernels pd_kernels_avx2 = {
    .philox = philox_avx2,
    .drop = drop_avx2,
    .apply = apply_avx2,
    .relu_fwd = pd_relu_forward_f32_avx2,
    .relu_bwd = pd_relu_backward_f32_avx2,
};

#endif
