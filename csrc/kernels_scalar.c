/* Portable reference kernels: the oracle every SIMD path must match bit for bit. */
#include "ref.h"

static void apply_scalar(const float *x, const uint8_t *mask, float *y, int64_t n, float s) {
    pd_apply_ref(x, mask, y, 0, n, s, 0);
}

static void relu_fwd_scalar(const float *x, float *y, int64_t n) { pd_relu_fwd_ref(x, y, 0, n); }

static void relu_bwd_scalar(const float *dy, const float *x, float *dx, int64_t n) {
    pd_relu_bwd_ref(dy, x, dx, 0, n);
}

const pd_kernels pd_kernels_scalar = {
    .philox = pd_philox_blocks_scalar,
    .drop = pd_drop_ref,
    .apply = apply_scalar,
    .relu_fwd = relu_fwd_scalar,
    .relu_bwd = relu_bwd_scalar,
};
