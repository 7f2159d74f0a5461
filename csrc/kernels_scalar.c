/* Portable reference kernels: the oracle every SIMD path must match bit for bit. */
#include "ref.h"

static void apply_scalar(const float *x, const uint8_t *mask, float *y, int64_t n, float s) {
    pd_apply_ref(x, mask, y, 0, n, s, 0);
}

static void relu_fwd_scalar(const float *x, float *y, int64_t n) { pd_relu_fwd_ref(x, y, 0, n); }

static void relu_bwd_scalar(const float *dy, const float *x, float *dx, int64_t n) {
    pd_relu_bwd_ref(dy, x, dx, 0, n);
}

static void drop_rows_scalar(const uint32_t key[2], uint32_t stream, uint64_t step,
                             uint64_t first, int64_t stride, const float *x, float *y, int64_t ld,
                             int64_t rows, int64_t len, uint32_t t, float s, uint8_t *mask,
                             int32_t relu) {
    for (int64_t r = 0; r < rows; r++) {
        pd_drop_ref(key, stream, step, first + (uint64_t)(r * stride), x + r * ld, y + r * ld, len,
                    t, s, mask != NULL ? mask + r * stride : NULL, relu);
    }
}

static void relu_rows_scalar(const float *x, float *y, int64_t ld, int64_t rows, int64_t len) {
    for (int64_t r = 0; r < rows; r++) {
        pd_relu_fwd_ref(x + r * ld, y + r * ld, 0, len);
    }
}

const pd_kernels pd_kernels_scalar = {
    .philox = pd_philox_blocks_scalar,
    .drop = pd_drop_ref,
    .drop_rows = drop_rows_scalar,
    .apply = apply_scalar,
    .relu_fwd = relu_fwd_scalar,
    .relu_rows = relu_rows_scalar,
    .relu_bwd = relu_bwd_scalar,
};
