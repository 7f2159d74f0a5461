/* Scalar reference: the Philox4x32-10 block function and the element rules.
 * kernels_scalar.c is built from these, and the SIMD kernels use them for their
 * ragged tails, so every path computes the same bits. */
#ifndef PD_REF_H
#define PD_REF_H

#include <stdint.h>
#include <string.h>

#include "internal.h"

static inline void pd_philox_block(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                   uint32_t k0, uint32_t k1, uint32_t out[4]) {
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k0 += PD_PHILOX_W0;
            k1 += PD_PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PD_PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PD_PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Keep bits of one block: bit k set iff 16-bit value k (low half of word k/2
 * first) is >= t. */
static inline uint8_t pd_keep_byte(const uint32_t w[4], uint32_t t) {
    uint32_t byte = 0;
    for (int k = 0; k < 8; k++) {
        uint32_t u = (w[k >> 1] >> (16 * (k & 1))) & 0xffffu;
        byte |= (uint32_t)(u >= t) << k;
    }
    return (uint8_t)byte;
}

/* The mask bytes of blocks [first, first + n), one Philox call each. */
static inline void pd_mask_blocks_scalar(const uint32_t key[2], uint32_t stream, uint64_t step,
                                         uint64_t first, int64_t n, uint32_t t, uint8_t *mask) {
    for (int64_t b = 0; b < n; b++) {
        uint32_t w[4];
        pd_philox_block((uint32_t)(first + (uint64_t)b), stream, (uint32_t)step,
                        (uint32_t)(step >> 32), key[0], key[1], w);
        mask[b] = pd_keep_byte(w, t);
    }
}

static inline void pd_philox_blocks_scalar(const uint32_t key[2], uint32_t stream,
                                           uint64_t step, uint64_t first, int64_t n,
                                           uint32_t *out) {
    for (int64_t b = 0; b < n; b++) {
        pd_philox_block((uint32_t)(first + (uint64_t)b), stream, (uint32_t)step,
                        (uint32_t)(step >> 32), key[0], key[1], out + 4 * b);
    }
}

/* ReLU: NaN propagates, everything not > 0 becomes +0.0. */
static inline float pd_relu_ref(float v) { return (v > 0.0f || v != v) ? v : 0.0f; }

/* y[i] = bit i of mask ? r(x[i]) * s : +0.0, for i in [i0, n); r is pd_relu_ref when
 * relu is set, else the identity. */
static inline void pd_apply_ref(const float *x, const uint8_t *mask, float *y, int64_t i0,
                                int64_t n, float s, int32_t relu) {
    for (int64_t i = i0; i < n; i++) {
        /* A bit-select, not a branch: random masks defeat branch prediction. */
        float v = (relu ? pd_relu_ref(x[i]) : x[i]) * s;
        uint32_t u;
        memcpy(&u, &v, 4);
        u &= 0u - ((uint32_t)(mask[i >> 3] >> (i & 7)) & 1u);
        memcpy(&y[i], &u, 4);
    }
}

/* The pd_kernels.drop contract, one block at a time: the oracle, and the tail of the
 * SIMD versions. */
static inline void pd_drop_ref(const uint32_t key[2], uint32_t stream, uint64_t step,
                               uint64_t first, const float *x, float *y, int64_t n, uint32_t t,
                               float s, uint8_t *mask, int32_t relu) {
    for (int64_t b = 0; 8 * b < n; b++) {
        uint32_t w[4];
        pd_philox_block((uint32_t)(first + (uint64_t)b), stream, (uint32_t)step,
                        (uint32_t)(step >> 32), key[0], key[1], w);
        uint8_t byte = pd_keep_byte(w, t);
        if (mask != NULL) {
            mask[b] = byte;
        }
        int64_t len = n - 8 * b < 8 ? n - 8 * b : 8;
        pd_apply_ref(x + 8 * b, &byte, y + 8 * b, 0, len, s, relu);
    }
}

static inline void pd_relu_fwd_ref(const float *x, float *y, int64_t i0, int64_t n) {
    for (int64_t i = i0; i < n; i++) {
        y[i] = pd_relu_ref(x[i]);
    }
}

static inline void pd_relu_bwd_ref(const float *dy, const float *x, float *dx, int64_t i0,
                                   int64_t n) {
    for (int64_t i = i0; i < n; i++) {
        float v = x[i];
        dx[i] = v > 0.0f ? dy[i] : (v != v ? v : 0.0f);
    }
}

#endif
