/* SGEMM scalar row: the portable packer and a 4x8 register-blocked micro-kernel.
 * Plain C11, builds on any architecture; the reference the SIMD rows are tested
 * against (within the k * eps32 bound, not bit-exactly: FMA rounds differently). */
#include <string.h>

#include "gemm.h"

#define SC_MR 4
#define SC_NR 8

void pd_gemm_pack_ref(const float *x, int64_t rs, int64_t cs, int64_t mc, int64_t kc, int32_t mr,
                      float *dst) {
    for (int64_t i0 = 0; i0 < mc; i0 += mr, dst += (int64_t)mr * kc) {
        int64_t rows = mc - i0 < mr ? mc - i0 : mr;
        const float *xi = x + i0 * rs;
        if (rs == 1) {
            /* Rows adjacent in memory: each k step is one short contiguous copy. */
            for (int64_t p = 0; p < kc; p++) {
                memcpy(dst + p * mr, xi + p * cs, (size_t)rows * sizeof(float));
                for (int64_t i = rows; i < mr; i++) {
                    dst[p * mr + i] = 0.0f;
                }
            }
        } else {
            /* Read each row along k, write it strided into the panel. */
            for (int64_t i = 0; i < rows; i++) {
                for (int64_t p = 0; p < kc; p++) {
                    dst[p * mr + i] = xi[i * rs + p * cs];
                }
            }
            for (int64_t i = rows; i < mr; i++) {
                for (int64_t p = 0; p < kc; p++) {
                    dst[p * mr + i] = 0.0f;
                }
            }
        }
    }
}

static void ukr_scalar_4x8(int64_t kc, const float *restrict a, int64_t rsa, int64_t csa,
                           const float *restrict b, float *c, int64_t ldc, const float *cin,
                           int64_t ldcin, float alpha, float beta, int32_t rows, int32_t cols) {
    float acc[SC_MR][SC_NR] = {{0.0f}};
    for (int64_t p = 0; p < kc; p++, b += SC_NR) {
        for (int i = 0; i < SC_MR; i++) {
            float ai = a[i * rsa + p * csa];
            for (int j = 0; j < SC_NR; j++) {
                acc[i][j] += ai * b[j];
            }
        }
    }
    for (int i = 0; i < rows; i++) {
        float *ci = c + i * ldc;
        const float *cini = cin + i * ldcin;
        if (beta == 0.0f) {
            for (int j = 0; j < cols; j++) {
                ci[j] = alpha * acc[i][j];
            }
        } else {
            for (int j = 0; j < cols; j++) {
                ci[j] = alpha * acc[i][j] + beta * cini[j];
            }
        }
    }
}

const pd_gemm_isa pd_gemm_scalar = {
    .mr = SC_MR,
    .nr = SC_NR,
    .kc_max = 384,
    .mc = 128,
    .b_sweep = 0,
    .ukr = ukr_scalar_4x8,
    .pack = pd_gemm_pack_ref,
};
