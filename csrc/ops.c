/* Public elementwise entry points: argument checks, special cases, and the split
 * of the work over threads. Chunks start at multiples of 64 elements, so thread
 * boundaries fall on whole mask bytes and never change a result. */
#include <math.h>
#include <string.h>

#include "ref.h"

/* Elements per extra thread below which splitting costs more than it saves: the
 * mask draw is compute-bound, the mask apply (backward) is a memory stream. */
#define PD_PAR_FORWARD 65536
#define PD_PAR_BACKWARD 1048576
/* Elements per drop call: the AVX-512 kernel draws a tile's mask, then applies it,
 * and this size keeps those mask bytes in L1. */
#define PD_TILE 16384

pd_status pd_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    if (ctr == NULL || key == NULL || out == NULL) {
        return PD_ERR_ARG;
    }
    pd_philox_block(ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1], out);
    return PD_OK;
}

pd_status pd_philox_stream(uint64_t seed, uint32_t stream, uint64_t step, uint64_t first,
                           int64_t n_blocks, uint32_t *out) {
    if (n_blocks < 0 || (n_blocks > 0 && out == NULL) || first > UINT32_MAX + (uint64_t)1 ||
        (uint64_t)n_blocks > UINT32_MAX + (uint64_t)1 - first) {
        return PD_ERR_ARG;
    }
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    pd_active_kernels()->philox(key, stream, step, first, n_blocks, out);
    return PD_OK;
}

uint32_t pd_dropout_threshold(float p) {
    if (!(p > 0.0f)) {
        return 0;
    }
    if (p >= 1.0f) {
        return 65536u;
    }
    return (uint32_t)((double)p * 65536.0 + 0.5);
}

typedef struct {
    const pd_kernels *k;
    const float *x;
    float *y;
    uint8_t *mask;
    const uint8_t *cmask;
    int64_t n;
    float s;
    uint32_t key[2], stream, t;
    uint64_t step;
} drop_job;

static void forward_task(void *arg, int32_t t, int32_t tasks) {
    const drop_job *j = arg;
    int64_t lo, hi;
    pd_task_range(j->n, 64, t, tasks, &lo, &hi);
    for (int64_t a = lo; a < hi; a += PD_TILE) {
        int64_t b = a + PD_TILE < hi ? a + PD_TILE : hi;
        j->k->drop(j->key, j->stream, j->step, (uint64_t)(a >> 3), j->x + a, j->y + a, b - a,
                   j->t, j->s, j->mask != NULL ? j->mask + (a >> 3) : NULL, 0);
    }
}

static void backward_task(void *arg, int32_t t, int32_t tasks) {
    const drop_job *j = arg;
    int64_t lo, hi;
    pd_task_range(j->n, 64, t, tasks, &lo, &hi);
    j->k->apply(j->x + lo, j->cmask + (lo >> 3), j->y + lo, hi - lo, j->s);
}

static int bad_p(float p) { return !(p >= 0.0f && p <= 1.0f); }

/* In place (y == x) is allowed; any other overlap is not. */
static int bad_io(const float *x, const float *y, int64_t n) {
    return x != y && pd_overlaps(x, (size_t)n * sizeof(float), y, (size_t)n * sizeof(float));
}

pd_status pd_dropout_forward_f32(const float *x, float *y, uint8_t *mask, int64_t n, float p,
                                 uint64_t seed, uint32_t stream, uint64_t step) {
    /* Blocks are counted in 32 bits, so n is limited to 2^35 elements. */
    if (n < 0 || n > ((int64_t)1 << 35) || bad_p(p)) {
        return PD_ERR_ARG;
    }
    if (n == 0) {
        return PD_OK;
    }
    size_t nbytes = (size_t)((n + 7) >> 3);
    if (x == NULL || y == NULL || bad_io(x, y, n) ||
        pd_overlaps(mask, nbytes, x, (size_t)n * sizeof(float)) ||
        pd_overlaps(mask, nbytes, y, (size_t)n * sizeof(float))) {
        return PD_ERR_ARG;
    }
    const uint32_t t = pd_dropout_threshold(p);
    if (p == 0.0f) {
        if (y != x) {
            memcpy(y, x, (size_t)n * sizeof(float));
        }
        if (mask != NULL) {
            memset(mask, 0xff, nbytes);
        }
    } else if (t == 65536u) {
        /* p == 1, or so close that no 16-bit value is kept: all zeros. */
        memset(y, 0, (size_t)n * sizeof(float));
        if (mask != NULL) {
            memset(mask, 0, nbytes);
        }
    } else {
        drop_job j = {.k = pd_active_kernels(), .x = x, .y = y, .mask = mask, .n = n,
                      .s = pd_keep_scale(p), .key = {(uint32_t)seed, (uint32_t)(seed >> 32)},
                      .stream = stream, .t = t, .step = step};
        pd_status st = pd_parallel(pd_tasks_for(n, PD_PAR_FORWARD), forward_task, &j);
        if (st != PD_OK) {
            return st;
        }
    }
    if (mask != NULL && (n & 7)) {
        mask[nbytes - 1] &= (uint8_t)((1u << (n & 7)) - 1u);
    }
    return PD_OK;
}

pd_status pd_dropout_backward_f32(const float *dy, const uint8_t *mask, float *dx, int64_t n,
                                  float p) {
    if (n < 0 || n > ((int64_t)1 << 35) || bad_p(p)) {
        return PD_ERR_ARG;
    }
    if (n == 0) {
        return PD_OK;
    }
    size_t nbytes = (size_t)((n + 7) >> 3);
    if (dy == NULL || dx == NULL || mask == NULL || bad_io(dy, dx, n) ||
        pd_overlaps(mask, nbytes, dx, (size_t)n * sizeof(float))) {
        return PD_ERR_ARG;
    }
    if (p == 1.0f) {
        memset(dx, 0, (size_t)n * sizeof(float));
        return PD_OK;
    }
    /* p == 0 takes the general path: the mask may be any mask, and s == 1. */
    drop_job j = {.k = pd_active_kernels(), .x = dy, .y = dx, .cmask = mask, .n = n,
                  .s = pd_keep_scale(p)};
    return pd_parallel(pd_tasks_for(n, PD_PAR_BACKWARD), backward_task, &j);
}

pd_status pd_relu_forward_f32(const float *x, float *y, int64_t n) {
    if (n < 0 || n > PD_MAX_ELEMS) {
        return PD_ERR_ARG;
    }
    if (n == 0) {
        return PD_OK;
    }
    if (x == NULL || y == NULL || bad_io(x, y, n)) {
        return PD_ERR_ARG;
    }
    pd_active_kernels()->relu_fwd(x, y, n);
    return PD_OK;
}

pd_status pd_relu_backward_f32(const float *dy, const float *x, float *dx, int64_t n) {
    if (n < 0 || n > PD_MAX_ELEMS) {
        return PD_ERR_ARG;
    }
    if (n == 0) {
        return PD_OK;
    }
    if (dy == NULL || x == NULL || dx == NULL || bad_io(dy, dx, n) || bad_io(x, dx, n)) {
        return PD_ERR_ARG;
    }
    pd_active_kernels()->relu_bwd(dy, x, dx, n);
    return PD_OK;
}
