/* The zen4 row's elementwise kernels: for AVX-512 CPUs whose vector units are 256
 * bits wide (AMD Zen 4), where each 512-bit operation takes two passes. Dropout
 * keeps AVX2's 4-block vectors, with AVX-512VL's three-input xor and 32 registers
 * (256x1024 forward, 1 thread: 60-63 us against AVX2's 80 and AVX-512's 115). The
 * mask apply and ReLU are memory-bound: AVX2's (AVX-512's apply measured the same). */
#include "internal.h"

#if PD_X86
#define PD_YMM_TARGET PD_TARGET_AVX512
#define PD_YMM_TERNLOG 1
/* 32 ymm registers hold 6 chains (24 blocks) without spills: 256x1024 forward 60
 * us, against 67-68 with 3 and 64 with 8 */
#define PD_YMM_WIDE 6
#define PD_YMM(name) name##_zen4
#include "dropout_ymm.h"

const pd_kernels pd_kernels_zen4 = {
    .philox = philox_zen4,
    .drop = drop_zen4,
    .drop_rows = pd_drop_rows_zen4,
    .apply = pd_apply_avx2,
    .relu_fwd = pd_relu_forward_f32_avx2,
    .relu_rows = pd_relu_rows_avx2,
    .relu_bwd = pd_relu_backward_f32_avx2,
};

#endif
