/* SGEMM AVX-512 row: a 12x32 micro-kernel (24 zmm accumulators, 2 B loads and 12
 * broadcasts per k step, 24 FMAs) and a 32-row narrow kernel. Packing reuses the
 * AVX2 packer. CPUs without AVX-512 test this file through the SIMDe build (make
 * emulate). */
#include <string.h>

#include "gemm.h"

#if PD_X86
#include "simd.h"

#define AX_MR 12
#define AX_NR 32
#define AX_NMR 32 /* the narrow kernel's rows and most columns */
#define AX_NNR 12

/* Row i of the tile: c = alpha * acc + beta * cin (beta == 0: cin is not read). */
#define AX_STORE_ROW(i, lo, hi)                                                    \
    do {                                                                           \
        float *ci = c + (i) * ldc;                                                 \
        const float *cini = cin + (i) * ldcin;                                     \
        if (beta == 0.0f) {                                                        \
            _mm512_storeu_ps(ci, _mm512_mul_ps(va, lo));                           \
            _mm512_storeu_ps(ci + 16, _mm512_mul_ps(va, hi));                      \
        } else {                                                                   \
            __m512 t0 = _mm512_mul_ps(vb, _mm512_loadu_ps(cini));                  \
            __m512 t1 = _mm512_mul_ps(vb, _mm512_loadu_ps(cini + 16));             \
            _mm512_storeu_ps(ci, _mm512_fmadd_ps(va, lo, t0));                     \
            _mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(va, hi, t1));                \
        }                                                                          \
    } while (0)

/* Edge tile row: the same arithmetic through a stack row, then the first cols
 * floats are copied out (rows >= rows skipped). A stack row instead of masked
 * loads/stores keeps the file buildable against SIMDe, which lacks those. */
#define AX_STORE_EDGE(i, lo, hi)                                                   \
    do {                                                                           \
        if ((i) < rows) {                                                          \
            float *ci = c + (i) * ldc;                                             \
            _Alignas(64) float row[AX_NR];                                         \
            __m512 r0 = _mm512_mul_ps(va, lo), r1 = _mm512_mul_ps(va, hi);         \
            if (beta != 0.0f) {                                                    \
                memcpy(row, cin + (i) * ldcin, (size_t)cols * sizeof(float));      \
                memset(row + cols, 0, (size_t)(AX_NR - cols) * sizeof(float));    \
                r0 = _mm512_fmadd_ps(va, lo, _mm512_mul_ps(vb, _mm512_load_ps(row))); \
                r1 = _mm512_fmadd_ps(va, hi, _mm512_mul_ps(vb, _mm512_load_ps(row + 16))); \
            }                                                                      \
            _mm512_store_ps(row, r0);                                              \
            _mm512_store_ps(row + 16, r1);                                         \
            memcpy(ci, row, (size_t)cols * sizeof(float));                         \
        }                                                                          \
    } while (0)

PD_TARGET_AVX512 static void ukr_avx512_12x32(int64_t kc, const float *restrict a, int64_t rsa,
                                              int64_t csa, const float *restrict b, float *c,
                                              int64_t ldc, const float *cin, int64_t ldcin,
                                              float alpha, float beta, int32_t rows,
                                              int32_t cols) {
    for (int i = 0; i < AX_MR && i < rows; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + cols - 1), _MM_HINT_T0);
    }
    __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps();
    __m512 c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
    __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps();
    __m512 c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
    __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps();
    __m512 c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
    __m512 c60 = _mm512_setzero_ps(), c61 = _mm512_setzero_ps();
    __m512 c70 = _mm512_setzero_ps(), c71 = _mm512_setzero_ps();
    __m512 c80 = _mm512_setzero_ps(), c81 = _mm512_setzero_ps();
    __m512 c90 = _mm512_setzero_ps(), c91 = _mm512_setzero_ps();
    __m512 c100 = _mm512_setzero_ps(), c101 = _mm512_setzero_ps();
    __m512 c110 = _mm512_setzero_ps(), c111 = _mm512_setzero_ps();
    if (rsa == 1) {
        /* packed panel (or A^T read in place): the MR values of one k step are adjacent */
        const float *ap = a;
#pragma GCC unroll 2
        for (int64_t p = 0; p < kc; p++, ap += csa) {
            __m512 b0 = _mm512_loadu_ps(b);
            __m512 b1 = _mm512_loadu_ps(b + 16);
            __m512 ai;
            /* ai = {a[i][p]} x 16; c_i += a[i][p] * b[p][0..31] */
            ai = _mm512_set1_ps(ap[0]);
            c00 = _mm512_fmadd_ps(ai, b0, c00);
            c01 = _mm512_fmadd_ps(ai, b1, c01);
            ai = _mm512_set1_ps(ap[1]);
            c10 = _mm512_fmadd_ps(ai, b0, c10);
            c11 = _mm512_fmadd_ps(ai, b1, c11);
            ai = _mm512_set1_ps(ap[2]);
            c20 = _mm512_fmadd_ps(ai, b0, c20);
            c21 = _mm512_fmadd_ps(ai, b1, c21);
            ai = _mm512_set1_ps(ap[3]);
            c30 = _mm512_fmadd_ps(ai, b0, c30);
            c31 = _mm512_fmadd_ps(ai, b1, c31);
            ai = _mm512_set1_ps(ap[4]);
            c40 = _mm512_fmadd_ps(ai, b0, c40);
            c41 = _mm512_fmadd_ps(ai, b1, c41);
            ai = _mm512_set1_ps(ap[5]);
            c50 = _mm512_fmadd_ps(ai, b0, c50);
            c51 = _mm512_fmadd_ps(ai, b1, c51);
            ai = _mm512_set1_ps(ap[6]);
            c60 = _mm512_fmadd_ps(ai, b0, c60);
            c61 = _mm512_fmadd_ps(ai, b1, c61);
            ai = _mm512_set1_ps(ap[7]);
            c70 = _mm512_fmadd_ps(ai, b0, c70);
            c71 = _mm512_fmadd_ps(ai, b1, c71);
            ai = _mm512_set1_ps(ap[8]);
            c80 = _mm512_fmadd_ps(ai, b0, c80);
            c81 = _mm512_fmadd_ps(ai, b1, c81);
            ai = _mm512_set1_ps(ap[9]);
            c90 = _mm512_fmadd_ps(ai, b0, c90);
            c91 = _mm512_fmadd_ps(ai, b1, c91);
            ai = _mm512_set1_ps(ap[10]);
            c100 = _mm512_fmadd_ps(ai, b0, c100);
            c101 = _mm512_fmadd_ps(ai, b1, c101);
            ai = _mm512_set1_ps(ap[11]);
            c110 = _mm512_fmadd_ps(ai, b0, c110);
            c111 = _mm512_fmadd_ps(ai, b1, c111);
    b += AX_NR;
        }
    } else {
        /* op(A) read in place along its rows: one pointer per row, one shared offset */
        const float *ar[AX_MR];
        for (int i = 0; i < AX_MR; i++) {
            ar[i] = a + i * rsa;
        }
        int64_t o = 0;
#pragma GCC unroll 2
        for (int64_t p = 0; p < kc; p++, o += csa) {
            __m512 b0 = _mm512_loadu_ps(b);
            __m512 b1 = _mm512_loadu_ps(b + 16);
            __m512 ai;
            /* ai = {a[i][p]} x 16; c_i += a[i][p] * b[p][0..31] */
            ai = _mm512_set1_ps(ar[0][o]);
            c00 = _mm512_fmadd_ps(ai, b0, c00);
            c01 = _mm512_fmadd_ps(ai, b1, c01);
            ai = _mm512_set1_ps(ar[1][o]);
            c10 = _mm512_fmadd_ps(ai, b0, c10);
            c11 = _mm512_fmadd_ps(ai, b1, c11);
            ai = _mm512_set1_ps(ar[2][o]);
            c20 = _mm512_fmadd_ps(ai, b0, c20);
            c21 = _mm512_fmadd_ps(ai, b1, c21);
            ai = _mm512_set1_ps(ar[3][o]);
            c30 = _mm512_fmadd_ps(ai, b0, c30);
            c31 = _mm512_fmadd_ps(ai, b1, c31);
            ai = _mm512_set1_ps(ar[4][o]);
            c40 = _mm512_fmadd_ps(ai, b0, c40);
            c41 = _mm512_fmadd_ps(ai, b1, c41);
            ai = _mm512_set1_ps(ar[5][o]);
            c50 = _mm512_fmadd_ps(ai, b0, c50);
            c51 = _mm512_fmadd_ps(ai, b1, c51);
            ai = _mm512_set1_ps(ar[6][o]);
            c60 = _mm512_fmadd_ps(ai, b0, c60);
            c61 = _mm512_fmadd_ps(ai, b1, c61);
            ai = _mm512_set1_ps(ar[7][o]);
            c70 = _mm512_fmadd_ps(ai, b0, c70);
            c71 = _mm512_fmadd_ps(ai, b1, c71);
            ai = _mm512_set1_ps(ar[8][o]);
            c80 = _mm512_fmadd_ps(ai, b0, c80);
            c81 = _mm512_fmadd_ps(ai, b1, c81);
            ai = _mm512_set1_ps(ar[9][o]);
            c90 = _mm512_fmadd_ps(ai, b0, c90);
            c91 = _mm512_fmadd_ps(ai, b1, c91);
            ai = _mm512_set1_ps(ar[10][o]);
            c100 = _mm512_fmadd_ps(ai, b0, c100);
            c101 = _mm512_fmadd_ps(ai, b1, c101);
            ai = _mm512_set1_ps(ar[11][o]);
            c110 = _mm512_fmadd_ps(ai, b0, c110);
            c111 = _mm512_fmadd_ps(ai, b1, c111);
    b += AX_NR;
        }
    }
    const __m512 va = _mm512_set1_ps(alpha);
    const __m512 vb = _mm512_set1_ps(beta);
    if (rows == AX_MR && cols == AX_NR) {
        AX_STORE_ROW(0, c00, c01);
        AX_STORE_ROW(1, c10, c11);
        AX_STORE_ROW(2, c20, c21);
        AX_STORE_ROW(3, c30, c31);
        AX_STORE_ROW(4, c40, c41);
        AX_STORE_ROW(5, c50, c51);
        AX_STORE_ROW(6, c60, c61);
        AX_STORE_ROW(7, c70, c71);
        AX_STORE_ROW(8, c80, c81);
        AX_STORE_ROW(9, c90, c91);
        AX_STORE_ROW(10, c100, c101);
        AX_STORE_ROW(11, c110, c111);
    } else {
        AX_STORE_EDGE(0, c00, c01);
        AX_STORE_EDGE(1, c10, c11);
        AX_STORE_EDGE(2, c20, c21);
        AX_STORE_EDGE(3, c30, c31);
        AX_STORE_EDGE(4, c40, c41);
        AX_STORE_EDGE(5, c50, c51);
        AX_STORE_EDGE(6, c60, c61);
        AX_STORE_EDGE(7, c70, c71);
        AX_STORE_EDGE(8, c80, c81);
        AX_STORE_EDGE(9, c90, c91);
        AX_STORE_EDGE(10, c100, c101);
        AX_STORE_EDGE(11, c110, c111);
    }
}

/* The narrow kernel's sums for nc columns (a constant once inlined): two vectors
 * down the 32 rows times nc broadcasts of B per k step, 2 * nc accumulators (at most
 * 24 of 32 zmm). Column j leaves at t + j * 32. */
PD_TARGET_AVX512 static inline __attribute__((always_inline)) void
narrow_sums(int nc, int64_t kc, const float *restrict a, int64_t csa, const float *restrict b,
            int64_t rsb, int64_t csb, float *t) {
    __m512 lo[AX_NNR], hi[AX_NNR];
    for (int j = 0; j < nc; j++) {
        lo[j] = _mm512_setzero_ps();
        hi[j] = _mm512_setzero_ps();
    }
#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++, a += csa, b += rsb) {
        const __m512 a0 = _mm512_loadu_ps(a), a1 = _mm512_loadu_ps(a + 16);
        for (int j = 0; j < nc; j++) {
            const __m512 bj = _mm512_set1_ps(b[j * csb]);
            lo[j] = _mm512_fmadd_ps(a0, bj, lo[j]);
            hi[j] = _mm512_fmadd_ps(a1, bj, hi[j]);
        }
    }
    for (int j = 0; j < nc; j++) {
        _mm512_store_ps(t + j * AX_NMR, lo[j]);
        _mm512_store_ps(t + j * AX_NMR + 16, hi[j]);
    }
}

/* Sums of up to AX_NNR columns; every width its own unrolled copy. */
#define AX_NARROW_CASE(nc)                                                         \
    case nc:                                                                       \
        narrow_sums(nc, kc, a, csa, b, rsb, csb, t);                               \
        break

PD_TARGET_AVX512 static void narrow_avx512(int64_t kc, const float *a, int64_t csa,
                                           const float *b, int64_t rsb, int64_t csb, float *c,
                                           int64_t ldc, const float *cin, int64_t ldcin,
                                           float alpha, float beta, int32_t first, int32_t rows,
                                           int32_t cols) {
    _Alignas(64) float t[AX_NMR * AX_NNR];
    switch (cols) {
        AX_NARROW_CASE(1);
        AX_NARROW_CASE(2);
        AX_NARROW_CASE(3);
        AX_NARROW_CASE(4);
        AX_NARROW_CASE(5);
        AX_NARROW_CASE(6);
        AX_NARROW_CASE(7);
        AX_NARROW_CASE(8);
        AX_NARROW_CASE(9);
        AX_NARROW_CASE(10);
        AX_NARROW_CASE(11);
    default:
        narrow_sums(AX_NNR, kc, a, csa, b, rsb, csb, t);
        break;
    }
    /* (the stores are few: AVX2's, which also builds against SIMDe) */
    pd_gemm_narrow_out_avx2(t + first, AX_NMR, c, ldc, cin, ldcin, alpha, beta, rows, cols);
}

const pd_gemm_isa pd_gemm_avx512 = {
    .mr = AX_MR,
    .nr = AX_NR,
    .mc = 144,
    .b_sweep = 10,
    .ukr = ukr_avx512_12x32,
    .pack = pd_gemm_pack_avx2,
    /* FMA rounds once at any width: the AVX2 kernel matches this row's sums */
    .sparse = pd_gemm_sparse_avx2,
    .sparse_build = pd_gemm_sparse_build_avx2,
    .finite = pd_gemm_finite_avx2,
    .nmr = AX_NMR,
    .nnr = AX_NNR,
    .narrow = narrow_avx512,
    .narrow_align = 0, /* its loads span lines at no cost on Zen 4: 12.6 us at any offset */
    .ten = pd_gemm_ten_avx2,
};

#endif
