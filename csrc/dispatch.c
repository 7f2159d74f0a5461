/* CPU feature detection (CPUID + XGETBV), once, and the per-ISA kernel table. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "glibc_compat.h"
#include "internal.h"

#if PD_X86 && !defined(PD_SIMDE)
#include <cpuid.h>
#endif

static const pd_kernels *const kernel_table[PD_ISA_COUNT] = {
    &pd_kernels_scalar,
#if PD_X86
    &pd_kernels_avx2,
    &pd_kernels_avx512,
    &pd_kernels_zen4,
#else
    NULL,
    NULL,
    NULL,
#endif
};
_Static_assert(sizeof(kernel_table) / sizeof(kernel_table[0]) == PD_ISA_COUNT,
               "kernel table must have one row per pd_isa");

static const char *const isa_names[PD_ISA_COUNT] = {"scalar", "avx2", "avx512", "zen4"};

static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static uint32_t features;
static _Atomic int32_t active_isa = -1;

#if PD_X86 && !defined(PD_SIMDE)
static uint64_t xgetbv0(void) {
    uint32_t lo, hi;
    /* XGETBV with ecx = 0 reads XCR0, the register state the OS saves. */
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}
#endif

static void detect(void) {
#if PD_X86 && !defined(PD_SIMDE)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) {
        return;
    }
    if (d & bit_SSE2) {
        features |= PD_CPU_SSE2;
    }
    unsigned family = (a >> 8) & 0xf;
    if (family == 0xf) {
        family += (a >> 20) & 0xff;
    }
    int osxsave = (c & bit_OSXSAVE) != 0;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    int ymm_os = (xcr0 & 0x6) == 0x6;     /* XMM and YMM state */
    int zmm_os = (xcr0 & 0xe6) == 0xe6;   /* plus opmask, ZMM_Hi256, Hi16_ZMM */
    if (ymm_os && (c & bit_AVX)) {
        features |= PD_CPU_AVX;
    }
    if (ymm_os && (c & bit_FMA)) {
        features |= PD_CPU_FMA;
    }
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if (ymm_os && (b & bit_AVX2)) {
            features |= PD_CPU_AVX2;
        }
        if (zmm_os) {
            features |= (b & bit_AVX512F) ? PD_CPU_AVX512F : 0;
            features |= (b & bit_AVX512BW) ? PD_CPU_AVX512BW : 0;
            features |= (b & bit_AVX512VL) ? PD_CPU_AVX512VL : 0;
            features |= (b & bit_AVX512DQ) ? PD_CPU_AVX512DQ : 0;
        }
    }
    /* AMD family 19h (Zen 3 and 4; only Zen 4 has AVX-512): vendor "AuthenticAMD" */
    unsigned vendor[3];
    __cpuid(0, a, vendor[0], vendor[2], vendor[1]);
    if ((features & PD_CPU_AVX512F) && family == 0x19 && memcmp(vendor, "AuthenticAMD", 12) == 0) {
        features |= PD_CPU_AVX512_HALF;
    }
#endif
}

uint32_t pd_cpu_features(void) {
    pthread_once(&detect_once, detect);
    return features;
}

int32_t pd_isa_supported(int32_t isa) {
    if (isa < 0 || isa >= PD_ISA_COUNT || kernel_table[isa] == NULL) {
        return 0;
    }
#ifdef PD_SIMDE
    /* Emulated intrinsics run anywhere. */
    return 1;
#else
    const uint32_t need_avx2 = PD_CPU_AVX | PD_CPU_AVX2 | PD_CPU_FMA;
    const uint32_t need_avx512 =
        need_avx2 | PD_CPU_AVX512F | PD_CPU_AVX512BW | PD_CPU_AVX512VL | PD_CPU_AVX512DQ;
    uint32_t f = pd_cpu_features();
    switch (isa) {
    case PD_ISA_AVX2:
        return (f & need_avx2) == need_avx2;
    case PD_ISA_AVX512:
    case PD_ISA_ZEN4:
        return (f & need_avx512) == need_avx512;
    default:
        return 1;
    }
#endif
}

const char *pd_isa_name(int32_t isa) {
    return (isa >= 0 && isa < PD_ISA_COUNT) ? isa_names[isa] : "unknown";
}

pd_status pd_isa_default(int32_t *isa) {
    if (isa == NULL) {
        return PD_ERR_ARG;
    }
    const char *forced = getenv("PYDROP_ISA");
    if (forced != NULL && forced[0] != '\0') {
        for (int32_t i = 0; i < PD_ISA_COUNT; i++) {
            if (strcmp(forced, isa_names[i]) == 0) {
                *isa = i;
                return pd_isa_supported(i) ? PD_OK : PD_ERR_UNSUPPORTED;
            }
        }
        *isa = -1;
        return PD_ERR_ARG;
    }
    int32_t best = PD_ISA_SCALAR;
    for (int32_t i = PD_ISA_AVX2; i <= PD_ISA_AVX512; i++) {
        if (pd_isa_supported(i)) {
            best = i;
        }
    }
    /* On Zen 4 the AVX2 kernels measured faster than the AVX-512 ones: dropout
     * 1.35x, the MLP's SGEMM products 0.88-1.98x, geomean 1.19x (the 10-wide layer-3
     * ones most: 16-wide panels pad them less than 32-wide ones). zen4 is those,
     * with AVX-512 where it still pays (kernels_zen4.c, pd_gemm_zen4). */
    if (best == PD_ISA_AVX512 && (pd_cpu_features() & PD_CPU_AVX512_HALF) != 0) {
        best = PD_ISA_ZEN4;
    }
    *isa = best;
    return PD_OK;
}

pd_status pd_isa_set(int32_t isa) {
    if (!pd_isa_supported(isa)) {
        return (isa >= 0 && isa < PD_ISA_COUNT) ? PD_ERR_UNSUPPORTED : PD_ERR_ARG;
    }
    atomic_store(&active_isa, isa);
    return PD_OK;
}

int32_t pd_isa_active(void) {
    int32_t isa = atomic_load(&active_isa);
    if (isa < 0) {
        /* First use from C without an explicit choice: the default, or scalar if
         * PYDROP_ISA names something unusable (Python reports that case). */
        if (pd_isa_default(&isa) != PD_OK) {
            isa = PD_ISA_SCALAR;
        }
        int32_t expected = -1;
        atomic_compare_exchange_strong(&active_isa, &expected, isa);
        isa = atomic_load(&active_isa);
    }
    return isa;
}

const pd_kernels *pd_active_kernels(void) { return kernel_table[pd_isa_active()]; }
