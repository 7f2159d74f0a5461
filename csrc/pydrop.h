/* pydrop public C API.
 *
 * Every function validates its arguments and returns a pd_status; none prints,
 * exits or aborts. Arrays are float32, dense and row-major; sizes are int64_t. No
 * array (nor the span a leading dimension gives it) may exceed 2^60 elements:
 * PD_ERR_ARG, as for any size whose byte count would wrap.
 * The active ISA is chosen once from CPUID + XGETBV (or PYDROP_ISA) and can be
 * changed with pd_isa_set. Work is split over pd_get_num_threads() threads;
 * every result is bit-identical for any thread count.
 */
#ifndef PYDROP_H
#define PYDROP_H

#include <stdint.h>

typedef enum pd_status {
    PD_OK = 0,
    PD_ERR_ARG = 1,         /* an argument is out of its documented range */
    PD_ERR_UNSUPPORTED = 2, /* the ISA asked for is missing on this CPU/OS/build */
    PD_ERR_NOMEM = 3,       /* a scratch buffer could not be allocated */
    PD_ERR_THREAD = 4       /* a worker thread could not be started */
} pd_status;

/* zen4: the AVX2 kernels with AVX-512 where it pays on 256-bit units (AMD Zen 4);
 * it runs wherever avx512 does. */
typedef enum pd_isa {
    PD_ISA_SCALAR = 0,
    PD_ISA_AVX2 = 1,
    PD_ISA_AVX512 = 2,
    PD_ISA_ZEN4 = 3,
    PD_ISA_COUNT = 4
} pd_isa;

/* CPU feature bits reported by pd_cpu_features (CPUID and OS state both). */
#define PD_CPU_SSE2 0x01
#define PD_CPU_AVX 0x02
#define PD_CPU_AVX2 0x04
#define PD_CPU_FMA 0x08
#define PD_CPU_AVX512F 0x10
#define PD_CPU_AVX512BW 0x20
#define PD_CPU_AVX512VL 0x40
#define PD_CPU_AVX512DQ 0x80
/* Not a CPUID bit: AVX-512 runs on 256-bit units, each 512-bit operation in two
 * passes (AMD Zen 4), so ymm kernels are as wide and mostly faster there. */
#define PD_CPU_AVX512_HALF 0x100

uint32_t pd_cpu_features(void);
/* Register-only FMA throughput of the active ISA on pd_get_num_threads() threads:
 * runs about `flops` operations (12 independent chains of fused multiply-adds per
 * thread, on 16, 8 or 1 floats; nothing from memory) and returns how many, or -1. The
 * benchmark suite times it as the ceiling of its SGEMM measurements. */
int64_t pd_fma_peak(int64_t flops);
/* 1 if the CPU, the OS and this build can run the ISA, else 0. */
int32_t pd_isa_supported(int32_t isa);
/* The fastest supported ISA (the widest, but zen4 with PD_CPU_AVX512_HALF), or the
 * one named by PYDROP_ISA (PD_ERR_* if unusable). Every ISA gives the same results. */
pd_status pd_isa_default(int32_t *isa);
int32_t pd_isa_active(void);
pd_status pd_isa_set(int32_t isa);
const char *pd_isa_name(int32_t isa);

/* Threads: 1 <= n <= 64 (PD_ERR_ARG otherwise). The default is 1 until the caller
 * sets it. */
pd_status pd_set_num_threads(int32_t n);
int32_t pd_get_num_threads(void);

/* Philox4x32-10 (Salmon et al. 2011, Random123): one block, ctr and key in,
 * four 32-bit words out. Scalar; the reference for every SIMD path. */
pd_status pd_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* Philox blocks n_blocks..: out[4*b + w] = word w of philox(ctr = (first + b, stream,
 * step lo, step hi), key = (seed lo, seed hi)), using the active ISA. The counter
 * layout is the one the dropout mask uses. Requires first + n_blocks <= 2^32. */
pd_status pd_philox_stream(uint64_t seed, uint32_t stream, uint64_t step, uint64_t first,
                           int64_t n_blocks, uint32_t *out);

/* Dropout keep rule. Element i takes the 16-bit value
 *   u_i = (word (i % 8) / 2 of block i / 8) >> (16 * (i % 2)) & 0xffff
 * and is kept iff u_i >= t, t = pd_dropout_threshold(p) = round(p * 65536).
 * The realised keep probability (65536 - t) / 65536 differs from 1 - p by at most
 * 2^-17. Mask byte j holds elements 8j..8j+7 (bit k = element 8j + k); bits past n
 * are zero. Mask length: (n + 7) / 8 bytes. */
uint32_t pd_dropout_threshold(float p);

/* y = keep ? x * s : +0.0, s = (float)(1 / (1 - (double)p)); writes the mask
 * unless mask is NULL (then y is the same, and the call skips the mask bytes).
 * p == 0: y = x bit for bit, mask all ones. p == 1: y = +0.0 (NaN/Inf too),
 * mask all zeros. y may equal x (in place); no other overlap. */
pd_status pd_dropout_forward_f32(const float *x, float *y, uint8_t *mask, int64_t n, float p,
                                 uint64_t seed, uint32_t stream, uint64_t step);
/* dx = keep ? dy * s : +0.0, keep taken from mask. dx may equal dy. */
pd_status pd_dropout_backward_f32(const float *dy, const uint8_t *mask, float *dx, int64_t n,
                                  float p);

/* ReLU policy: y = x if x > 0 or x is NaN (NaN propagates, payload kept), else +0.0
 * (so -0.0 -> +0.0). Backward: dx = dy if x > 0, x if x is NaN, else +0.0. */
pd_status pd_relu_forward_f32(const float *x, float *y, int64_t n);
pd_status pd_relu_backward_f32(const float *dy, const float *x, float *dx, int64_t n);

/* Sparse operands in SGEMM (and the products built on it): when op(A) or op(B) is
 * mostly zeros (as after ReLU and dropout, or in an image's background) and the
 * other operand, packed, fits one block (2^21 floats), each row of C (of C^T for a
 * sparse op(B)) sums only its nonzero terms, k chunk by k chunk, in the same order
 * with the same arithmetic. A product 0 * x with x finite never changes such a sum,
 * so C is bit-identical to the dense path's, except that a sum which underflows to -0.0
 * stays -0.0 where the dense path's next 0 * x would make it +0.0. An Inf or NaN in
 * the other operand sends the product down the dense path. AUTO takes the sparser
 * operand at most 60% nonzeros (sampled), ALWAYS whenever the product qualifies. */
enum { PD_SPARSE_OFF = 0, PD_SPARSE_AUTO = 1, PD_SPARSE_ALWAYS = 2 };
pd_status pd_set_sparse_gemm(int32_t mode);
int32_t pd_get_sparse_gemm(void);

/* C = alpha * op(A) * op(B) + beta * C, row-major. op(A) is m x k: A is m x k
 * (trans_a = 0, lda >= k) or k x m (trans_a = 1, lda >= m); likewise op(B) is k x n.
 * ldc >= n. beta == 0 never reads C (NaN in C is not propagated); alpha == 0 or
 * k == 0 never reads A and B (C = beta * C, as in BLAS). C must not
 * overlap A or B: PD_ERR_ARG when the spans their leading dimensions give share a
 * byte (a bound, like NumPy's may_share_memory). */
pd_status pd_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k,
                   float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                   float beta, float *c, int64_t ldc);

/* The arguments of one pd_sgemm call. */
typedef struct pd_sgemm_args {
    int32_t trans_a, trans_b;
    int64_t m, n, k;
    float alpha;
    const float *a;
    int64_t lda;
    const float *b;
    int64_t ldb;
    float beta;
    float *c;
    int64_t ldc;
} pd_sgemm_args;

/* Two independent SGEMMs, each bit for bit what pd_sgemm(g[i]) computes. With two
 * threads and at least 2^19 flops each they run side by side, one thread each (the
 * backward pair dW = X^T dZ, dX = dZ W^T: less synchronisation than splitting each
 * over both threads); otherwise one after the other on all threads. Besides
 * pd_sgemm's checks, neither C may overlap the other's A, B or C (PD_ERR_ARG,
 * nothing written). */
pd_status pd_sgemm_pair(const pd_sgemm_args *g0, const pd_sgemm_args *g1);

/* Fused Dense forward: y = dropout(act(x * op(w) + bias)), with the bias, ReLU and
 * dropout applied in the GEMM epilogue while each block of y is in cache. x is m x k
 * (ldx >= k); op(w) is k x n (w is k x n with ldw >= n, or n x k with trans_w = 1 and
 * ldw >= k); bias has n entries or is NULL; y is m x n, dense (ldy = n). act: 0 none,
 * 1 ReLU. y and the mask are bit for bit those of the unfused sequence
 *   y[i][:] = bias; pd_sgemm(0, trans_w, m, n, k, 1, x, ldx, w, ldw, 1, y, n)
 *     (bias == NULL: beta = 0 instead);
 *   if act: pd_relu_forward_f32(y, y, m * n);
 *   pd_dropout_forward_f32(y, y, mask, m * n, p, seed, stream, step)
 * (mask element i * n + j is y[i][j]). mask may be NULL only when p == 0 (then no
 * mask is written). x, w, bias and y must be float-aligned; y and mask must not
 * overlap x, w, bias or each other (PD_ERR_ARG, nothing written). Dropout with
 * 0 < p < 1 joins the epilogue when n % 8 == 0 (each row of y then owns whole mask
 * bytes); otherwise it runs after the GEMM as a second pass over y, with the same
 * bits. p == 1 skips the GEMM: y is all +0.0 whatever x @ w would be. */
pd_status pd_linear_forward_f32(const float *x, int64_t ldx, const float *w, int64_t ldw,
                                int32_t trans_w, const float *bias, float *y, uint8_t *mask,
                                int64_t m, int64_t n, int64_t k, int32_t act, float p,
                                uint64_t seed, uint32_t stream, uint64_t step);

/* Fused Dense backward. First the elementwise part, one pass: for y the forward
 * output of pd_linear_forward_f32 (same m, n, act, p and mask),
 *   dz = act ? relu'(y) (*) dropout_backward(dy) : dropout_backward(dy)
 * bit for bit as pd_dropout_backward_f32(dy, mask, dz, m * n, p) followed, if act, by
 * pd_relu_backward_f32(dz, y, dz, m * n) (mask NULL only when p == 0: then the first
 * step is a copy). If db is not NULL, db[j] += dz[0][j] + dz[1][j] + ... summed in row
 * order in float32 (the same for any thread count), after db is zero-filled when
 * db_accumulate is 0. dz may equal dy; no other overlap. Then the weight and input
 * gradients, two SGEMMs on dz: gw and gx as pd_sgemm_pair(gw, gx), or pd_sgemm on
 * whichever is not NULL (both NULL: none). Every check comes first (PD_ERR_ARG,
 * nothing written): those of both parts; neither GEMM's C may overlap dy, dz, y,
 * the mask or db; and neither GEMM may read dz or db through another operand
 * (dz itself, as A or B, is how they read dz). */
pd_status pd_linear_backward_f32(const float *dy, const uint8_t *mask, const float *y, float *dz,
                                 float *db, int32_t db_accumulate, int64_t m, int64_t n,
                                 int32_t act, float p, const pd_sgemm_args *gw,
                                 const pd_sgemm_args *gx);

/* Softmax cross-entropy forward over n rows of c logits z (labels y). Per row i,
 * in float32: m_i = max_j z_ij, e_ij = exp(z_ij - m_i), s_i = e_i0 + e_i1 + ... in
 * column order, p_ij = e_ij / s_i. *loss = sum over rows, in row order and in double,
 * of (m_i - z_i,y_i) + log(s_i). exp is pydrop's own, faithfully rounded (within
 * 1 ulp), so p is the same on every platform. As in NumPy, a NaN or +inf logit (or
 * a row of -inf only) makes its row of p and the loss NaN; a -inf logit among
 * finite ones gets p = 0. Every y_i must be in [0, c), else PD_ERR_ARG and nothing
 * is written (a label another thread changes during the call is caught where it is
 * used: PD_ERR_ARG, p partly written). n == 0 sets *loss = 0. p must not overlap z
 * or y. */
pd_status pd_softmax_xent_f32(const float *z, const int64_t *y, float *p, int64_t n, int64_t c,
                              double *loss);
/* Its gradient, in place on the forward's p: p_ij = (p_ij - (j == y_i)) * (float)(1 / n),
 * the difference and the product each rounded to float32. Labels as above (checked
 * before anything is written). */
pd_status pd_softmax_xent_backward_f32(float *p, const int64_t *y, int64_t n, int64_t c);

/* One step of torch.optim.SGD (dampening 0, no Nesterov) on n elements, in float32
 * with every product and sum rounded on its own (no fused multiply-add):
 *   t = g[i];  if weight_decay != 0: t = w[i] * weight_decay + t
 *   if momentum != 0: v[i] = v[i] * momentum + t; t = v[i]
 *   w[i] = w[i] - lr * t
 * so the result is bit for bit that of the same NumPy float32 expressions, for any
 * thread count. v is only touched when momentum != 0 (it may be NULL otherwise).
 * w, g and v must not overlap. */
pd_status pd_sgd_step_f32(float *w, const float *g, float *v, int64_t n, float lr, float momentum,
                          float weight_decay);

/* pd_sgd_step_f32 for `count` parameters in one parallel pass (what an optimizer
 * step over a model's weights and biases needs): parameter p is w[p], g[p] and v[p]
 * of n[p] floats, each checked as there (v itself may be NULL when momentum == 0).
 * No array written (w[p], and v[p] when momentum != 0) may overlap another
 * parameter's arrays either. Elementwise, so the result is that of count single
 * calls, for any thread count. */
pd_status pd_sgd_step_multi_f32(float *const *w, const float *const *g, float *const *v,
                                const int64_t *n, int32_t count, float lr, float momentum,
                                float weight_decay);

/* Row gather: dst[i][:] = src[idx[i]][:] for i < n; src is src_rows x cols and dst is
 * n x cols, both dense. Every idx[i] must be in [0, src_rows), else PD_ERR_ARG and
 * dst is not written (an index another thread changes during the call is caught
 * where it is used: PD_ERR_ARG, other rows written). dst must not overlap src or idx. */
pd_status pd_take_rows_f32(const float *src, int64_t src_rows, int64_t cols, const int64_t *idx,
                           int64_t n, float *dst);

#endif
