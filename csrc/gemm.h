/* SGEMM internals: the per-ISA micro-kernels and packing routines that gemm.c
 * drives (BLIS-style: pack B into NR-wide micro-panels, A into MR-tall ones,
 * then an MR x NR register-blocked micro-kernel per output tile).
 *
 * Packed layouts (zero-padded past the matrix edge, so kernels never branch on
 * edges):
 *   A panel: kc x MR, element (i, p) at a[p * MR + i]   (one broadcast per i)
 *   B panel: kc x NR, element (p, j) at b[p * NR + j]   (NR / lanes vector loads)
 * Panels of one block are stored back to back: panel r starts at r * MR * kc.
 */
#ifndef PD_GEMM_H
#define PD_GEMM_H

#include <stdint.h>
#include <string.h>

#include "internal.h"

/* c[i * ldc + j] = alpha * sum_p A(i, p) * b[p * NR + j] + beta * cin[i * ldcin + j]
 * for i < rows, j < cols of the MR x NR tile (rows <= MR, cols <= NR; the rest of c
 * is not touched), summing p = 0..kc-1 in order with the same arithmetic whatever
 * rows and cols are. A(i, p) = a[i * rsa + p * csa] for all MR rows (a packed panel
 * has rsa = 1, csa = MR; an unpacked op(A) its own strides). b is a packed panel.
 * cin is c itself (ldcin = ldc) or a bias row broadcast down the tile (ldcin = 0).
 * beta == 0 never reads cin. Requires kc >= 1. */
typedef void (*pd_gemm_ukr_fn)(int64_t kc, const float *a, int64_t rsa, int64_t csa,
                               const float *b, float *c, int64_t ldc, const float *cin,
                               int64_t ldcin, float alpha, float beta, int32_t rows,
                               int32_t cols);

/* The narrow kernel, for C with fewer columns than NR (gemm.c's narrow path): the
 * micro-kernel's arithmetic, vectorized down the rows instead of along them.
 * c[i * ldc + j] = alpha * sum_p a[i + p * csa] * b[p * rsb + j * csb] + beta *
 * cin[i * ldcin + j] for i < rows (<= NMR), j < cols (<= NNR), summing p = 0..kc-1 in
 * order with one fused multiply-add per term from +0.0, then alpha * acc, or
 * fma(alpha, acc, beta * cin): the bits of ukr. a holds all NMR rows of each k step,
 * and the kernel sums them all; it stores rows [first, first + rows) of them (first +
 * rows <= NMR), c and cin pointing at row `first`. beta == 0 never reads cin.
 * Requires kc >= 1. */
typedef void (*pd_gemm_narrow_fn)(int64_t kc, const float *a, int64_t csa, const float *b,
                                  int64_t rsb, int64_t csb, float *c, int64_t ldc,
                                  const float *cin, int64_t ldcin, float alpha, float beta,
                                  int32_t first, int32_t rows, int32_t cols);

/* The ten-column kernel, for C with 9 or 10 columns: the micro-kernel's arithmetic
 * (the narrow kernel's contract above) on rows < rows (<= 8) and columns < cols (9 or
 * 10) of c, reading A(i, p) = a[i * rsa + p * csa] and B(p, j) = b[p * rsb + j] in
 * place, whatever A's layout. Requires kc >= 1. */
typedef void (*pd_gemm_ten_fn)(int64_t kc, const float *a, int64_t rsa, int64_t csa,
                               const float *b, int64_t rsb, float *c, int64_t ldc,
                               const float *cin, int64_t ldcin, float alpha, float beta,
                               int32_t rows, int32_t cols);

/* Pack rows [0, mc) and columns [0, kc) of the matrix X(i, p) = x[i * rs + p * cs]
 * into ceil(mc / mr) panels of mr x kc (layout above), zero-filling rows >= mc.
 * Packing B uses the same routine on B's transpose: X(j, p) = op(B)(p, j), mr = NR. */
typedef void (*pd_gemm_pack_fn)(const float *x, int64_t rs, int64_t cs, int64_t mc, int64_t kc,
                                int32_t mr, float *dst);

/* The nonzeros of a block of rows of op(A) over one k chunk (gemm.c builds it):
 * row i's t-th nonzero, in increasing p, is the entry ent[i * cap + t]: p * nr (its
 * row's offset in a packed B panel) in the low 32 bits, the value's bits in the high
 * ones, so that one load fetches both (pd_sparse_entry); ends[i * nseg + s] counts
 * row i's nonzeros with p < (s + 1) * PD_GEMM_SPARSE_SEG. A NaN is a nonzero. */
typedef struct pd_sparse_rows {
    int64_t rows, cap, nseg;
    const int32_t *ends;
    const uint64_t *ent;
} pd_sparse_rows;

static inline uint64_t pd_sparse_entry(int64_t off, float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (uint32_t)off | (uint64_t)u << 32;
}
static inline int32_t pd_sparse_off(uint64_t e) { return (int32_t)(uint32_t)e; }
static inline float pd_sparse_val(uint64_t e) {
    const uint32_t u = (uint32_t)(e >> 32);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* Fill the lists of a pd_sparse_rows (cap >= k + 8: vector builders store 8 entries
 * at a time) with the nonzeros of rows [0, rows) of X(i, p) = a[i * rsa + p * csa],
 * p < k, where rsa == 1 or csa == 1. */
typedef void (*pd_gemm_sparse_build_fn)(const float *a, int64_t rsa, int64_t csa, int64_t rows,
                                        int64_t k, int32_t nr, int64_t cap, int64_t nseg,
                                        int32_t *ends, uint64_t *ent);

/* k rows of packed B per segment of the sparse kernels: a 48-column block of them
 * (24 KiB) stays in L1 while the rows of a block take their nonzeros in it. 128 and
 * 48 ran 3-5% faster than 64 or 256 rows and 32 columns (256^3, 33% nonzeros). */
#define PD_GEMM_SPARSE_SEG 128

/* Rows of C from sparse op(A) rows: C(i, j) = alpha * acc + beta * cin(i, j) (beta
 * == 0 never reads cin) for i < s->rows, j < cols, where acc sums val * B(p, j) over
 * row i's nonzeros in order, with the micro-kernel's arithmetic. Adding a product
 * 0 * finite to such a sum from +0.0 never changes it, so C is bit-identical to the
 * dense micro-kernel's when B is finite. C(i, j) is c[i * ldc + j], or c[j * ldc + i]
 * when ct (C transposed), and cin alike with ldcin. b is the block's packed B (panel
 * q at b + q * kc * nr, zero-padded past cols); acc is scratch of s->rows *
 * PD_GEMM_SPARSE_COLS floats. */
typedef void (*pd_gemm_sparse_fn)(const pd_sparse_rows *s, const float *b, int64_t kc,
                                  int32_t nr, int64_t cols, float *c, int64_t ldc,
                                  const float *cin, int64_t ldcin, float alpha, float beta,
                                  int32_t ct, float *acc);
#define PD_GEMM_SPARSE_COLS 48

/* Whether none of x[0, n) is an Inf or a NaN (a sparse product checks its packed
 * B: an Inf or NaN there must meet the zeros of A, so the product runs dense). */
typedef int (*pd_gemm_finite_fn)(const float *x, int64_t n);

/* The longest k chunk, the same on every ISA: chunks are sums of their own, so with
 * one chunking (and one order of fused multiply-adds in each) the SIMD rows give the
 * same bits. 320 keeps a 6 x 16 kernel's B micro-panel (20 KiB) in a 32 KiB L1. */
#define PD_GEMM_KC_MAX 320

typedef struct pd_gemm_isa {
    int32_t mr, nr; /* micro-tile */
    int32_t mc;     /* m block (multiple of mr): packed A block in L2 */
    /* 0: loop B micro-panels outer (the kc x nr B panel stays in L1); > 0: loop A
     * micro-panels outer over sweeps of this many B panels (kc x nr x b_sweep in L2) */
    int32_t b_sweep;
    pd_gemm_ukr_fn ukr;
    pd_gemm_pack_fn pack; /* packs both A and B panels */
    pd_gemm_sparse_fn sparse;
    pd_gemm_sparse_build_fn sparse_build;
    pd_gemm_finite_fn finite;
    int32_t nmr, nnr;          /* the narrow kernel's most rows and columns */
    /* > 0: an op(A) read in place starts its narrow panels (but the first) on this
     * many bytes, so the kernel's vector loads never span two cache lines */
    int32_t narrow_align;
    pd_gemm_narrow_fn narrow; /* NULL: narrow C takes the micro-kernel */
    pd_gemm_ten_fn ten;       /* NULL: C with 9 or 10 columns takes the narrow kernel */
} pd_gemm_isa;

/* The portable packer (any mr); also the scalar row's. */
void pd_gemm_pack_ref(const float *x, int64_t rs, int64_t cs, int64_t mc, int64_t kc, int32_t mr,
                      float *dst);
void pd_gemm_sparse_build_ref(const float *a, int64_t rsa, int64_t csa, int64_t rows, int64_t k,
                              int32_t nr, int64_t cap, int64_t nseg, int32_t *ends, uint64_t *ent);
int pd_gemm_finite_ref(const float *x, int64_t n);

extern const pd_gemm_isa pd_gemm_scalar;
#if PD_X86
extern const pd_gemm_isa pd_gemm_avx2;
extern const pd_gemm_isa pd_gemm_avx512;
extern const pd_gemm_isa pd_gemm_zen4;
void pd_gemm_pack_avx2(const float *x, int64_t rs, int64_t cs, int64_t mc, int64_t kc, int32_t mr,
                       float *dst);
int pd_gemm_finite_avx2(const float *x, int64_t n);
void pd_gemm_sparse_build_avx2(const float *a, int64_t rsa, int64_t csa, int64_t rows, int64_t k,
                               int32_t nr, int64_t cap, int64_t nseg, int32_t *ends, uint64_t *ent);
/* The narrow kernels' stores: t holds the sums, column j at t + j * nmr (nmr a
 * multiple of 8); C(i, j) = alpha * t + beta * cin as the micro-kernels compute it,
 * for i < rows, j < cols. Reads t only there. */
void pd_gemm_narrow_out_avx2(const float *t, int32_t nmr, float *c, int64_t ldc,
                             const float *cin, int64_t ldcin, float alpha, float beta,
                             int32_t rows, int32_t cols);
void pd_gemm_ten_avx2(int64_t kc, const float *a, int64_t rsa, int64_t csa, const float *b,
                      int64_t rsb, float *c, int64_t ldc, const float *cin, int64_t ldcin,
                      float alpha, float beta, int32_t rows, int32_t cols);
void pd_gemm_sparse_avx2(const pd_sparse_rows *s, const float *b, int64_t kc, int32_t nr,
                         int64_t cols, float *c, int64_t ldc, const float *cin, int64_t ldcin,
                         float alpha, float beta, int32_t ct, float *acc);
#endif

/* What a task does around each block of C it computes (row0.., col0.. in C
 * coordinates):
 * bias: when not NULL, the first k chunk accumulates onto bias[j] broadcast down the
 *   rows (with beta = 1) instead of onto C, as if C had been filled with it: the
 *   micro-kernel reads the bias row, so C is never written twice;
 * after(): once the last k chunk is stored, on the block, or on each column strip
 * of it (one micro-panel wide) while the strip is in L1: it must be elementwise.
 * Blocks and strips start at multiples of the micro-tile width in columns. */
typedef struct pd_gemm_epilogue {
    const float *bias;
    void (*after)(const struct pd_gemm_epilogue *e, float *c, int64_t ldc, int64_t row0,
                  int64_t rows, int64_t col0, int64_t cols);
    void *ctx;
} pd_gemm_epilogue;

/* pd_sgemm after argument checks (and without its k == 0 / alpha == 0 shortcut,
 * which callers with an epilogue handle themselves) on at most max_threads threads
 * (1 inside a pool task: the pool runs one job at a time): requires m, n, k >= 1. */
pd_status pd_gemm_run(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k,
                      float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                      float beta, float *c, int64_t ldc, const pd_gemm_epilogue *ep,
                      int32_t max_threads);

/* pd_sgemm_pair's checks, or pd_sgemm's alone when g1 is NULL. */
pd_status pd_sgemm_pair_check(const pd_sgemm_args *g0, const pd_sgemm_args *g1);

/* The bytes g reads of A and B and writes of C: each operand's span (0 for one
 * that is not touched). */
void pd_sgemm_spans(const pd_sgemm_args *g, size_t *a, size_t *b, size_t *c);

#endif
