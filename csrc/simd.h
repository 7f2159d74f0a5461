/* SIMD intrinsics and per-function target attributes.
 *
 * Kernels are compiled with baseline flags and opt in per function, so the
 * library runs on any x86-64 (and the scalar path anywhere). With PD_SIMDE the
 * x86 intrinsics come from SIMDe's portable emulation instead: `make emulate`
 * builds that way to test the AVX-512 code on CPUs that lack AVX-512.
 */
#ifndef PD_SIMD_H
#define PD_SIMD_H

#ifdef PD_SIMDE
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#include <simde/x86/fma.h>
#define PD_TARGET_AVX2
#define PD_TARGET_AVX512
typedef simde__mmask16 pd_mask16;
#else
#include <immintrin.h>
#define PD_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define PD_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
typedef __mmask16 pd_mask16;
#endif

/* GCC's register-pressure-aware scheduling before register allocation. On the AVX2
 * dropout kernel it interleaves the Philox chains with the apply and drops the
 * spills of the default order (1.1-1.2x measured on Zen 3). Per function, not a
 * global flag: it halves the speed of the GEMM micro-kernels. */
#if defined(__GNUC__) && !defined(__clang__)
#define PD_SCHEDULE __attribute__((optimize("schedule-insns", "sched-pressure")))
#else
#define PD_SCHEDULE
#endif

#endif
