/* SGEMM AVX2+FMA row: a 6x16 micro-kernel (12 ymm accumulators, 2 B loads and 6
 * broadcasts per k step, 12 FMAs), a 16-row narrow kernel and a transposing packer;
 * and the zen4 row, this one with a 32-row narrow kernel on AVX-512VL's 32 ymm
 * registers. */
#include <math.h>

#include "gemm.h"
#include "glibc_compat.h"

#if PD_X86
#include "simd.h"

#define AV_MR 6
#define AV_NR 16
#define AV_NMR 16 /* the narrow kernel's rows and most columns */
#define AV_NNR 6



/* Store lanes [0, count) of v (count <= 8) to dst, touching nothing else. */
PD_TARGET_AVX2 static inline void store_lanes(float *dst, __m256 v, int64_t count) {
    if (count == 8) {
        _mm256_storeu_ps(dst, v);
        return;
    }
    __m128 lo = _mm256_castps256_ps128(v);
    if (count >= 4) {
        _mm_storeu_ps(dst, lo);
        lo = _mm256_extractf128_ps(v, 1);
        dst += 4;
        count -= 4;
    }
    if (count >= 2) {
        /* the low two floats as one 64-bit store */
        _mm_storel_pi((__m64 *)(void *)dst, lo);
        lo = _mm_movehl_ps(lo, lo);
        dst += 2;
        count -= 2;
    }
    if (count == 1) {
        _mm_store_ss(dst, lo);
    }
}

/* Row i of the tile: c = alpha * acc + beta * cin (beta == 0: cin is not read). */
#define AV_STORE_ROW(i, lo, hi)                                                    \
    do {                                                                           \
        float *ci = c + (i) * ldc;                                                 \
        const float *cini = cin + (i) * ldcin;                                     \
        if (beta == 0.0f) {                                                        \
            _mm256_storeu_ps(ci, _mm256_mul_ps(va, lo));                           \
            _mm256_storeu_ps(ci + 8, _mm256_mul_ps(va, hi));                       \
        } else {                                                                   \
            __m256 t0 = _mm256_mul_ps(vb, _mm256_loadu_ps(cini));                  \
            __m256 t1 = _mm256_mul_ps(vb, _mm256_loadu_ps(cini + 8));              \
            _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, lo, t0));                     \
            _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(va, hi, t1));                 \
        }                                                                          \
    } while (0)

/* Edge tile row: the same arithmetic on lanes j < cols only (masked loads never
 * touch memory in masked-off lanes), rows i >= rows skipped. The stores are plain
 * ones of 8/4/2/1 floats: vmaskmovps stores cost tens of cycles on AMD cores. */
#define AV_STORE_EDGE(i, lo, hi)                                                   \
    do {                                                                           \
        if ((i) < rows) {                                                          \
            float *ci = c + (i) * ldc;                                             \
            const float *cini = cin + (i) * ldcin;                                 \
            __m256 r0 = _mm256_mul_ps(va, lo), r1 = _mm256_mul_ps(va, hi);         \
            if (beta != 0.0f) {                                                    \
                r0 = _mm256_fmadd_ps(va, lo, _mm256_mul_ps(vb, _mm256_maskload_ps(cini, m0))); \
                r1 = _mm256_fmadd_ps(va, hi, _mm256_mul_ps(vb, _mm256_maskload_ps(cini + 8, m1))); \
            }                                                                      \
            if (cols >= 8) {                                                       \
                _mm256_storeu_ps(ci, r0);                                          \
                store_lanes(ci + 8, r1, cols - 8);                                 \
            } else {                                                               \
                store_lanes(ci, r0, cols);                                         \
            }                                                                      \
        }                                                                          \
    } while (0)

PD_TARGET_AVX2 static void ukr_avx2_6x16(int64_t kc, const float *restrict a, int64_t rsa,
                                         int64_t csa, const float *restrict b, float *c,
                                         int64_t ldc, const float *cin, int64_t ldcin, float alpha,
                                         float beta, int32_t rows, int32_t cols) {
    /* fetch the C tile while the k loop runs (a short loop would not hide it) */
    for (int i = 0; kc >= 32 && i < AV_MR && i < rows; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + cols - 1), _MM_HINT_T0);
    }
    /* one pointer per row of A, one shared k offset */
    const float *a0 = a, *a1 = a + rsa, *a2 = a + 2 * rsa;
    const float *a3 = a + 3 * rsa, *a4 = a + 4 * rsa, *a5 = a + 5 * rsa;
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    int64_t o = 0;
    /* unrolled so the loop overhead hides behind the FMAs */
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++, o += csa) {
        __m256 b0 = _mm256_loadu_ps(b);
        __m256 b1 = _mm256_loadu_ps(b + 8);
        __m256 ai;
        /* ai = {a[i][p]} x 8; c_i += a[i][p] * b[p][0..15] */
        ai = _mm256_broadcast_ss(a0 + o);
        c00 = _mm256_fmadd_ps(ai, b0, c00);
        c01 = _mm256_fmadd_ps(ai, b1, c01);
        ai = _mm256_broadcast_ss(a1 + o);
        c10 = _mm256_fmadd_ps(ai, b0, c10);
        c11 = _mm256_fmadd_ps(ai, b1, c11);
        ai = _mm256_broadcast_ss(a2 + o);
        c20 = _mm256_fmadd_ps(ai, b0, c20);
        c21 = _mm256_fmadd_ps(ai, b1, c21);
        ai = _mm256_broadcast_ss(a3 + o);
        c30 = _mm256_fmadd_ps(ai, b0, c30);
        c31 = _mm256_fmadd_ps(ai, b1, c31);
        ai = _mm256_broadcast_ss(a4 + o);
        c40 = _mm256_fmadd_ps(ai, b0, c40);
        c41 = _mm256_fmadd_ps(ai, b1, c41);
        ai = _mm256_broadcast_ss(a5 + o);
        c50 = _mm256_fmadd_ps(ai, b0, c50);
        c51 = _mm256_fmadd_ps(ai, b1, c51);
        b += AV_NR;
    }
    const __m256 va = _mm256_set1_ps(alpha);
    const __m256 vb = _mm256_set1_ps(beta);
    if (rows == AV_MR && cols == AV_NR) {
        AV_STORE_ROW(0, c00, c01);
        AV_STORE_ROW(1, c10, c11);
        AV_STORE_ROW(2, c20, c21);
        AV_STORE_ROW(3, c30, c31);
        AV_STORE_ROW(4, c40, c41);
        AV_STORE_ROW(5, c50, c51);
    } else {
        /* lane j of m0 / m1 is all ones iff column j / 8 + j < cols */
        const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), iota);
        const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), iota);
        AV_STORE_EDGE(0, c00, c01);
        AV_STORE_EDGE(1, c10, c11);
        AV_STORE_EDGE(2, c20, c21);
        AV_STORE_EDGE(3, c30, c31);
        AV_STORE_EDGE(4, c40, c41);
        AV_STORE_EDGE(5, c50, c51);
    }
}

/* dst[0..1] = src[0..1] as one 64-bit load and store. */
PD_TARGET_AVX2 static inline void copy2(float *dst, const float *src) {
    __m128 v = _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(const void *)src);
    _mm_storel_pi((__m64 *)(void *)dst, v);
}

/* Copy n floats (n <= mr), then zeros up to mr. */
PD_TARGET_AVX2 static inline void copy_pad(float *dst, const float *src, int64_t n, int64_t mr) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
    }
    for (; i + 4 <= n; i += 4) {
        _mm_storeu_ps(dst + i, _mm_loadu_ps(src + i));
    }
    for (; i < n; i++) {
        dst[i] = src[i];
    }
    for (; i < mr; i++) {
        dst[i] = 0.0f;
    }
}

/* In-register 8x8 transpose: on return r[q] lane i = input r[i] lane q. */
PD_TARGET_AVX2 static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Full 6-row panel, elements contiguous along p: per 8 k steps, 6 loads, a partial
 * 8x8 transpose network, and per k step one 4-float + one 2-float store. */
PD_TARGET_AVX2 static int64_t pack6_t(const float *x, int64_t rs, int64_t kc, float *dst) {
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8, dst += 48) {
        __m256 r0 = _mm256_loadu_ps(x + 0 * rs + p), r1 = _mm256_loadu_ps(x + 1 * rs + p);
        __m256 r2 = _mm256_loadu_ps(x + 2 * rs + p), r3 = _mm256_loadu_ps(x + 3 * rs + p);
        __m256 r4 = _mm256_loadu_ps(x + 4 * rs + p), r5 = _mm256_loadu_ps(x + 5 * rs + p);
        /* t0 = r0[0] r1[0] r0[1] r1[1] | r0[4] r1[4] r0[5] r1[5], etc. */
        __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
        __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
        __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
        /* s_q = r0..r3 at k step q | at k step q + 4 */
        __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        __m128 lo[4] = {_mm256_castps256_ps128(s0), _mm256_castps256_ps128(s1),
                        _mm256_castps256_ps128(s2), _mm256_castps256_ps128(s3)};
        __m128 hi[4] = {_mm256_extractf128_ps(s0, 1), _mm256_extractf128_ps(s1, 1),
                        _mm256_extractf128_ps(s2, 1), _mm256_extractf128_ps(s3, 1)};
        /* (r4, r5) pairs: k steps 0,1 | 4,5 in t4; 2,3 | 6,7 in t5 */
        __m128 u0 = _mm256_castps256_ps128(t4), u1 = _mm256_castps256_ps128(t5);
        __m128 v0 = _mm256_extractf128_ps(t4, 1), v1 = _mm256_extractf128_ps(t5, 1);
        for (int q = 0; q < 4; q++) {
            _mm_storeu_ps(dst + q * 6, lo[q]);
            _mm_storeu_ps(dst + (q + 4) * 6, hi[q]);
        }
        _mm_storel_pi((__m64 *)(void *)(dst + 0 * 6 + 4), u0);
        _mm_storeh_pi((__m64 *)(void *)(dst + 1 * 6 + 4), u0);
        _mm_storel_pi((__m64 *)(void *)(dst + 2 * 6 + 4), u1);
        _mm_storeh_pi((__m64 *)(void *)(dst + 3 * 6 + 4), u1);
        _mm_storel_pi((__m64 *)(void *)(dst + 4 * 6 + 4), v0);
        _mm_storeh_pi((__m64 *)(void *)(dst + 5 * 6 + 4), v0);
        _mm_storel_pi((__m64 *)(void *)(dst + 6 * 6 + 4), v1);
        _mm_storeh_pi((__m64 *)(void *)(dst + 7 * 6 + 4), v1);
    }
    return p;
}

/* Full groups of 8 rows, elements contiguous along p: 8x8 transposes. */
PD_TARGET_AVX2 static int64_t pack8n_t(const float *x, int64_t rs, int64_t kc, int64_t mr,
                                       float *dst) {
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        for (int64_t ig = 0; ig < mr; ig += 8) {
            __m256 r[8];
            for (int q = 0; q < 8; q++) {
                r[q] = _mm256_loadu_ps(x + (ig + q) * rs + p);
            }
            transpose8(r);
            for (int q = 0; q < 8; q++) {
                _mm256_storeu_ps(dst + (p + q) * mr + ig, r[q]);
            }
        }
    }
    return p;
}

/* One panel of `rows` (<= mr) rows whose elements are contiguous along p: read
 * 8 x 8 blocks, transpose in registers, store mr-wide panel rows. */
PD_TARGET_AVX2 static void pack_panel_t(const float *x, int64_t rs, int64_t rows, int64_t kc,
                                        int64_t mr, float *dst) {
    int64_t p = 0;
    if (rows == mr && mr == 6) {
        p = pack6_t(x, rs, kc, dst);
    } else if (rows == mr && mr % 8 == 0) {
        p = pack8n_t(x, rs, kc, mr, dst);
    } else {
        /* edge panel (or an mr without a fast path): missing rows read as zero */
        for (; p + 8 <= kc; p += 8) {
            for (int64_t ig = 0; ig < mr; ig += 8) {
                __m256 r[8];
                for (int64_t q = 0; q < 8; q++) {
                    r[q] = ig + q < rows ? _mm256_loadu_ps(x + (ig + q) * rs + p)
                                         : _mm256_setzero_ps();
                }
                transpose8(r);
                int64_t lanes = mr - ig < 8 ? mr - ig : 8;
                for (int64_t q = 0; q < 8; q++) {
                    store_lanes(dst + (p + q) * mr + ig, r[q], lanes);
                }
            }
        }
    }
    for (; p < kc; p++) {
        for (int64_t i = 0; i < mr; i++) {
            dst[p * mr + i] = i < rows ? x[i * rs + p] : 0.0f;
        }
    }
}

/* One panel whose rows are adjacent in memory (x[i + p * cs]): each k step is one
 * short contiguous copy. Full panels of the kernels' mr get straight-line code. */
PD_TARGET_AVX2 static void pack_panel_n(const float *x, int64_t cs, int64_t rows, int64_t kc,
                                        int64_t mr, float *dst) {
    if (rows == mr && mr == 6) {
        for (int64_t p = 0; p < kc; p++, x += cs, dst += 6) {
            _mm_storeu_ps(dst, _mm_loadu_ps(x));
            copy2(dst + 4, x + 4);
        }
    } else if (rows == mr && mr % 8 == 0) {
        for (int64_t p = 0; p < kc; p++, x += cs, dst += mr) {
            for (int64_t i = 0; i < mr; i += 8) {
                _mm256_storeu_ps(dst + i, _mm256_loadu_ps(x + i));
            }
        }
    } else {
        for (int64_t p = 0; p < kc; p++) {
            copy_pad(dst + p * mr, x + p * cs, rows, mr);
        }
    }
}

/* Rows adjacent in memory with mr == 6 (op(A) = A^T): walk k in blocks of 8 and,
 * inside a block, every panel. Each source cache line (a row of A^T) is then used
 * whole while hot; panel by panel, a power-of-two lda would map all kc rows onto a
 * few L1 sets and miss on every load. */
PD_TARGET_AVX2 static void pack6_n_blocked(const float *x, int64_t cs, int64_t mc, int64_t kc,
                                           float *dst) {
    const int64_t full = mc / 6;
    for (int64_t p0 = 0; p0 < kc; p0 += 8) {
        int64_t p1 = p0 + 8 < kc ? p0 + 8 : kc;
        for (int64_t r = 0; r < full; r++) {
            const float *xs = x + r * 6;
            float *d = dst + r * 6 * kc;
            for (int64_t p = p0; p < p1; p++) {
                _mm_storeu_ps(d + p * 6, _mm_loadu_ps(xs + p * cs));
                copy2(d + p * 6 + 4, xs + p * cs + 4);
            }
        }
    }
    if (full * 6 < mc) {
        pack_panel_n(x + full * 6, cs, mc - full * 6, kc, 6, dst + full * 6 * kc);
    }
}

/* Rows adjacent in memory with mr % 8 == 0 (op(B) = B): the same k-blocked walk,
 * so a strip of 8 source rows is read left to right across all panels. */
PD_TARGET_AVX2 static void pack8n_n_blocked(const float *x, int64_t cs, int64_t mc, int64_t kc,
                                            int64_t mr, float *dst) {
    const int64_t full = mc / mr;
    for (int64_t p0 = 0; p0 < kc; p0 += 8) {
        int64_t p1 = p0 + 8 < kc ? p0 + 8 : kc;
        for (int64_t r = 0; r < full; r++) {
            const float *xs = x + r * mr;
            float *d = dst + r * mr * kc;
            for (int64_t p = p0; p < p1; p++) {
                for (int64_t i = 0; i < mr; i += 8) {
                    _mm256_storeu_ps(d + p * mr + i, _mm256_loadu_ps(xs + p * cs + i));
                }
            }
        }
    }
    if (full * mr < mc) {
        pack_panel_n(x + full * mr, cs, mc - full * mr, kc, mr, dst + full * mr * kc);
    }
}

PD_TARGET_AVX2 void pd_gemm_pack_avx2(const float *x, int64_t rs, int64_t cs, int64_t mc,
                                      int64_t kc, int32_t mr, float *dst) {
    if (rs == 1 && mr == 6) {
        pack6_n_blocked(x, cs, mc, kc, dst);
        return;
    }
    if (rs == 1 && mr % 8 == 0) {
        pack8n_n_blocked(x, cs, mc, kc, mr, dst);
        return;
    }
    for (int64_t i0 = 0; i0 < mc; i0 += mr, dst += (int64_t)mr * kc) {
        int64_t rows = mc - i0 < mr ? mc - i0 : mr;
        const float *xi = x + i0 * rs;
        if (rs == 1) {
            pack_panel_n(xi, cs, rows, kc, mr, dst);
        } else if (cs == 1) {
            pack_panel_t(xi, rs, rows, kc, mr, dst);
        } else {
            pd_gemm_pack_ref(xi, rs, cs, rows, kc, mr, dst);
        }
    }
}

/* ---- sparse op(A) (gemm.h): list builders and the row kernel --------------- */

/* An entry's value broadcast and its offset, from one load: the entry is held in a
 * general register (the empty asm), so that gcc does not turn the broadcast back into
 * a second load from memory. The kernels are bound by loads (two a cycle on Zen 4):
 * per nonzero of a 48-column block, 6 of B, and 2 more for the value and the offset
 * as separate lists; as one entry, 1 (a pair of rows, 256^3 at a third nonzeros, B
 * in L1: 77 -> 88 GFLOP/s). */
#define SP_ENTRY(e, s, o)                                                          \
    uint64_t s##_w = (e);                                                          \
    __asm__("" : "+r"(s##_w));                                                     \
    const __m256 s = _mm256_castsi256_ps(_mm256_set1_epi32((int)(s##_w >> 32)));   \
    const int32_t o = (int32_t)(uint32_t)s##_w

/* Add the products of nonzeros [t0, t1) of one row to x: np panels of vp vectors. */
#define SP_ROW_LOOP(t0, t1, en, x)                                                 \
    for (int64_t t = (t0); t < (t1); t++) {                                        \
        SP_ENTRY((en)[t], s_, o_);                                                 \
        for (int q = 0; q < np; q++) {                                             \
            for (int u = 0; u < vp; u++) {                                         \
                (x)[q * vp + u] =                                                  \
                    _mm256_fmadd_ps(s_, _mm256_loadu_ps(pb[q] + o_ + 8 * u), (x)[q * vp + u]); \
            }                                                                      \
        }                                                                          \
    }

/* c = alpha * acc + beta * cin on the first cols columns of a row (the dense
 * kernel's AV_STORE_ROW arithmetic), or acc kept for the next segment. A macro, not
 * a function taking x's address, so that x stays in registers. */
#define SP_FINISH(x, keep, c, cin)                                                 \
    _Pragma("GCC unroll 8") for (int v = 0; v < nv; v++) {                         \
        if (!last || ct) {                                                         \
            _mm256_storeu_ps((keep) + 8 * v, (x)[v]);                              \
        } else if (8 * v < cols) {                                                 \
            int64_t cnt = cols - 8 * v < 8 ? cols - 8 * v : 8;                     \
            __m256 r = _mm256_mul_ps(va, (x)[v]);                                  \
            if (beta != 0.0f) {                                                    \
                __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)cnt), iota); \
                r = _mm256_fmadd_ps(va, (x)[v],                                    \
                                    _mm256_mul_ps(vb, _mm256_maskload_ps((cin) + 8 * v, m))); \
            }                                                                      \
            store_lanes((c) + 8 * v, r, cnt);                                      \
        }                                                                          \
    }

/* A column block's finished sums (acc rows) into a transposed C: C(i, j) =
 * c[j * ldc + i] = alpha * acc + beta * C(i, j), 8 x 8 blocks through registers,
 * the edges one element at a time with the same arithmetic (fmaf rounds once). */
PD_TARGET_AVX2 __attribute__((noinline)) static void
sp_store_t(int64_t rows, int64_t cols, const float *acc, float *c, int64_t ldc, float alpha,
           float beta) {
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    const int64_t r8 = rows & ~(int64_t)7, c8 = cols & ~(int64_t)7;
    for (int64_t i0 = 0; i0 < r8; i0 += 8) {
        for (int64_t j0 = 0; j0 < c8; j0 += 8) {
            __m256 r[8];
            for (int l = 0; l < 8; l++) {
                r[l] = _mm256_loadu_ps(acc + (i0 + l) * PD_GEMM_SPARSE_COLS + j0);
            }
            transpose8(r);
            for (int l = 0; l < 8; l++) {
                float *d = c + (j0 + l) * ldc + i0;
                __m256 v = _mm256_mul_ps(va, r[l]);
                if (beta != 0.0f) {
                    v = _mm256_fmadd_ps(va, r[l], _mm256_mul_ps(vb, _mm256_loadu_ps(d)));
                }
                _mm256_storeu_ps(d, v);
            }
        }
    }
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t j = i < r8 ? c8 : 0; j < cols; j++) {
            float x = acc[i * PD_GEMM_SPARSE_COLS + j], *d = c + j * ldc + i;
            *d = beta == 0.0f ? alpha * x : fmaf(alpha, x, beta * *d);
        }
    }
}

/* One column block (np panels of vp vectors at pb[]) of every row, segment by
 * segment; rows go in pairs so that two independent sums hide the FMA latency. */
PD_TARGET_AVX2 static inline __attribute__((always_inline)) void
sp_block(int np, int vp, const pd_sparse_rows *s, const float *const *pb, int64_t cols,
         float *c, int64_t ldc, const float *cin, int64_t ldcin, float alpha, float beta,
         int32_t ct, float *acc) {
    const int nv = np * vp;
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t sg = 0; sg < s->nseg; sg++) {
        const int last = sg + 1 == s->nseg;
        for (int64_t i = 0; i < s->rows; i += 2) {
            const int two = i + 1 < s->rows;
            __m256 x[6], y[6];
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++) {
                const float *ki = acc + i * PD_GEMM_SPARSE_COLS + 8 * v;
                x[v] = sg == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(ki);
                y[v] = sg == 0 || !two ? _mm256_setzero_ps()
                                       : _mm256_loadu_ps(ki + PD_GEMM_SPARSE_COLS);
            }
            const int32_t *ei = s->ends + i * s->nseg;
            const uint64_t *eni = s->ent + i * s->cap, *enj = eni + s->cap;
            int64_t ti = sg == 0 ? 0 : ei[sg - 1], ni = ei[sg];
            int64_t tj = 0, nj = 0;
            if (two) {
                tj = sg == 0 ? 0 : ei[s->nseg + sg - 1];
                nj = ei[s->nseg + sg];
            }
            /* both rows while both have nonzeros left in this segment */
            int64_t both = ni - ti < nj - tj ? ni - ti : nj - tj;
            for (int64_t t = 0; t < both; t++) {
                SP_ENTRY(eni[ti + t], si, o1);
                SP_ENTRY(enj[tj + t], sj, o2);
                for (int q = 0; q < np; q++) {
                    for (int u = 0; u < vp; u++) {
                        x[q * vp + u] = _mm256_fmadd_ps(si, _mm256_loadu_ps(pb[q] + o1 + 8 * u),
                                                        x[q * vp + u]);
                        y[q * vp + u] = _mm256_fmadd_ps(sj, _mm256_loadu_ps(pb[q] + o2 + 8 * u),
                                                        y[q * vp + u]);
                    }
                }
            }
            SP_ROW_LOOP(ti + both, ni, eni, x)
            SP_ROW_LOOP(tj + both, nj, enj, y)
            SP_FINISH(x, acc + i * PD_GEMM_SPARSE_COLS, c + i * ldc, cin + i * ldcin)
            if (two) {
                SP_FINISH(y, acc + (i + 1) * PD_GEMM_SPARSE_COLS, c + (i + 1) * ldc,
                          cin + (i + 1) * ldcin)
            }
        }
        if (last && ct) {
            sp_store_t(s->rows, cols, acc, c, ldc, alpha, beta);
        }
    }
}

/* lut[mask]: the indices of mask's set bits, lowest first, one per byte (the rest 0) */
static uint64_t compress_lut[256];
static pthread_once_t compress_once = PTHREAD_ONCE_INIT;

static void compress_lut_init(void) {
    for (int m = 0; m < 256; m++) {
        uint64_t e = 0;
        int n = 0;
        for (int b = 0; b < 8; b++) {
            if (m >> b & 1) {
                e |= (uint64_t)b << (8 * n++);
            }
        }
        compress_lut[m] = e;
    }
}

/* Append the nonzeros of x (the row's elements p0 .. p0 + 7) to a row's list at
 * *t, storing 8 entries (the ones past the kept count are overwritten later). */
PD_TARGET_AVX2 static inline void compress8(__m256 x, int64_t p0, int32_t nr, uint64_t *e,
                                            int32_t *t) {
    int msk = _mm256_movemask_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_NEQ_UQ));
    __m256i perm = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)compress_lut[msk]));
    __m256i pv = _mm256_castps_si256(_mm256_permutevar8x32_ps(x, perm));
    __m256i po = _mm256_mullo_epi32(_mm256_add_epi32(perm, _mm256_set1_epi32((int)p0)),
                                    _mm256_set1_epi32(nr));
    /* (offset, value) pairs: lanes 0 1 4 5 and 2 3 6 7, then back in order */
    __m256i lo = _mm256_unpacklo_epi32(po, pv), hi = _mm256_unpackhi_epi32(po, pv);
    _mm256_storeu_si256((__m256i *)(void *)(e + *t), _mm256_permute2x128_si256(lo, hi, 0x20));
    _mm256_storeu_si256((__m256i *)(void *)(e + *t + 4), _mm256_permute2x128_si256(lo, hi, 0x31));
    *t += __builtin_popcount((unsigned)msk);
}

/* One scalar append (edges). */
static inline void append1(float x, int64_t p, int32_t nr, uint64_t *e, int32_t *t) {
    e[*t] = pd_sparse_entry(p * nr, x);
    *t += x != 0.0f;
}

PD_TARGET_AVX2 void pd_gemm_sparse_build_avx2(const float *a, int64_t rsa, int64_t csa,
                                              int64_t rows, int64_t k, int32_t nr, int64_t cap,
                                              int64_t nseg, int32_t *ends, uint64_t *ent) {
    pthread_once(&compress_once, compress_lut_init);
    const int64_t k8 = k & ~(int64_t)7;
    /* each row's running count lives in its last ends slot; segment ends (multiples
     * of 8) are copied out as p passes them */
    if (csa == 1) {
        for (int64_t i = 0; i < rows; i++) {
            const float *x = a + i * rsa;
            uint64_t *en = ent + i * cap;
            int32_t *e = ends + i * nseg;
            int32_t t = 0;
            for (int64_t p = 0; p < k8; p += 8) {
                compress8(_mm256_loadu_ps(x + p), p, nr, en, &t);
                if ((p + 8) % PD_GEMM_SPARSE_SEG == 0 && p + 8 < k) {
                    e[(p + 8) / PD_GEMM_SPARSE_SEG - 1] = t;
                }
            }
            for (int64_t p = k8; p < k; p++) {
                append1(x[p], p, nr, en, &t);
            }
            e[nseg - 1] = t;
        }
        return;
    }
    /* X's columns are contiguous: 8 x 8 blocks transposed in registers, then the
     * same compression per row */
    const int64_t r8 = rows & ~(int64_t)7;
    for (int64_t i = 0; i < rows; i++) {
        ends[i * nseg + nseg - 1] = 0;
    }
    for (int64_t p = 0; p < k; p += 8) {
        const int64_t pn = k - p < 8 ? k - p : 8;
        for (int64_t i0 = 0; i0 < r8 && pn == 8; i0 += 8) {
            const float *x = a + i0 + p * csa;
            /* col[l]: row i0 + l of X over p .. p + 7 */
            __m256 col[8];
            for (int l = 0; l < 8; l++) {
                col[l] = _mm256_loadu_ps(x + l * csa);
            }
            transpose8(col);
            for (int l = 0; l < 8; l++) {
                int64_t i = i0 + l;
                compress8(col[l], p, nr, ent + i * cap, ends + i * nseg + nseg - 1);
            }
        }
        for (int64_t i = pn == 8 ? r8 : 0; i < rows; i++) {
            for (int64_t q = p; q < p + pn; q++) {
                append1(a[i + q * csa], q, nr, ent + i * cap, ends + i * nseg + nseg - 1);
            }
        }
        if ((p + 8) % PD_GEMM_SPARSE_SEG == 0 && p + 8 < k) {
            for (int64_t i = 0; i < rows; i++) {
                ends[i * nseg + (p + 8) / PD_GEMM_SPARSE_SEG - 1] = ends[i * nseg + nseg - 1];
            }
        }
    }
}

PD_TARGET_AVX2 int pd_gemm_finite_avx2(const float *x, int64_t n) {
    const __m256i e = _mm256_set1_epi32(0x7f800000);
    __m256i b0 = _mm256_setzero_si256(), b1 = b0;
    int64_t i = 0;
    /* two chains, so the loads, not the or latency, set the pace */
    for (; i + 16 <= n; i += 16) {
        __m256i u0 =
            _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(x + i)), e);
        __m256i u1 =
            _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(x + i + 8)), e);
        b0 = _mm256_or_si256(b0, _mm256_cmpeq_epi32(u0, e));
        b1 = _mm256_or_si256(b1, _mm256_cmpeq_epi32(u1, e));
    }
    /* (lanes are all ones or zero; SIMDe 0.7.4's _mm256_testz_si256, which make
     * emulate uses, answered 1 for a vector with a lane set) */
    b0 = _mm256_or_si256(b0, b1);
    return _mm256_movemask_ps(_mm256_castsi256_ps(b0)) == 0 && pd_gemm_finite_ref(x + i, n - i);
}

PD_TARGET_AVX2 void pd_gemm_sparse_avx2(const pd_sparse_rows *s, const float *b, int64_t kc,
                                        int32_t nr, int64_t cols, float *c, int64_t ldc,
                                        const float *cin, int64_t ldcin, float alpha, float beta,
                                        int32_t ct, float *acc) {
    /* column blocks of PD_GEMM_SPARSE_COLS: 3 panels of 16 (AVX2 packing) or one of 32
     * (AVX-512 packing); a block's last panel may run past cols (zero padding) */
    const int vp = nr / 8, per = PD_GEMM_SPARSE_COLS / nr;
    for (int64_t q0 = 0; q0 * nr < cols; q0 += per) {
        int64_t c0 = q0 * nr, w = cols - c0 < per * nr ? cols - c0 : per * nr;
        int np = (int)((w + nr - 1) / nr);
        const float *pb[3];
        for (int q = 0; q < np; q++) {
            pb[q] = b + (q0 + q) * kc * nr;
        }
        /* (transposed, cin is C itself: sp_store_t reads it) */
        float *cb = c + (ct ? c0 * ldc : c0);
        const float *cinb = cin + (ct ? c0 * ldcin : c0);
        if (vp == 2 && np == 3) {
            sp_block(3, 2, s, pb, w, cb, ldc, cinb, ldcin, alpha, beta, ct, acc);
        } else if (vp == 2 && np == 2) {
            sp_block(2, 2, s, pb, w, cb, ldc, cinb, ldcin, alpha, beta, ct, acc);
        } else if (vp == 2) {
            sp_block(1, 2, s, pb, w, cb, ldc, cinb, ldcin, alpha, beta, ct, acc);
        } else {
            sp_block(1, 4, s, pb, w, cb, ldc, cinb, ldcin, alpha, beta, ct, acc);
        }
    }
}

/* Column jj of the narrow kernel's step, when the kernel has that column (nc is a
 * constant once inlined, so the test folds away). Named accumulators, not arrays:
 * gcc kept an array in registers but also stored it to the stack on every step. */
#define AV_NARROW_COL(jj)                                                          \
    if (nc > (jj)) {                                                               \
        const __m256 bj = _mm256_broadcast_ss(b + (jj) * csb);                     \
        l##jj = _mm256_fmadd_ps(a0, bj, l##jj);                                    \
        h##jj = _mm256_fmadd_ps(a1, bj, h##jj);                                    \
    }
#define AV_NARROW_OUT(jj)                                                          \
    if (nc > (jj)) {                                                               \
        _mm256_store_ps(t + (jj) * AV_NMR, l##jj);                                 \
        _mm256_store_ps(t + (jj) * AV_NMR + 8, h##jj);                             \
    }

/* The narrow kernel's sums for nc columns: two vectors down the 16 rows times nc
 * broadcasts of B per k step, 2 * nc accumulators (at most 12, plus 2 loads and a
 * broadcast: 15 of 16 ymm). Column j leaves at t + j * 16. */
PD_TARGET_AVX2 static inline __attribute__((always_inline)) void
narrow_sums(int nc, int64_t kc, const float *restrict a, int64_t csa, const float *restrict b,
            int64_t rsb, int64_t csb, float *t) {
    __m256 l0 = _mm256_setzero_ps(), l1 = l0, l2 = l0, l3 = l0, l4 = l0, l5 = l0;
    __m256 h0 = l0, h1 = l0, h2 = l0, h3 = l0, h4 = l0, h5 = l0;
#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++, a += csa, b += rsb) {
        const __m256 a0 = _mm256_loadu_ps(a), a1 = _mm256_loadu_ps(a + 8);
        AV_NARROW_COL(0)
        AV_NARROW_COL(1)
        AV_NARROW_COL(2)
        AV_NARROW_COL(3)
        AV_NARROW_COL(4)
        AV_NARROW_COL(5)
    }
    AV_NARROW_OUT(0)
    AV_NARROW_OUT(1)
    AV_NARROW_OUT(2)
    AV_NARROW_OUT(3)
    AV_NARROW_OUT(4)
    AV_NARROW_OUT(5)
}

PD_TARGET_AVX2 void pd_gemm_narrow_out_avx2(const float *t, int32_t nmr, float *c, int64_t ldc,
                                            const float *cin, int64_t ldcin, float alpha,
                                            float beta, int32_t rows, int32_t cols) {
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    /* 8 x 8 blocks: columns of t in, transposed to rows of C */
    for (int32_t j0 = 0; j0 < cols; j0 += 8) {
        const int32_t w = cols - j0 < 8 ? cols - j0 : 8;
        const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(w), iota);
        for (int32_t i0 = 0; i0 < rows; i0 += 8) {
            const int32_t h = rows - i0 < 8 ? rows - i0 : 8;
            /* a block of fewer than 8 rows does not read t past them: t may start
             * mid-panel (a short last panel's first stored row), and they past its end */
            const __m256i hl = _mm256_cmpgt_epi32(_mm256_set1_epi32(h), iota);
            __m256 v[8], in[8];
            for (int q = 0; q < 8; q++) {
                const float *tq = t + (j0 + q) * nmr + i0;
                v[q] = q >= w  ? _mm256_setzero_ps()
                       : h == 8 ? _mm256_loadu_ps(tq)
                                : _mm256_maskload_ps(tq, hl);
            }
            if (beta == 0.0f) {
                for (int q = 0; q < 8; q++) {
                    v[q] = _mm256_mul_ps(va, v[q]);
                }
            } else {
                /* cin's rows, transposed to columns like t's */
                for (int q = 0; q < 8; q++) {
                    in[q] = q < h ? _mm256_maskload_ps(cin + (i0 + q) * ldcin + j0, lanes)
                                  : _mm256_setzero_ps();
                }
                transpose8(in);
                for (int q = 0; q < 8; q++) {
                    v[q] = _mm256_fmadd_ps(va, v[q], _mm256_mul_ps(vb, in[q]));
                }
            }
            transpose8(v);
            for (int q = 0; q < h; q++) {
                store_lanes(c + (i0 + q) * ldc + j0, v[q], w);
            }
        }
    }
}

/* Sums of up to AV_NNR columns; every width its own unrolled copy. */
#define AV_NARROW_CASE(nc)                                                         \
    case nc:                                                                       \
        narrow_sums(nc, kc, a, csa, b, rsb, csb, t);                               \
        break

PD_TARGET_AVX2 static void narrow_avx2(int64_t kc, const float *a, int64_t csa, const float *b,
                                       int64_t rsb, int64_t csb, float *c, int64_t ldc,
                                       const float *cin, int64_t ldcin, float alpha, float beta,
                                       int32_t first, int32_t rows, int32_t cols) {
    _Alignas(64) float t[AV_NMR * AV_NNR];
    switch (cols) {
        AV_NARROW_CASE(1);
        AV_NARROW_CASE(2);
        AV_NARROW_CASE(3);
        AV_NARROW_CASE(4);
        AV_NARROW_CASE(5);
    default:
        narrow_sums(AV_NNR, kc, a, csa, b, rsb, csb, t);
        break;
    }
    pd_gemm_narrow_out_avx2(t + first, AV_NMR, c, ldc, cin, ldcin, alpha, beta, rows, cols);
}

/* zen4's narrow kernel: 32 rows as four ymm vectors, in passes of at most Z4_PASS
 * columns (4 * 6 accumulators, 4 loads and a broadcast: 29 of AVX-512VL's 32 ymm
 * registers), each pass transposed from registers straight into C. On Zen 4,
 * pd_sgemm ran 256x256x10 Xᵀ·dY in 11.8 us with it, 12.3 with the AVX-512 kernel
 * (two zmm down the rows, all columns in one pass, its sums through a stack buffer),
 * 1 thread. */
#define Z4_NMR 32
#define Z4_NNR 12
#define Z4_PASS 6

/* Rows [r0, r0 + 8) of a pass's sums (s0..s5, columns down the rows; those past nc
 * zero), as far as they fall in [first, first + rows), into C's row r - first as the
 * micro-kernels compute them. */
PD_TARGET_AVX512 static inline __attribute__((always_inline)) void
out8_z4(int nc, int32_t r0, __m256 s0, __m256 s1, __m256 s2, __m256 s3, __m256 s4, __m256 s5,
        float *c, int64_t ldc, const float *cin, int64_t ldcin, float alpha, float beta,
        int32_t first, int32_t rows) {
    const int32_t q0 = first > r0 ? first - r0 : 0;
    const int32_t q1 = first + rows < r0 + 8 ? first + rows - r0 : 8;
    if (q0 >= q1) {
        return;
    }
    const __m256 z = _mm256_setzero_ps();
    __m256 r[8] = {s0, s1, s2, s3, s4, s5, z, z};
    transpose8(r);
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    const __m256i lanes =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(nc), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    /* (all 8 rows tested, not [q0, q1): a constant index keeps r in registers) */
#pragma GCC unroll 8
    for (int32_t q = 0; q < 8; q++) {
        if (q < q0 || q >= q1) {
            continue;
        }
        const int64_t row = r0 + q - first;
        __m256 v;
        if (beta == 0.0f) {
            v = _mm256_mul_ps(va, r[q]);
        } else {
            const __m256 in = _mm256_maskload_ps(cin + row * ldcin, lanes);
            v = _mm256_fmadd_ps(va, r[q], _mm256_mul_ps(vb, in));
        }
        store_lanes(c + row * ldc, v, nc);
    }
}

/* Columns [0, nc) of one pass (nc a constant once inlined): the sums, then rows
 * [first, first + rows) of them into C. Every index into s folds to a constant, so
 * gcc keeps it in registers (a loop over its rows put it on the stack: 1.8x slower). */
PD_TARGET_AVX512 static inline __attribute__((always_inline)) void
narrow_pass_z4(int nc, int64_t kc, const float *restrict a, int64_t csa, const float *restrict b,
               int64_t rsb, int64_t csb, float *c, int64_t ldc, const float *cin, int64_t ldcin,
               float alpha, float beta, int32_t first, int32_t rows) {
    __m256 s[4][Z4_PASS];
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < Z4_PASS; j++) {
            s[i][j] = _mm256_setzero_ps();
        }
    }
#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++, a += csa, b += rsb) {
        __m256 av[4];
        for (int i = 0; i < 4; i++) {
            av[i] = _mm256_loadu_ps(a + 8 * i);
        }
        for (int j = 0; j < nc; j++) {
            const __m256 bj = _mm256_broadcast_ss(b + j * csb);
            for (int i = 0; i < 4; i++) {
                s[i][j] = _mm256_fmadd_ps(av[i], bj, s[i][j]);
            }
        }
    }
#define Z4_OUT8(i)                                                                 \
    out8_z4(nc, 8 * (i), s[i][0], s[i][1], s[i][2], s[i][3], s[i][4], s[i][5], c, ldc,  \
            cin, ldcin, alpha, beta, first, rows)
    Z4_OUT8(0);
    Z4_OUT8(1);
    Z4_OUT8(2);
    Z4_OUT8(3);
#undef Z4_OUT8
}

#define Z4_PASS_CASE(nc)                                                           \
    case nc:                                                                       \
        narrow_pass_z4(nc, kc, a, csa, b, rsb, csb, c, ldc, cin, ldcin, alpha, beta, \
                       first, rows);                                               \
        break

/* Columns [0, nc) (nc <= Z4_PASS) in one pass; every width its own unrolled copy. */
PD_TARGET_AVX512 static void narrow_cols_z4(int32_t nc, int64_t kc, const float *a, int64_t csa,
                                            const float *b, int64_t rsb, int64_t csb, float *c,
                                            int64_t ldc, const float *cin, int64_t ldcin,
                                            float alpha, float beta, int32_t first, int32_t rows) {
    switch (nc) {
        Z4_PASS_CASE(1);
        Z4_PASS_CASE(2);
        Z4_PASS_CASE(3);
        Z4_PASS_CASE(4);
        Z4_PASS_CASE(5);
    default:
        narrow_pass_z4(Z4_PASS, kc, a, csa, b, rsb, csb, c, ldc, cin, ldcin, alpha, beta, first,
                       rows);
        break;
    }
}

/* Up to Z4_NNR columns in one or two passes of about equal width (10: 5 and 5). */
PD_TARGET_AVX512 static void narrow_z4(int64_t kc, const float *a, int64_t csa, const float *b,
                                       int64_t rsb, int64_t csb, float *c, int64_t ldc,
                                       const float *cin, int64_t ldcin, float alpha, float beta,
                                       int32_t first, int32_t rows, int32_t cols) {
    const int32_t w = cols > Z4_PASS ? (cols + 1) / 2 : cols;
    narrow_cols_z4(w, kc, a, csa, b, rsb, csb, c, ldc, cin, ldcin, alpha, beta, first, rows);
    if (cols > w) {
        narrow_cols_z4(cols - w, kc, a, csa, b + w * csb, rsb, csb, c + w, ldc, cin + w, ldcin,
                       alpha, beta, first, rows);
    }
}

/* The ten-column kernel: up to 8 rows of C with 9 or 10 columns, vectorized along
 * C's rows, for an op(A) whose rows are not adjacent (X·W), which the narrow kernel
 * would have to pack (transpose). Columns 0-7 of row i are one vector, a broadcast
 * of A(i, p) times B's row; columns 8 and 9 of rows 4h..4h+3 share vector h, lanes
 * (4h + s, 8) and then (4h + s, 9), its A(i, p) blended from the broadcasts. So no
 * lane idles: 10 FMAs per k step for 80 terms, and A is read row by row, in place.
 * Rows i >= rows read row 0 and are not stored; with 9 columns, "column 9" repeats
 * column 8 and is not stored. (256x256x10: 15.3 us, against 18-19.5 us for the
 * narrow kernel and its packing.) */
#define AV_TEN_QUAD(h, r0, r1, r2, r3)                                             \
    do {                                                                           \
        const __m256 x0 = _mm256_broadcast_ss(r0 + o);                             \
        const __m256 x1 = _mm256_broadcast_ss(r1 + o);                             \
        acc##h##0 = _mm256_fmadd_ps(x0, bm, acc##h##0);                            \
        acc##h##1 = _mm256_fmadd_ps(x1, bm, acc##h##1);                            \
        const __m256 x2 = _mm256_broadcast_ss(r2 + o);                             \
        const __m256 x3 = _mm256_broadcast_ss(r3 + o);                             \
        acc##h##2 = _mm256_fmadd_ps(x2, bm, acc##h##2);                            \
        acc##h##3 = _mm256_fmadd_ps(x3, bm, acc##h##3);                            \
        const __m256 q = _mm256_blend_ps(_mm256_blend_ps(x0, x1, 0x22),            \
                                         _mm256_blend_ps(x2, x3, 0x88), 0xcc);     \
        t##h = _mm256_fmadd_ps(q, bt, t##h);                                       \
    } while (0)

PD_TARGET_AVX2 void pd_gemm_ten_avx2(int64_t kc, const float *a, int64_t rsa, int64_t csa,
                                     const float *b, int64_t rsb, float *c, int64_t ldc,
                                     const float *cin, int64_t ldcin, float alpha, float beta,
                                     int32_t rows, int32_t cols) {
    const float *a0 = a, *a1 = a + (rows > 1) * rsa, *a2 = a + (rows > 2) * 2 * rsa;
    const float *a3 = a + (rows > 3) * 3 * rsa, *a4 = a + (rows > 4) * 4 * rsa;
    const float *a5 = a + (rows > 5) * 5 * rsa, *a6 = a + (rows > 6) * 6 * rsa;
    const float *a7 = a + (rows > 7) * 7 * rsa;
    const int64_t c9 = cols > 9;
    /* named accumulators: see AV_NARROW_COL */
    __m256 acc00 = _mm256_setzero_ps(), acc01 = acc00, acc02 = acc00, acc03 = acc00;
    __m256 acc10 = acc00, acc11 = acc00, acc12 = acc00, acc13 = acc00, t0 = acc00, t1 = acc00;
    for (int64_t p = 0, o = 0; p < kc; p++, o += csa, b += rsb) {
        const __m256 bm = _mm256_loadu_ps(b);
        const __m256 bt = _mm256_blend_ps(_mm256_broadcast_ss(b + 8),
                                          _mm256_broadcast_ss(b + 8 + c9), 0xf0);
        AV_TEN_QUAD(0, a0, a1, a2, a3);
        AV_TEN_QUAD(1, a4, a5, a6, a7);
    }
    const __m256 acc[8] = {acc00, acc01, acc02, acc03, acc10, acc11, acc12, acc13};
    const __m256 tail[2] = {t0, t1};
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    for (int32_t i = 0; i < rows; i++) {
        const __m256 v = beta == 0.0f ? _mm256_mul_ps(va, acc[i])
                                      : _mm256_fmadd_ps(va, acc[i],
                                                        _mm256_mul_ps(vb, _mm256_loadu_ps(
                                                                              cin + i * ldcin)));
        _mm256_storeu_ps(c + i * ldc, v);
    }
    for (int h = 0; h < 2; h++) {
        _Alignas(32) float v[8];
        for (int s = 0; s < 8; s++) { /* cin in the tail's lanes */
            const int64_t i = 4 * h + (s & 3);
            v[s] = beta == 0.0f ? 0.0f : cin[(i < rows ? i : 0) * ldcin + 8 + (s >> 2) * c9];
        }
        const __m256 r = beta == 0.0f ? _mm256_mul_ps(va, tail[h])
                                      : _mm256_fmadd_ps(va, tail[h],
                                                        _mm256_mul_ps(vb, _mm256_load_ps(v)));
        _mm256_store_ps(v, r);
        for (int s = 0; s < 8; s++) {
            const int64_t i = 4 * h + (s & 3), j = 8 + (s >> 2);
            if (i < rows && j < cols) {
                c[i * ldc + j] = v[s];
            }
        }
    }
}

/* What the AVX2 and zen4 rows share: all but the narrow kernel. */
#define AV_GEMM_ROW                                                                \
    .mr = AV_MR, .nr = AV_NR, .mc = 144, .b_sweep = 0, .ukr = ukr_avx2_6x16,       \
    .pack = pd_gemm_pack_avx2, .sparse = pd_gemm_sparse_avx2,                      \
    .sparse_build = pd_gemm_sparse_build_avx2, .finite = pd_gemm_finite_avx2,      \
    .ten = pd_gemm_ten_avx2

const pd_gemm_isa pd_gemm_avx2 = {
    AV_GEMM_ROW,
    .nmr = AV_NMR,
    .nnr = AV_NNR,
    .narrow = narrow_avx2,
    .narrow_align = 32, /* 64 ran slower when X was 32 bytes past a line */
};

/* AVX-512 CPUs with 256-bit units (Zen 4): this row, but for narrow C the 32-row
 * kernel above, which AVX-512VL's 32 ymm registers allow. Xᵀ·dY of the MLP's last
 * layer (256x256x10) ran 11.8 us against this row's 13.1-14.4 us (by the alignment
 * of X) and the AVX-512 row's 12.3, in C, 1 thread. */
const pd_gemm_isa pd_gemm_zen4 = {
    AV_GEMM_ROW,
    .nmr = Z4_NMR,
    .nnr = Z4_NNR,
    .narrow = narrow_z4,
    .narrow_align = 0, /* 11.8-12.0 us with X 0-48 bytes past a line; 32 ran 13.3 */
};

#endif
