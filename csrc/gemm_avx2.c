/* SGEMM AVX2+FMA row: a 6x16 micro-kernel (12 ymm accumulators, 2 B loads and 6
 * broadcasts per k step, 12 FMAs) and a transposing packer. */
#include "gemm.h"

#if PD_X86
#include "simd.h"

#define AV_MR 6
#define AV_NR 16

/* Row i of the tile: c = alpha * acc + beta * c (beta == 0: c is not read). */
#define AV_STORE_ROW(i, lo, hi)                                                    \
    do {                                                                           \
        float *ci = c + (i) * ldc;                                                 \
        if (beta == 0.0f) {                                                        \
            _mm256_storeu_ps(ci, _mm256_mul_ps(va, lo));                           \
            _mm256_storeu_ps(ci + 8, _mm256_mul_ps(va, hi));                       \
        } else {                                                                   \
            __m256 t0 = _mm256_mul_ps(vb, _mm256_loadu_ps(ci));                    \
            __m256 t1 = _mm256_mul_ps(vb, _mm256_loadu_ps(ci + 8));                \
            _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, lo, t0));                     \
            _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(va, hi, t1));                 \
        }                                                                          \
    } while (0)

PD_TARGET_AVX2 static void ukr_avx2_6x16(int64_t kc, const float *restrict a,
                                         const float *restrict b, float *restrict c,
                                         int64_t ldc, float alpha, float beta) {
    for (int i = 0; i < AV_MR; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + AV_NR - 1), _MM_HINT_T0);
    }
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    /* unrolled so the loop overhead hides behind the FMAs */
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        __m256 b0 = _mm256_loadu_ps(b);
        __m256 b1 = _mm256_loadu_ps(b + 8);
        __m256 ai;
        /* ai = {a[i]} x 8; c_i += a[i] * b[0..15] */
        ai = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(ai, b0, c00);
        c01 = _mm256_fmadd_ps(ai, b1, c01);
        ai = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(ai, b0, c10);
        c11 = _mm256_fmadd_ps(ai, b1, c11);
        ai = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(ai, b0, c20);
        c21 = _mm256_fmadd_ps(ai, b1, c21);
        ai = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(ai, b0, c30);
        c31 = _mm256_fmadd_ps(ai, b1, c31);
        ai = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(ai, b0, c40);
        c41 = _mm256_fmadd_ps(ai, b1, c41);
        ai = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(ai, b0, c50);
        c51 = _mm256_fmadd_ps(ai, b1, c51);
        a += AV_MR;
        b += AV_NR;
    }
    const __m256 va = _mm256_set1_ps(alpha);
    const __m256 vb = _mm256_set1_ps(beta);
    AV_STORE_ROW(0, c00, c01);
    AV_STORE_ROW(1, c10, c11);
    AV_STORE_ROW(2, c20, c21);
    AV_STORE_ROW(3, c30, c31);
    AV_STORE_ROW(4, c40, c41);
    AV_STORE_ROW(5, c50, c51);
}

/* Store lanes [0, count) of v (count <= 8) to dst, touching nothing else. */
PD_TARGET_AVX2 static inline void store_lanes(float *dst, __m256 v, int64_t count) {
    if (count == 8) {
        _mm256_storeu_ps(dst, v);
        return;
    }
    __m128 lo = _mm256_castps256_ps128(v);
    if (count >= 4) {
        _mm_storeu_ps(dst, lo);
        lo = _mm256_extractf128_ps(v, 1);
        dst += 4;
        count -= 4;
    }
    if (count >= 2) {
        /* the low two floats as one 64-bit store */
        _mm_storel_pi((__m64 *)(void *)dst, lo);
        lo = _mm_movehl_ps(lo, lo);
        dst += 2;
        count -= 2;
    }
    if (count == 1) {
        _mm_store_ss(dst, lo);
    }
}

/* Copy n floats (n <= mr), then zeros up to mr. */
PD_TARGET_AVX2 static inline void copy_pad(float *dst, const float *src, int64_t n, int64_t mr) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
    }
    for (; i + 4 <= n; i += 4) {
        _mm_storeu_ps(dst + i, _mm_loadu_ps(src + i));
    }
    for (; i < n; i++) {
        dst[i] = src[i];
    }
    for (; i < mr; i++) {
        dst[i] = 0.0f;
    }
}

/* In-register 8x8 transpose: on return r[q] lane i = input r[i] lane q. */
PD_TARGET_AVX2 static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* One panel of `rows` (<= mr) rows whose elements are contiguous along p: read
 * 8 x 8 blocks, transpose in registers, store mr-wide panel rows. */
PD_TARGET_AVX2 static void pack_panel_t(const float *x, int64_t rs, int64_t rows, int64_t kc,
                                        int64_t mr, float *dst) {
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        for (int64_t ig = 0; ig < mr; ig += 8) {
            __m256 r[8];
            for (int64_t q = 0; q < 8; q++) {
                r[q] = ig + q < rows ? _mm256_loadu_ps(x + (ig + q) * rs + p) : _mm256_setzero_ps();
            }
            transpose8(r);
            int64_t lanes = mr - ig < 8 ? mr - ig : 8;
            for (int64_t q = 0; q < 8; q++) {
                store_lanes(dst + (p + q) * mr + ig, r[q], lanes);
            }
        }
    }
    for (; p < kc; p++) {
        for (int64_t i = 0; i < mr; i++) {
            dst[p * mr + i] = i < rows ? x[i * rs + p] : 0.0f;
        }
    }
}

PD_TARGET_AVX2 void pd_gemm_pack_avx2(const float *x, int64_t rs, int64_t cs, int64_t mc,
                                      int64_t kc, int32_t mr, float *dst) {
    for (int64_t i0 = 0; i0 < mc; i0 += mr, dst += (int64_t)mr * kc) {
        int64_t rows = mc - i0 < mr ? mc - i0 : mr;
        const float *xi = x + i0 * rs;
        if (rs == 1) {
            /* Rows adjacent in memory: each k step is one short contiguous copy. */
            for (int64_t p = 0; p < kc; p++) {
                copy_pad(dst + p * mr, xi + p * cs, rows, mr);
            }
        } else if (cs == 1) {
            pack_panel_t(xi, rs, rows, kc, mr, dst);
        } else {
            pd_gemm_pack_ref(xi, rs, cs, rows, kc, mr, dst);
        }
    }
}

const pd_gemm_isa pd_gemm_avx2 = {
    .mr = AV_MR,
    .nr = AV_NR,
    .kc_max = 320,
    .mc = 144,
    .ukr = ukr_avx2_6x16,
    .pack = pd_gemm_pack_avx2,
};

#endif
