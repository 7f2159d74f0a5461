/* AVX2+FMA kernels. Philox runs on 4 blocks per vector and 3 vectors at once, so
 * one dropout iteration yields 12 mask bytes = 96 elements. */
#include "internal.h"

#if PD_X86
#define PD_YMM_TARGET PD_TARGET_AVX2
#define PD_YMM_TERNLOG 0
/* three chains (12 blocks) hide the latency; more (4, 6, 8 measured on Zen 3) only
 * add spills in 16 registers without running faster */
#define PD_YMM_WIDE 3
#define PD_YMM(name) name##_avx2
#include "dropout_ymm.h"

PD_TARGET_AVX2 void pd_apply_avx2(const float *x, const uint8_t *mask, float *y, int64_t n,
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
    pd_apply_ref(x, mask, y, i, n, s, 0);
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

PD_TARGET_AVX2 void pd_relu_rows_avx2(const float *x, float *y, int64_t ld, int64_t rows,
                                      int64_t len) {
    for (int64_t r = 0; r < rows; r++) {
        pd_relu_forward_f32_avx2(x + r * ld, y + r * ld, len);
    }
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
    .drop_rows = pd_drop_rows_avx2,
    .apply = pd_apply_avx2,
    .relu_fwd = pd_relu_forward_f32_avx2,
    .relu_rows = pd_relu_rows_avx2,
    .relu_bwd = pd_relu_backward_f32_avx2,
};

#endif
