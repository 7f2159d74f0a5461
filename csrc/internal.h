/* Internal interfaces shared by the dispatch, threading and per-ISA kernel files. */
#ifndef PD_INTERNAL_H
#define PD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "pydrop.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define PD_X86 1
#else
#define PD_X86 0
#endif

/* Elementwise kernels of one ISA. Each works on a sub-range; the callers in ops.c
 * split the range over threads at multiples of 64 elements (8 mask bytes), so a
 * kernel only sees a ragged tail in its last call. */
typedef struct pd_kernels {
    /* Philox blocks for counters first..first+n-1 (see pd_philox_stream). */
    void (*philox)(const uint32_t key[2], uint32_t stream, uint64_t step, uint64_t first,
                   int64_t n, uint32_t *out);
    /* Dropout forward on n elements whose mask bytes are blocks first..: writes those
     * (n + 7) / 8 bytes (keep iff u >= t, t < 65536) and y = keep ? x * s : +0.0. */
    void (*drop)(const uint32_t key[2], uint32_t stream, uint64_t step, uint64_t first,
                 const float *x, float *y, int64_t n, uint32_t t, float s, uint8_t *mask);
    /* y[i] = bit i of mask ? x[i] * s : +0.0 for i < n (mask starts at bit 0). */
    void (*apply)(const float *x, const uint8_t *mask, float *y, int64_t n, float s);
    void (*relu_fwd)(const float *x, float *y, int64_t n);
    void (*relu_bwd)(const float *dy, const float *x, float *dx, int64_t n);
} pd_kernels;

extern const pd_kernels pd_kernels_scalar;
#if PD_X86
extern const pd_kernels pd_kernels_avx2;
extern const pd_kernels pd_kernels_avx512;
/* Shared by the AVX2 and AVX-512 rows (ReLU is memory-bound). */
void pd_relu_forward_f32_avx2(const float *x, float *y, int64_t n);
void pd_relu_backward_f32_avx2(const float *dy, const float *x, float *dx, int64_t n);
#endif

/* The active ISA's table (resolved once, on first use). */
const pd_kernels *pd_active_kernels(void);

/* Run fn(ctx, t, n_tasks) for t in [0, n_tasks) on the thread pool; the caller
 * runs t = 0 and returns when all are done. n_tasks is capped at the pool size. */
typedef void (*pd_task_fn)(void *ctx, int32_t t, int32_t n_tasks);
pd_status pd_parallel(int32_t n_tasks, pd_task_fn fn, void *ctx);

/* Philox4x32-10 constants (Random123). */
#define PD_PHILOX_M0 0xD2511F53u
#define PD_PHILOX_M1 0xCD9E8D57u
#define PD_PHILOX_W0 0x9E3779B9u
#define PD_PHILOX_W1 0xBB67AE85u

#endif
