/* The Philox and dropout kernels on ymm vectors, as a template: kernels_avx2.c
 * includes it for AVX2 and kernels_zen4.c for AVX-512VL, whose three-input xor
 * (vpternlogd) makes a round 6 operations instead of 8 (dropout 256x1024 on Zen 4,
 * 1 thread: 80 -> 67 us; with twice the chains in its 32 registers, 60-63 us).
 * The includer defines
 *   PD_YMM_TARGET   the functions' target attribute,
 *   PD_YMM_TERNLOG  1 to use vpternlogd,
 *   PD_YMM_WIDE     vectors of 4 blocks per dropout iteration,
 *   PD_YMM(name)    the name of an entry point (philox, drop, pd_drop_rows).
 * Every instance computes the same bits as the scalar reference. */
#include <string.h>

#include "ref.h"
#include "simd.h"

/* a ^ b ^ c, where b and c are ready before a (off the multiply -> shift chain) */
PD_YMM_TARGET static inline __m256i xor3(__m256i a, __m256i b, __m256i c) {
#if PD_YMM_TERNLOG
    return _mm256_ternarylogic_epi32(a, b, c, 0x96);
#else
    return _mm256_xor_si256(a, _mm256_xor_si256(b, c));
#endif
}

/* Philox on 4 consecutive blocks per vector, one block per 64-bit slot, its words in
 * the even 32-bit slots. _mm256_mul_epu32 reads only even slots and returns the
 * full 64-bit product, so a round needs no lane shuffles: hi is one 64-bit shift
 * away and lo is already in place. Odd slots carry junk that no result reads.
 *
 * Per-call constants. In rounds 0 and 1 only the counter word c0 differs between
 * blocks, so the products that involve only (stream, step, key) are computed once,
 * in scalar code, and those rounds cost about half of a general one. */
typedef struct {
    __m256i k0[10], k1[10]; /* the key schedule, broadcast (rounds 2..9 use it) */
    __m256i c, d, e, l0;    /* round 0/1 constants, named as in philox_head */
} philox_plan;

PD_YMM_TARGET static inline void plan_init(philox_plan *pl, const uint32_t key[2],
                                            uint32_t stream, uint64_t step) {
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < 10; r++) {
        pl->k0[r] = _mm256_set1_epi32((int)k0);
        pl->k1[r] = _mm256_set1_epi32((int)k1);
        k0 += PD_PHILOX_W0;
        k1 += PD_PHILOX_W1;
    }
    /* round 0: c0' = hi(c2 * M1) ^ c1 ^ k0 =: a and c1' = lo(c2 * M1) =: b are the
     * same for every block; c2' = hi(c0 * M0) ^ (c3 ^ k1) */
    uint64_t p1 = (uint64_t)PD_PHILOX_M1 * (uint32_t)step;
    uint32_t a = (uint32_t)(p1 >> 32) ^ stream ^ key[0], b = (uint32_t)p1;
    uint32_t c = (uint32_t)(step >> 32) ^ key[1];
    /* round 1: c0 * M0 = a * M0 is the same for every block too */
    uint64_t p0 = (uint64_t)PD_PHILOX_M0 * a;
    pl->c = _mm256_set1_epi32((int)c);
    pl->d = _mm256_set1_epi32((int)(b ^ (key[0] + PD_PHILOX_W0)));
    pl->e = _mm256_set1_epi32((int)((uint32_t)(p0 >> 32) ^ (key[1] + PD_PHILOX_W1)));
    pl->l0 = _mm256_set1_epi32((int)(uint32_t)p0);
}

/* Vectors per dropout iteration: independent latency chains (multiply -> shift ->
 * xor), PD_YMM_WIDE of them. */
#define WIDE PD_YMM_WIDE

/* Rounds 0 and 1 of 4 blocks whose counter words c0 have the 64-bit products
 * p = c0 * M0 (one per slot), leaving w in philox_rounds' form for round 2. */
PD_YMM_TARGET static inline __attribute__((always_inline)) void
philox_head(__m256i w[4], __m256i p, const philox_plan *pl) {
    const __m256i m1 = _mm256_set1_epi32((int)PD_PHILOX_M1);
    /* round 0: c2 = hi(c0 * M0) ^ c;  c3 = lo(c0 * M0)  (c0, c1 are constants) */
    __m256i c2 = _mm256_xor_si256(_mm256_srli_epi64(p, 32), pl->c);
    /* round 1: c0 = hi(c2 * M1) ^ d;  c1 = lo(c2 * M1);  c2 = c3 ^ e;  c3 = lo(a * M0) */
    __m256i q = _mm256_mul_epu32(c2, m1);
    w[0] = _mm256_xor_si256(_mm256_srli_epi64(q, 32), pl->d);
    w[1] = q;
    w[2] = _mm256_xor_si256(p, pl->e);
    w[3] = pl->l0;
}

/* Rounds r0..r1-1 (r1 <= 10) of nv vectors; constant nv, r0, r1 at every call, so
 * the loops unroll into registers. */
PD_YMM_TARGET static inline __attribute__((always_inline)) void
philox_rounds(__m256i w[][4], int nv, int r0, int r1, const philox_plan *pl) {
    const __m256i m0 = _mm256_set1_epi32((int)PD_PHILOX_M0);
    const __m256i m1 = _mm256_set1_epi32((int)PD_PHILOX_M1);
#pragma GCC unroll 8
    for (int r = r0; r < r1; r++) {
        for (int v = 0; v < nv; v++) {
            /* p0 = hi0:lo0 = c0 * M0, p1 = hi1:lo1 = c2 * M1 (per 64-bit slot) */
            __m256i p0 = _mm256_mul_epu32(w[v][0], m0), p1 = _mm256_mul_epu32(w[v][2], m1);
            /* c0 = hi1 ^ c1 ^ k0;  c1 = lo1;  c2 = hi0 ^ c3 ^ k1;  c3 = lo0 */
            w[v][0] = xor3(_mm256_srli_epi64(p1, 32), w[v][1], pl->k0[r]);
            w[v][2] = xor3(_mm256_srli_epi64(p0, 32), w[v][3], pl->k1[r]);
            w[v][1] = p1;
            w[v][3] = p0;
        }
    }
}

PD_YMM_TARGET static void PD_YMM(philox)(const uint32_t key[2], uint32_t stream, uint64_t step,
                                       uint64_t first, int64_t n, uint32_t *out) {
    philox_plan pl;
    plan_init(&pl, key, stream, step);
    const __m256i m0 = _mm256_set1_epi32((int)PD_PHILOX_M0);
    int64_t b = 0;
    for (; b + 4 <= n; b += 4) {
        __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32((int)(uint32_t)(first + (uint64_t)b)),
                                      _mm256_setr_epi32(0, 0, 1, 0, 2, 0, 3, 0));
        __m256i w[1][4];
        philox_head(w[0], _mm256_mul_epu32(c0, m0), &pl);
        philox_rounds(w, 1, 2, 10, &pl);
        for (int j = 0; j < 4; j++) {
            uint32_t lanes[8];
            _mm256_storeu_si256((__m256i *)lanes, w[0][j]);
            for (int s = 0; s < 4; s++) {
                out[4 * (b + s) + j] = lanes[2 * s];
            }
        }
    }
    pd_philox_blocks_scalar(key, stream, step, first + (uint64_t)b, n - b, out + 4 * b);
}

/* Dropout constants beyond the Philox plan. */
typedef struct {
    __m256i off[WIDE]; /* (4v + s) * M0 in slot s of vector v (64-bit) */
    /* 0x8000 in every 16-bit lane, xor round 9's key k0 (k1) in the high half of
     * each 64-bit slot */
    __m256i bias_k0, bias_k1;
    __m256i tb;        /* t ^ 0x8000 in every 16-bit lane */
    __m256 s;          /* the keep scale */
} drop_plan;

/* Philox of nv vectors of 4 blocks whose counters have the 64-bit products pb[v]
 * (one per slot), up to the drop compare: x01[v] and x23[v] hold words 1 | 0 and
 * 3 | 2 of each block.
 *
 * Round 9 writes each block's words 0 and 1 into one 64-bit slot, c1 low and c0
 * high (so 16-bit lanes hold elements 2, 3, 0, 1), and xors 0x8000 into every
 * 16-bit value: both ride on the xors the round does anyway. Then u < t, the drop
 * rule, is one signed 16-bit compare (u ^ 0x8000 < t ^ 0x8000; t < 65536). */
PD_YMM_TARGET static inline __attribute__((always_inline)) void
drop_words(int nv, const __m256i pb[], const philox_plan *pl, const drop_plan *dp,
           __m256i x01[], __m256i x23[]) {
    const __m256i m0 = _mm256_set1_epi32((int)PD_PHILOX_M0);
    const __m256i m1 = _mm256_set1_epi32((int)PD_PHILOX_M1);
    __m256i w[WIDE][4];
    for (int v = 0; v < nv; v++) {
        philox_head(w[v], pb[v], pl);
    }
    philox_rounds(w, nv, 2, 9, pl);
    for (int v = 0; v < nv; v++) {
        __m256i p0 = _mm256_mul_epu32(w[v][0], m0), p1 = _mm256_mul_epu32(w[v][2], m1);
        /* lo1 | hi1 ^ c1 ^ k0: words 1 | 0; lo0 | hi0 ^ c3 ^ k1: words 3 | 2 */
        x01[v] = xor3(p1, _mm256_slli_epi64(w[v][1], 32), dp->bias_k0);
        x23[v] = xor3(p0, _mm256_slli_epi64(w[v][3], 32), dp->bias_k1);
    }
}

/* The drop masks of one vector's 4 blocks: drop[q] lane e is all ones iff element e
 * of block q is dropped. */
PD_YMM_TARGET static inline __attribute__((always_inline)) void
drop_lanes(__m256i x01, __m256i x23, const drop_plan *dp, __m256i drop[4]) {
    /* Per 128-bit lane: the 32-bit drop masks of elements 0..3 of a lane's first
     * block (from 16-bit lanes 2, 3, 0, 1); plus 8 for its second block. */
    const __m256i first_block = _mm256_setr_epi8(4, 5, 4, 5, 6, 7, 6, 7, 0, 1, 0, 1, 2, 3, 2, 3,
                                                 4, 5, 4, 5, 6, 7, 6, 7, 0, 1, 0, 1, 2, 3, 2, 3);
    const __m256i second_block = _mm256_add_epi8(first_block, _mm256_set1_epi8(8));
    __m256i d01 = _mm256_cmpgt_epi16(dp->tb, x01), d23 = _mm256_cmpgt_epi16(dp->tb, x23);
    /* blocks 0, 1 (and 2, 3): elements 0..3 in the low lane, 4..7 in the high */
    __m256i b01 = _mm256_permute2x128_si256(d01, d23, 0x20);
    __m256i b23 = _mm256_permute2x128_si256(d01, d23, 0x31);
    drop[0] = _mm256_shuffle_epi8(b01, first_block);
    drop[1] = _mm256_shuffle_epi8(b01, second_block);
    drop[2] = _mm256_shuffle_epi8(b23, first_block);
    drop[3] = _mm256_shuffle_epi8(b23, second_block);
}

/* y = keep ? r(x) * s : +0.0 on one block's 8 elements; ReLU zeroes x <= 0 (not
 * NaN) the same way. */
PD_YMM_TARGET static inline __attribute__((always_inline)) void
drop_apply8(int relu, __m256i drop, const float *x, float *y, __m256 s) {
    __m256 v = _mm256_loadu_ps(x), zero = _mm256_castsi256_ps(drop);
    if (relu) {
        zero = _mm256_or_ps(zero, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LE_OQ));
    }
    _mm256_storeu_ps(y, _mm256_andnot_ps(zero, _mm256_mul_ps(v, s)));
}

/* The mask bytes of 4 blocks (keep bits), block q in byte q. */
PD_YMM_TARGET static inline __attribute__((always_inline)) uint32_t
keep_bytes(const __m256i drop[4]) {
    /* bytes: elements 0..3 of blocks 0..3 in the low lane, 4..7 in the high; the
     * dword permute puts each block's 8 together */
    __m256i e = _mm256_packs_epi16(_mm256_packs_epi32(drop[0], drop[1]),
                                   _mm256_packs_epi32(drop[2], drop[3]));
    e = _mm256_permutevar8x32_epi32(e, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    return ~(uint32_t)_mm256_movemask_epi8(e);
}

/* Blocks b..b+4*nv-1 of drop (all 8 elements of each exist), whose counters
 * have the products pb + off[v] (pb = (first + b) * M0 per slot). */
PD_YMM_TARGET static inline __attribute__((always_inline)) void
drop_blocks(int nv, int relu, int64_t b, __m256i pb, const philox_plan *pl, const drop_plan *dp,
            const float *x, float *y, uint8_t *mask) {
    __m256i pbv[WIDE], x01[WIDE], x23[WIDE];
    for (int v = 0; v < nv; v++) {
        pbv[v] = _mm256_add_epi64(pb, dp->off[v]);
    }
    drop_words(nv, pbv, pl, dp, x01, x23);
    for (int v = 0; v < nv; v++) {
        __m256i drop[4];
        drop_lanes(x01[v], x23[v], dp, drop);
        for (int q = 0; q < 4; q++) {
            int64_t e = 8 * (b + 4 * v + q);
            drop_apply8(relu, drop[q], x + e, y + e, dp->s);
        }
        if (mask != NULL) {
            uint32_t bits = keep_bytes(drop);
            memcpy(mask + b + 4 * v, &bits, 4);
        }
    }
}

/* drop's loop over the blocks, with relu a constant at each call; returns the
 * blocks it did (whole groups of 4; the rest is the scalar tail's). */
PD_YMM_TARGET static inline __attribute__((always_inline)) int64_t
drop_loop(int relu, uint64_t first, const float *x, float *y, int64_t n, uint8_t *mask,
          const philox_plan *pl, const drop_plan *dp) {
    /* Blocks whose 8 elements all exist. Their counters stay below 2^32 (see
     * pd_kernels.drop), so the 64-bit products pb + off[v] are exact. */
    const int64_t full = n >> 3;
    __m256i pb = _mm256_set1_epi64x((long long)(first * PD_PHILOX_M0));
    const __m256i step4 = _mm256_set1_epi64x((long long)(4 * (uint64_t)PD_PHILOX_M0));
    const __m256i step_wide = _mm256_set1_epi64x((long long)(4 * WIDE * (uint64_t)PD_PHILOX_M0));
    int64_t b = 0;
    for (; b + 4 * WIDE <= full; b += 4 * WIDE) {
        drop_blocks(WIDE, relu, b, pb, pl, dp, x, y, mask);
        pb = _mm256_add_epi64(pb, step_wide);
    }
    for (; b + 4 <= full; b += 4) {
        drop_blocks(1, relu, b, pb, pl, dp, x, y, mask);
        pb = _mm256_add_epi64(pb, step4);
    }
    return b;
}

PD_YMM_TARGET static inline void drop_setup(philox_plan *pl, drop_plan *dp,
                                             const uint32_t key[2], uint32_t stream,
                                             uint64_t step, uint32_t t, float s) {
    plan_init(pl, key, stream, step);
    const __m256i bias = _mm256_set1_epi16((short)0x8000);
    dp->bias_k0 = _mm256_xor_si256(bias, _mm256_slli_epi64(pl->k0[9], 32));
    dp->bias_k1 = _mm256_xor_si256(bias, _mm256_slli_epi64(pl->k1[9], 32));
    dp->tb = _mm256_set1_epi16((short)(t ^ 0x8000u));
    dp->s = _mm256_set1_ps(s);
    for (int v = 0; v < WIDE; v++) {
        uint64_t c = 4u * (uint64_t)v;
        dp->off[v] = _mm256_setr_epi64x(
            (long long)(c * PD_PHILOX_M0), (long long)((c + 1) * PD_PHILOX_M0),
            (long long)((c + 2) * PD_PHILOX_M0), (long long)((c + 3) * PD_PHILOX_M0));
    }
}

/* Mask and apply in one pass: the element loads and stores overlap the Philox
 * arithmetic, and the keeps reach the floats without a round trip through bits. */
PD_SCHEDULE PD_YMM_TARGET static void PD_YMM(drop)(const uint32_t key[2], uint32_t stream,
                                                 uint64_t step, uint64_t first, const float *x,
                                                 float *y, int64_t n, uint32_t t, float s,
                                                 uint8_t *mask, int32_t relu) {
    philox_plan pl;
    drop_plan dp;
    drop_setup(&pl, &dp, key, stream, step, t, s);
    const int64_t b = relu ? drop_loop(1, first, x, y, n, mask, &pl, &dp)
                           : drop_loop(0, first, x, y, n, mask, &pl, &dp);
    pd_drop_ref(key, stream, step, first + (uint64_t)b, x + 8 * b, y + 8 * b, n - 8 * b, t, s,
                mask != NULL ? mask + b : NULL, relu);
}

/* Rows r0..r0+2*nv-1 of a strip two blocks wide (16 elements a row), two rows to
 * a vector: its slots are blocks (r, 0), (r, 1), (r + 1, 0), (r + 1, 1), whose
 * counters have the products pb + v * step2 (pb: those of rows r0, r0 + 1). */
PD_YMM_TARGET static inline __attribute__((always_inline)) void
drop_pair_blocks(int nv, int relu, int64_t r0, __m256i pb, __m256i step2, int64_t ld,
                 int64_t stride, const philox_plan *pl, const drop_plan *dp, const float *x,
                 float *y, uint8_t *mask) {
    __m256i pbv[WIDE], x01[WIDE], x23[WIDE];
    pbv[0] = pb;
    for (int v = 1; v < nv; v++) {
        pbv[v] = _mm256_add_epi64(pbv[v - 1], step2);
    }
    drop_words(nv, pbv, pl, dp, x01, x23);
    for (int v = 0; v < nv; v++) {
        __m256i drop[4];
        drop_lanes(x01[v], x23[v], dp, drop);
        const int64_t r = r0 + 2 * v;
        for (int q = 0; q < 4; q++) {
            int64_t e = (r + (q >> 1)) * ld + 8 * (q & 1);
            drop_apply8(relu, drop[q], x + e, y + e, dp->s);
        }
        if (mask != NULL) {
            uint32_t bits = keep_bytes(drop);
            uint16_t lo = (uint16_t)bits, hi = (uint16_t)(bits >> 16);
            memcpy(mask + r * stride, &lo, 2);
            memcpy(mask + (r + 1) * stride, &hi, 2);
        }
    }
}

/* drop_rows on a strip two blocks wide, relu a constant at each call; returns
 * the rows it did (pairs; the rest is the caller's). */
PD_YMM_TARGET static inline __attribute__((always_inline)) int64_t
drop_pairs(int relu, uint64_t first, int64_t stride, const float *x, float *y, int64_t ld,
           int64_t rows, uint8_t *mask, const philox_plan *pl, const drop_plan *dp) {
    const uint64_t m0 = PD_PHILOX_M0, st = (uint64_t)stride, f = first;
    /* pb and two steps stay live, not WIDE offsets: fewer registers for the rounds
     * (zen4, a 66-row strip with ReLU: 286 -> 276 ns) */
    __m256i pb = _mm256_setr_epi64x((long long)(f * m0), (long long)((f + 1) * m0),
                                    (long long)((f + st) * m0), (long long)((f + st + 1) * m0));
    const __m256i step2 = _mm256_set1_epi64x((long long)(2 * st * m0));
    const __m256i step_wide = _mm256_set1_epi64x((long long)(2 * WIDE * st * m0));
    int64_t r = 0;
    for (; r + 2 * WIDE <= rows; r += 2 * WIDE) {
        drop_pair_blocks(WIDE, relu, r, pb, step2, ld, stride, pl, dp, x, y, mask);
        pb = _mm256_add_epi64(pb, step_wide);
    }
    for (; r + 2 <= rows; r += 2) {
        drop_pair_blocks(1, relu, r, pb, step2, ld, stride, pl, dp, x, y, mask);
        pb = _mm256_add_epi64(pb, step2);
    }
    return r;
}

/* Where block i of a row strip lives: its counter (its mask byte's index), and its
 * elements' offset. Walked one block at a time, without divisions. */
typedef struct strip_pos {
    int64_t blk, bpr;      /* block within its row, blocks per row */
    uint64_t ctr, stride;  /* counter, and the counter step from row to row */
    int64_t off, ld;       /* offset of the block's first element, row step */
} strip_pos;

static inline void strip_next(strip_pos *p) {
    if (++p->blk < p->bpr) {
        p->ctr++;
        p->off += 8;
    } else {
        p->blk = 0;
        p->ctr += p->stride - (uint64_t)(p->bpr - 1);
        p->off += p->ld - 8 * (p->bpr - 1);
    }
}

/* The next 4 * nv blocks of a strip, from position p (advanced past them); mask
 * holds the byte of counter first. */
PD_YMM_TARGET static inline __attribute__((always_inline)) void
drop_strip_blocks(int nv, int relu, strip_pos *p, uint64_t first, const philox_plan *pl,
                  const drop_plan *dp, const float *x, float *y, uint8_t *mask) {
    __m256i pbv[WIDE], x01[WIDE], x23[WIDE];
    int64_t off[WIDE][4];
    uint64_t ctr[WIDE][4];
    for (int v = 0; v < nv; v++) {
        for (int q = 0; q < 4; q++) {
            off[v][q] = p->off;
            ctr[v][q] = p->ctr;
            strip_next(p);
        }
        pbv[v] = _mm256_setr_epi64x(
            (long long)(ctr[v][0] * PD_PHILOX_M0), (long long)(ctr[v][1] * PD_PHILOX_M0),
            (long long)(ctr[v][2] * PD_PHILOX_M0), (long long)(ctr[v][3] * PD_PHILOX_M0));
    }
    drop_words(nv, pbv, pl, dp, x01, x23);
    for (int v = 0; v < nv; v++) {
        __m256i drop[4];
        drop_lanes(x01[v], x23[v], dp, drop);
        for (int q = 0; q < 4; q++) {
            drop_apply8(relu, drop[q], x + off[v][q], y + off[v][q], dp->s);
        }
        if (mask != NULL) {
            uint32_t bits = keep_bytes(drop);
            for (int q = 0; q < 4; q++) {
                mask[ctr[v][q] - first] = (uint8_t)(bits >> (8 * q));
            }
        }
    }
}

/* drop_rows's loop, relu a constant at each call. */
PD_YMM_TARGET static inline __attribute__((always_inline)) void
drop_strip(int relu, strip_pos *p, int64_t nb, uint64_t first, const philox_plan *pl,
           const drop_plan *dp, const float *x, float *y, uint8_t *mask, const uint32_t key[2],
           uint32_t stream, uint64_t step, uint32_t t, float s) {
    int64_t i = 0;
    for (; i + 4 * WIDE <= nb; i += 4 * WIDE) {
        drop_strip_blocks(WIDE, relu, p, first, pl, dp, x, y, mask);
    }
    for (; i + 4 <= nb; i += 4) {
        drop_strip_blocks(1, relu, p, first, pl, dp, x, y, mask);
    }
    for (; i < nb; i++, strip_next(p)) {
        pd_drop_ref(key, stream, step, p->ctr, x + p->off, y + p->off, 8, t, s,
                    mask != NULL ? mask + (p->ctr - first) : NULL, relu);
    }
}

/* pd_kernels.drop_rows: the strip's blocks in row order, 4 to a vector whichever
 * rows they are on, each with its own counter. */
PD_SCHEDULE PD_YMM_TARGET void PD_YMM(pd_drop_rows)(const uint32_t key[2], uint32_t stream,
                                                  uint64_t step, uint64_t first, int64_t stride,
                                                  const float *x, float *y, int64_t ld,
                                                  int64_t rows, int64_t len, uint32_t t, float s,
                                                  uint8_t *mask, int32_t relu) {
    if (rows <= 0 || len <= 0) {
        return;
    }
    philox_plan pl;
    drop_plan dp;
    drop_setup(&pl, &dp, key, stream, step, t, s);
    if ((len >> 3) % 4 == 0) {
        /* rows of whole vectors: drop's loop on each */
        for (int64_t r = 0; r < rows; r++) {
            const uint64_t f = first + (uint64_t)(r * stride);
            uint8_t *m = mask != NULL ? mask + r * stride : NULL;
            if (relu) {
                drop_loop(1, f, x + r * ld, y + r * ld, len, m, &pl, &dp);
            } else {
                drop_loop(0, f, x + r * ld, y + r * ld, len, m, &pl, &dp);
            }
        }
        return;
    }
    int64_t r0 = 0;
    if (len == 16) {
        r0 = relu ? drop_pairs(1, first, stride, x, y, ld, rows, mask, &pl, &dp)
                  : drop_pairs(0, first, stride, x, y, ld, rows, mask, &pl, &dp);
    }
    first += (uint64_t)(r0 * stride);
    x += r0 * ld;
    y += r0 * ld;
    mask = mask != NULL ? mask + r0 * stride : NULL;
    rows -= r0;
    strip_pos p = {.blk = 0, .bpr = len >> 3, .ctr = first, .stride = (uint64_t)stride,
                   .off = 0, .ld = ld};
    const int64_t nb = rows * (len >> 3);
    if (relu) {
        drop_strip(1, &p, nb, first, &pl, &dp, x, y, mask, key, stream, step, t, s);
    } else {
        drop_strip(0, &p, nb, first, &pl, &dp, x, y, mask, key, stream, step, t, s);
    }
}

