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
     * (n + 7) / 8 bytes (keep iff u >= t, t < 65536; none when mask is NULL) and
     * y = keep ? r(x) * s : +0.0, r = ReLU (pd_relu_ref) when relu is set, else the
     * identity: ReLU then dropout in one pass, as the fused Dense needs. Block
     * counters stay below 2^32: first + (n + 7) / 8 <= 2^32, as the entry points cap
     * n at 2^35 elements. */
    void (*drop)(const uint32_t key[2], uint32_t stream, uint64_t step, uint64_t first,
                 const float *x, float *y, int64_t n, uint32_t t, float s, uint8_t *mask,
                 int32_t relu);
    /* drop on a strip of rows: row r < rows holds len elements (len % 8 == 0) at
     * x + r * ld (y alike), whose mask bytes are blocks first + r * stride ..
     * (at mask + r * stride): the bits of drop on each row, one call for all. */
    void (*drop_rows)(const uint32_t key[2], uint32_t stream, uint64_t step, uint64_t first,
                      int64_t stride, const float *x, float *y, int64_t ld, int64_t rows,
                      int64_t len, uint32_t t, float s, uint8_t *mask, int32_t relu);
    /* y[i] = bit i of mask ? x[i] * s : +0.0 for i < n (mask starts at bit 0). */
    void (*apply)(const float *x, const uint8_t *mask, float *y, int64_t n, float s);
    void (*relu_fwd)(const float *x, float *y, int64_t n);
    /* relu_fwd on rows r < rows of len elements at x + r * ld (y alike). */
    void (*relu_rows)(const float *x, float *y, int64_t ld, int64_t rows, int64_t len);
    void (*relu_bwd)(const float *dy, const float *x, float *dx, int64_t n);
} pd_kernels;

extern const pd_kernels pd_kernels_scalar;
#if PD_X86
extern const pd_kernels pd_kernels_avx2;
extern const pd_kernels pd_kernels_avx512;
extern const pd_kernels pd_kernels_zen4;
/* Shared between rows (ReLU is memory-bound; a strip of dropout rows fills ymm
 * vectors of 4 blocks as well as any). */
void pd_relu_forward_f32_avx2(const float *x, float *y, int64_t n);
void pd_relu_rows_avx2(const float *x, float *y, int64_t ld, int64_t rows, int64_t len);
void pd_relu_backward_f32_avx2(const float *dy, const float *x, float *dx, int64_t n);
void pd_drop_rows_avx2(const uint32_t key[2], uint32_t stream, uint64_t step, uint64_t first,
                       int64_t stride, const float *x, float *y, int64_t ld, int64_t rows,
                       int64_t len, uint32_t t, float s, uint8_t *mask, int32_t relu);
void pd_drop_rows_zen4(const uint32_t key[2], uint32_t stream, uint64_t step, uint64_t first,
                       int64_t stride, const float *x, float *y, int64_t ld, int64_t rows,
                       int64_t len, uint32_t t, float s, uint8_t *mask, int32_t relu);
void pd_apply_avx2(const float *x, const uint8_t *mask, float *y, int64_t n, float s);
#endif

/* The active ISA's table (resolved once, on first use). */
const pd_kernels *pd_active_kernels(void);

/* Run fn(ctx, t, n_tasks) for t in [0, n_tasks) on the thread pool and return when
 * all are done. Any thread may run any t (the caller too, several of them when the
 * workers are slow to start), so fn must depend on t, never on the thread. n_tasks
 * is capped at the pool size. */
typedef void (*pd_task_fn)(void *ctx, int32_t t, int32_t n_tasks);
pd_status pd_parallel(int32_t n_tasks, pd_task_fn fn, void *ctx);

/* Whether p is not a float's address (a view at an odd byte offset). */
static inline int pd_misaligned(const float *p) { return (uintptr_t)p % _Alignof(float) != 0; }

/* Whether [a, a + na) and [b, b + nb) share a byte (NULL or empty never does). */
static inline int pd_overlaps(const void *a, size_t na, const void *b, size_t nb) {
    const char *pa = a, *pb = b;
    return a != NULL && b != NULL && na > 0 && nb > 0 && pa < pb + nb && pb < pa + na;
}

/* No array an argument describes may hold more elements than this: its byte count
 * (8 bytes an element at most) then fits in int64_t and size_t, and so does any
 * offset into it. A larger count is no real array, only arithmetic that would wrap. */
#define PD_MAX_ELEMS ((int64_t)1 << 60)

/* a * b elements (a, b >= 0), or -1 when that is more than PD_MAX_ELEMS. */
static inline int64_t pd_elems(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_mul_overflow(a, b, &r) || r > PD_MAX_ELEMS ? -1 : r;
}

/* pd_span_bytes of an operand larger than PD_MAX_ELEMS: its caller rejects it. */
#define PD_SPAN_BAD SIZE_MAX

/* Bytes from the first element of a rows x cols row-major float operand with leading
 * dimension ld to the end of its last element (rows, cols >= 1, ld >= cols). */
static inline size_t pd_span_bytes(int64_t rows, int64_t cols, int64_t ld) {
    int64_t span;
    if (__builtin_mul_overflow(rows - 1, ld, &span) || __builtin_add_overflow(span, cols, &span) ||
        span > PD_MAX_ELEMS) {
        return PD_SPAN_BAD;
    }
    return (size_t)span * sizeof(float);
}

/* The dropout scale 1 / (1 - p) of the kept elements, rounded once to float. */
static inline float pd_keep_scale(float p) { return (float)(1.0 / (1.0 - (double)p)); }

/* Tasks for `work` items when each extra task should get at least per_task of them
 * (below that, the hand-off to the pool costs more than it saves). */
static inline int32_t pd_tasks_for(int64_t work, int64_t per_task) {
    int32_t t = pd_get_num_threads();
    int64_t useful = work / per_task;
    if (useful < t) {
        t = useful < 1 ? 1 : (int32_t)useful;
    }
    return t;
}

/* [lo, hi) of task t out of `tasks` over n items, cut at multiples of `unit`. */
static inline void pd_task_range(int64_t n, int64_t unit, int32_t t, int32_t tasks, int64_t *lo,
                                 int64_t *hi) {
    int64_t units = (n + unit - 1) / unit;
    int64_t a = units * t / tasks * unit, b = units * (t + 1) / tasks * unit;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

/* Philox4x32-10 constants (Random123). */
#define PD_PHILOX_M0 0xD2511F53u
#define PD_PHILOX_M1 0xCD9E8D57u
#define PD_PHILOX_W0 0x9E3779B9u
#define PD_PHILOX_W1 0xBB67AE85u

#endif
