/* AVX2+FMA kernels. Philox runs on 8 counters at once (one block per 32-bit lane
 * of the merged result), so one iteration yields 8 mask bytes = 64 elements. */
#include "internal.h"

#if PD_X86
#include <string.h>

#include "ref.h"
#include "simd.h"

/* Philox on 8 consecutive blocks, split by parity: `e` holds blocks 0, 2, 4, 6 and
 * `o` blocks 1, 3, 5, 7, each in the even 32-bit slots. _mm256_mul_epu32 reads only
 * even slots and returns the full 64-bit product, so a round needs no lane shuffles:
 * hi is one 64-bit shift away and lo is already in place. Odd slots carry junk that
 * no result reads (the mask and stream code below take even slots only).
 *
 * Per-call constants. In rounds 0 and 1 only the counter word c0 differs between
 * blocks, so the products that involve only (stream, step, key) are computed once,
 * in scalar code, and those rounds cost about half of a general one. */
typedef struct {
    __m256i k0[10], k1[10]; /* the key schedule, broadcast (rounds 2..9 use it) */
    __m256i c, d, e, l0;    /* round 0/1 constants, named as in philox8 */
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

/* Interleaved groups of 8 blocks per call: one group's rounds are a latency chain
 * (multiply -> shift -> xor); two give the out-of-order core independent work. */
#define GROUPS 2

/* Philox4x32-10 for blocks first..first+8*GROUPS-1 (one 8-block group per g). */
PD_TARGET_AVX2 static inline void philox8(__m256i e[GROUPS][4], __m256i o[GROUPS][4],
                                          uint32_t first, const philox_plan *pl) {
    const __m256i m0 = _mm256_set1_epi32((int)PD_PHILOX_M0);
    const __m256i m1 = _mm256_set1_epi32((int)PD_PHILOX_M1);
    for (int g = 0; g < GROUPS; g++) {
        __m256i ce = _mm256_add_epi32(_mm256_set1_epi32((int)(first + 8u * (uint32_t)g)),
                                      _mm256_setr_epi32(0, 0, 2, 0, 4, 0, 6, 0));
        __m256i co = _mm256_add_epi32(ce, _mm256_set1_epi32(1));
        /* round 0: c2 = hi(c0 * M0) ^ c;  c3 = lo(c0 * M0)  (c0, c1 are constants) */
        __m256i pe = _mm256_mul_epu32(ce, m0), po = _mm256_mul_epu32(co, m0);
        __m256i c2e = _mm256_xor_si256(_mm256_srli_epi64(pe, 32), pl->c);
        __m256i c2o = _mm256_xor_si256(_mm256_srli_epi64(po, 32), pl->c);
        /* round 1: c0 = hi(c2 * M1) ^ d;  c1 = lo(c2 * M1);  c2 = c3 ^ e;  c3 = l0 */
        __m256i qe = _mm256_mul_epu32(c2e, m1), qo = _mm256_mul_epu32(c2o, m1);
        e[g][0] = _mm256_xor_si256(_mm256_srli_epi64(qe, 32), pl->d);
        o[g][0] = _mm256_xor_si256(_mm256_srli_epi64(qo, 32), pl->d);
        e[g][1] = qe;
        o[g][1] = qo;
        e[g][2] = _mm256_xor_si256(pe, pl->e);
        o[g][2] = _mm256_xor_si256(po, pl->e);
        e[g][3] = o[g][3] = pl->l0;
    }
#pragma GCC unroll 8
    for (int r = 2; r < 10; r++) {
        for (int g = 0; g < GROUPS; g++) {
            /* p0 = hi0:lo0 = c0 * M0, p1 = hi1:lo1 = c2 * M1 (per 64-bit slot) */
            __m256i pe0 = _mm256_mul_epu32(e[g][0], m0), pe1 = _mm256_mul_epu32(e[g][2], m1);
            __m256i po0 = _mm256_mul_epu32(o[g][0], m0), po1 = _mm256_mul_epu32(o[g][2], m1);
            /* c0 = hi1 ^ c1 ^ k0;  c1 = lo1;  c2 = hi0 ^ c3 ^ k1;  c3 = lo0 */
            e[g][0] = _mm256_xor_si256(_mm256_srli_epi64(pe1, 32), _mm256_xor_si256(e[g][1], pl->k0[r]));
            e[g][2] = _mm256_xor_si256(_mm256_srli_epi64(pe0, 32), _mm256_xor_si256(e[g][3], pl->k1[r]));
            o[g][0] = _mm256_xor_si256(_mm256_srli_epi64(po1, 32), _mm256_xor_si256(o[g][1], pl->k0[r]));
            o[g][2] = _mm256_xor_si256(_mm256_srli_epi64(po0, 32), _mm256_xor_si256(o[g][3], pl->k1[r]));
            e[g][1] = pe1;
            e[g][3] = pe0;
            o[g][1] = po1;
            o[g][3] = po0;
        }
    }
}

/* Word j of blocks 0..7 in slot order: even slots from e, odd slots from o. */
PD_TARGET_AVX2 static inline __m256i merge(__m256i e, __m256i o) {
    return _mm256_blend_epi32(e, _mm256_slli_epi64(o, 32), 0xAA);
}

PD_TARGET_AVX2 static void philox_avx2(const uint32_t key[2], uint32_t stream, uint64_t step,
                                       uint64_t first, int64_t n, uint32_t *out) {
    philox_plan pl;
    plan_init(&pl, key, stream, step);
    int64_t b = 0;
    for (; b + 8 * GROUPS <= n; b += 8 * GROUPS) {
        __m256i e[GROUPS][4], o[GROUPS][4];
        philox8(e, o, (uint32_t)(first + (uint64_t)b), &pl);
        for (int g = 0; g < GROUPS; g++) {
            uint32_t w[4][8];
            for (int j = 0; j < 4; j++) {
                _mm256_storeu_si256((__m256i *)w[j], merge(e[g][j], o[g][j]));
            }
            for (int l = 0; l < 8; l++) {
                for (int j = 0; j < 4; j++) {
                    out[4 * (b + 8 * g + l) + j] = w[j][l];
                }
            }
        }
    }
    pd_philox_blocks_scalar(key, stream, step, first + (uint64_t)b, n - b, out + 4 * b);
}

PD_TARGET_AVX2 static void mask_avx2(const uint32_t key[2], uint32_t stream, uint64_t step,
                                     uint64_t first, int64_t n, uint32_t t, uint8_t *mask) {
    philox_plan pl;
    plan_init(&pl, key, stream, step);
    /* Compare all 16-bit values at once: u >= t <=> max_epu16(u, t) == u (t < 2^16 here). */
    const __m256i tv = _mm256_set1_epi16((short)t);
    /* Byte 0 of each 32-bit lane, gathered to the low 4 bytes of each 128-bit half. */
    const __m256i gather = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                            -1, -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1,
                                            -1, -1, -1, -1);
    int64_t b = 0;
    for (; b + 8 * GROUPS <= n; b += 8 * GROUPS) {
        __m256i e[GROUPS][4], o[GROUPS][4];
        philox8(e, o, (uint32_t)(first + (uint64_t)b), &pl);
        for (int g = 0; g < GROUPS; g++) {
            __m256i acc_e = _mm256_setzero_si256(), acc_o = _mm256_setzero_si256();
            for (int j = 0; j < 4; j++) {
                /* Low 16-bit half of word j -> bit 2j, high half -> bit 2j+1, each in its
                 * own half of the (even) slot; the odd, junk slots get no bits. */
                const __m256i bit = _mm256_set1_epi64x((1 << (2 * j)) | (2 << (2 * j + 16)));
                __m256i ke = _mm256_cmpeq_epi16(_mm256_max_epu16(e[g][j], tv), e[g][j]);
                __m256i ko = _mm256_cmpeq_epi16(_mm256_max_epu16(o[g][j], tv), o[g][j]);
                acc_e = _mm256_or_si256(acc_e, _mm256_and_si256(ke, bit));
                acc_o = _mm256_or_si256(acc_o, _mm256_and_si256(ko, bit));
            }
            __m256i acc = _mm256_or_si256(acc_e, _mm256_slli_epi64(acc_o, 32));
            acc = _mm256_or_si256(acc, _mm256_srli_epi32(acc, 16));
            __m256i bytes = _mm256_shuffle_epi8(acc, gather);
            uint32_t lo4 = (uint32_t)_mm256_cvtsi256_si32(bytes);
            uint32_t hi4 = (uint32_t)_mm256_extract_epi32(bytes, 4);
            memcpy(mask + b + 8 * g, &lo4, 4);
            memcpy(mask + b + 8 * g + 4, &hi4, 4);
        }
    }
    pd_mask_blocks_scalar(key, stream, step, first + (uint64_t)b, n - b, t, mask + b);
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
    .mask = mask_avx2,
    .apply = apply_avx2,
    .relu_fwd = pd_relu_forward_f32_avx2,
    .relu_bwd = pd_relu_backward_f32_avx2,
};

#endif
