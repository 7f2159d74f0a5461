/* SGEMM scalar row: the portable packer and a 4x8 register-blocked micro-kernel.
 * Plain C11, builds on any architecture. Its arithmetic is the SIMD rows', element
 * by element: each sum starts at +0.0 and takes one fused multiply-add per term, in
 * k order; then alpha * acc, or fmaf(alpha, acc, beta * cin). So it gives their bits,
 * and a model trains to the same weights on every path. fmaf is one instruction
 * where the CPU has FMA (aarch64, x86 with FMA through glibc's ifunc) and exact, but
 * slow, software elsewhere: the price of those bits on an x86 CPU without FMA. */
#include <math.h>
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
                acc[i][j] = fmaf(ai, b[j], acc[i][j]);
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
                ci[j] = fmaf(alpha, acc[i][j], beta * cini[j]);
            }
        }
    }
}

/* The portable builder: branchless appends, which cost the same whether an element
 * is kept or not (x != 0 holds for a NaN). */
void pd_gemm_sparse_build_ref(const float *a, int64_t rsa, int64_t csa, int64_t rows, int64_t k,
                              int32_t nr, int64_t cap, int64_t nseg, int32_t *ends, uint64_t *ent) {
    for (int64_t i = 0; i < rows; i++) {
        const float *x = a + i * rsa;
        uint64_t *e = ent + i * cap;
        int32_t t = 0;
        for (int64_t p = 0; p < k; p++) {
            const float xp = x[p * csa];
            e[t] = pd_sparse_entry(p * nr, xp);
            t += xp != 0.0f;
            if ((p + 1) % PD_GEMM_SPARSE_SEG == 0 || p + 1 == k) {
                ends[i * nseg + p / PD_GEMM_SPARSE_SEG] = t;
            }
        }
    }
}

/* An exponent field of all ones, plus one at its lowest bit, carries into bit 31;
 * no other exponent does: integer and, add and or, no compare per element. (gcc
 * vectorizes it for baseline x86-64 about as fast as the compare it replaced; the
 * speed is the ISA rows' hook.) */
int pd_gemm_finite_ref(const float *x, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        bad |= (u & 0x7f800000u) + 0x00800000u;
    }
    return bad >> 31 == 0;
}

_Static_assert(PD_GEMM_SPARSE_COLS % SC_NR == 0, "sparse column blocks are whole panels");

/* The sparse kernel (gemm.h) with ukr_scalar_4x8's arithmetic: each sum starts at
 * +0.0 and takes fmaf(ai, b[j], acc) in order; then alpha * acc, or
 * fmaf(alpha, acc, beta * cin). */
static void sparse_scalar(const pd_sparse_rows *s, const float *b, int64_t kc, int32_t nr,
                          int64_t cols, float *c, int64_t ldc, const float *cin, int64_t ldcin,
                          float alpha, float beta, int32_t ct, float *acc) {
    /* C(i, j) at i * ri + j * rj */
    const int64_t ri = ct ? 1 : ldc, rj = ct ? ldc : 1, rin = ct ? 1 : ldcin, rjn = ct ? ldcin : 1;
    for (int64_t i = 0; i < s->rows; i++) {
        const uint64_t *ent = s->ent + i * s->cap;
        const int64_t nz = s->ends[i * s->nseg + s->nseg - 1];
        for (int64_t c0 = 0; c0 < cols; c0 += PD_GEMM_SPARSE_COLS) {
            int64_t w = cols - c0 < PD_GEMM_SPARSE_COLS ? cols - c0 : PD_GEMM_SPARSE_COLS;
            for (int64_t jj = 0; jj < w; jj++) {
                acc[jj] = 0.0f;
            }
            for (int64_t t = 0; t < nz; t++) {
                const float ai = pd_sparse_val(ent[t]);
                /* the block's panels (c0 is a multiple of nr), each row contiguous */
                for (int64_t j0 = 0; j0 < w; j0 += nr) {
                    const float *bp = b + (c0 + j0) / nr * kc * nr + pd_sparse_off(ent[t]);
                    const int64_t wn = w - j0 < nr ? w - j0 : nr;
                    for (int64_t u = 0; u < wn; u++) {
                        acc[j0 + u] = fmaf(ai, bp[u], acc[j0 + u]);
                    }
                }
            }
            for (int64_t jj = 0; jj < w; jj++) {
                float *cij = c + i * ri + (c0 + jj) * rj;
                const float *cinij = cin + i * rin + (c0 + jj) * rjn;
                *cij = beta == 0.0f ? alpha * acc[jj] : fmaf(alpha, acc[jj], beta * *cinij);
            }
        }
    }
}

const pd_gemm_isa pd_gemm_scalar = {
    .mr = SC_MR,
    .nr = SC_NR,
    .mc = 128,
    .b_sweep = 0,
    .ukr = ukr_scalar_4x8,
    .pack = pd_gemm_pack_ref,
    .sparse = sparse_scalar,
    .sparse_build = pd_gemm_sparse_build_ref,
    .finite = pd_gemm_finite_ref,
};
