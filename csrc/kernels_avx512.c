/* AVX-512 (F/BW/VL/DQ) kernels: 16 Philox counters per iteration, and the packed
 * mask used directly as an AVX-512 lane mask. ReLU is memory-bound and already
 * saturates bandwidth with AVX2, so that row reuses the AVX2 kernels; a strip of
 * dropout rows takes the zen4 row's 4-block ymm vectors (with vpternlogd). */
#include "internal.h"

#if PD_X86
#include <string.h>

#include "ref.h"
#include "simd.h"

/* hi:lo = a * m for each unsigned 32-bit lane. */
PD_TARGET_AVX512 static inline void mul_hilo16(__m512i a, __m512i m, __m512i *hi, __m512i *lo) {
    /* _mm512_mul_epu32 multiplies the even lanes; shift the odd ones down for a second product. */
    __m512i even = _mm512_mul_epu32(a, m);
    __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
    *lo = _mm512_mask_blend_epi32((pd_mask16)0xAAAA, even, _mm512_slli_epi64(odd, 32));
    *hi = _mm512_mask_blend_epi32((pd_mask16)0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

PD_TARGET_AVX512 static inline void philox16(__m512i c[4], uint64_t first, uint32_t stream,
                                             uint64_t step, uint32_t k0, uint32_t k1) {
    const __m512i m0 = _mm512_set1_epi32((int)PD_PHILOX_M0);
    const __m512i m1 = _mm512_set1_epi32((int)PD_PHILOX_M1);
    c[0] = _mm512_add_epi32(_mm512_set1_epi32((int)(uint32_t)first),
                            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    c[1] = _mm512_set1_epi32((int)stream);
    c[2] = _mm512_set1_epi32((int)(uint32_t)step);
    c[3] = _mm512_set1_epi32((int)(uint32_t)(step >> 32));
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += PD_PHILOX_W0;
            k1 += PD_PHILOX_W1;
        }
        __m512i hi0, lo0, hi1, lo1;
        mul_hilo16(c[0], m0, &hi0, &lo0);
        mul_hilo16(c[2], m1, &hi1, &lo1);
        c[0] = _mm512_xor_si512(_mm512_xor_si512(hi1, c[1]), _mm512_set1_epi32((int)k0));
        c[2] = _mm512_xor_si512(_mm512_xor_si512(hi0, c[3]), _mm512_set1_epi32((int)k1));
        c[1] = lo1;
        c[3] = lo0;
    }
}

PD_TARGET_AVX512 static void philox_avx512(const uint32_t key[2], uint32_t stream, uint64_t step,
                                           uint64_t first, int64_t n, uint32_t *out) {
    int64_t b = 0;
    for (; b + 16 <= n; b += 16) {
        __m512i c[4];
        uint32_t w[4][16];
        philox16(c, first + (uint64_t)b, stream, step, key[0], key[1]);
        for (int j = 0; j < 4; j++) {
            _mm512_storeu_si512((void *)w[j], c[j]);
        }
        for (int l = 0; l < 16; l++) {
            for (int j = 0; j < 4; j++) {
                out[4 * (b + l) + j] = w[j][l];
            }
        }
    }
    pd_philox_blocks_scalar(key, stream, step, first + (uint64_t)b, n - b, out + 4 * b);
}

PD_TARGET_AVX512 static void mask_avx512(const uint32_t key[2], uint32_t stream, uint64_t step,
                                         uint64_t first, int64_t n, uint32_t t, uint8_t *mask) {
    const __m512i tv = _mm512_set1_epi32((int)t);
    const __m512i lo16 = _mm512_set1_epi32(0xffff);
    /* After two in-lane packs, dword 0 of each 128-bit lane holds 4 mask bytes. */
    const __m512i gather = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    int64_t b = 0;
    for (; b + 16 <= n; b += 16) {
        __m512i c[4];
        philox16(c, first + (uint64_t)b, stream, step, key[0], key[1]);
        __m512i acc = _mm512_setzero_si512();
        for (int j = 0; j < 4; j++) {
            /* bit 2j of lane l |= (w_j & 0xffff) >= t;  bit 2j+1 |= (w_j >> 16) >= t */
            pd_mask16 lo = _mm512_cmpge_epu32_mask(_mm512_and_si512(c[j], lo16), tv);
            pd_mask16 hi = _mm512_cmpge_epu32_mask(_mm512_srli_epi32(c[j], 16), tv);
            acc = _mm512_mask_or_epi32(acc, lo, acc, _mm512_set1_epi32(1 << (2 * j)));
            acc = _mm512_mask_or_epi32(acc, hi, acc, _mm512_set1_epi32(2 << (2 * j)));
        }
        /* Each lane holds one mask byte (< 256): narrow 16 x 32-bit to 16 bytes. */
        __m512i b16 = _mm512_packus_epi32(acc, acc);
        __m512i b8 = _mm512_packus_epi16(b16, b16);
        __m512i bytes = _mm512_permutexvar_epi32(gather, b8);
        _mm_storeu_si128((__m128i *)(mask + b), _mm512_castsi512_si128(bytes));
    }
    pd_mask_blocks_scalar(key, stream, step, first + (uint64_t)b, n - b, t, mask + b);
}

/* y = keep ? r(x) * s : +0.0 (the pd_kernels.drop rule; r = ReLU when relu is set). */
PD_TARGET_AVX512 static inline __attribute__((always_inline)) void
apply16(const float *x, const uint8_t *mask, float *y, int64_t n, float s, int32_t relu) {
    const __m512 sv = _mm512_set1_ps(s);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        /* Two mask bytes are the lane mask of 16 floats; ReLU also drops x <= 0 (a
         * NaN compares unordered, so it stays) */
        uint16_t bits;
        memcpy(&bits, mask + (i >> 3), 2);
        __m512 v = _mm512_loadu_ps(x + i);
        pd_mask16 keep = (pd_mask16)bits;
        if (relu) {
            keep &= _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NLE_UQ);
        }
        _mm512_storeu_ps(y + i, _mm512_maskz_mul_ps(keep, v, sv));
    }
    pd_apply_ref(x, mask, y, i, n, s, relu);
}

PD_TARGET_AVX512 static void apply_avx512(const float *x, const uint8_t *mask, float *y,
                                          int64_t n, float s) {
    apply16(x, mask, y, n, s, 0);
}

/* Chunk of a maskless call: its bits go through this many bytes on the stack. */
#define PD_DROP_CHUNK 256

PD_TARGET_AVX512 static void drop_avx512(const uint32_t key[2], uint32_t stream, uint64_t step,
                                         uint64_t first, const float *x, float *y, int64_t n,
                                         uint32_t t, float s, uint8_t *mask, int32_t relu) {
    if (mask != NULL) {
        mask_avx512(key, stream, step, first, (n + 7) >> 3, t, mask);
        apply16(x, mask, y, n, s, relu);
        return;
    }
    uint8_t bits[PD_DROP_CHUNK];
    for (int64_t i = 0; i < n; i += 8 * PD_DROP_CHUNK) {
        int64_t len = n - i < 8 * PD_DROP_CHUNK ? n - i : 8 * PD_DROP_CHUNK;
        mask_avx512(key, stream, step, first + (uint64_t)(i >> 3), (len + 7) >> 3, t, bits);
        apply16(x + i, bits, y + i, len, s, relu);
    }
}

const pd_kernels pd_kernels_avx512 = {
    .philox = philox_avx512,
    .drop = drop_avx512,
    .drop_rows = pd_drop_rows_zen4,
    .apply = apply_avx512,
    .relu_fwd = pd_relu_forward_f32_avx2,
    .relu_rows = pd_relu_rows_avx2,
    .relu_bwd = pd_relu_backward_f32_avx2,
};

#endif
