/* pd_sgemm: argument checks, blocking, packing and the thread split.
 *
 * Loop nest (BLIS): for each block of columns jc (NC) and group of k chunks:
 *   1. pack op(B)[group, jc] into NR-wide micro-panels, shared by all tasks;
 *   2. tasks claim blocks of output micro-tiles (rows of MR-tall x columns of
 *      NR-wide panels) one at a time; for each k chunk pc in order a task packs
 *      op(A)[block rows, pc] into its own buffer (or, for narrow C, reads op(A) in
 *      place) and runs the micro-kernel over the block's tiles.
 * A threaded product whose op(B) is large but fits one block (one jc, one k group)
 * is instead split into column groups, one per thread, each packing only its own
 * group of B (group_task): no thread then reads what another packed, which costs
 * most when the threads' cores sit on different L3s.
 * Every output element is C = alpha * (sum over chunk 0) + beta * C, then
 * C = alpha * (sum over chunk c) + C for c = 1, 2, ...; the k chunks depend only on
 * k, and each tile is computed by the same kernel whichever task owns it, so results
 * are bit-identical for any thread count (and the SIMD rows, which sum in the same
 * order with fused multiply-adds, agree with each other). Edge tiles use the same
 * kernel with masked C loads/stores (packing already zero-padded A and B).
 * A product that is one block (one column block, one k group) whose op(A) or op(B)
 * is mostly zeros (after ReLU and dropout; the zero pixels of an image) takes the
 * sparse path (sparse_choice): tasks claim row blocks (full-width, or of their column
 * group) and, k chunk by k chunk, list each row's nonzeros of op(A) with their
 * offsets into packed B and sum only those terms, in the dense order with the dense
 * chunk arithmetic; a sparse op(B) runs as C^T = op(B)^T op(A)^T.
 * C with fewer columns than NR takes the narrow path (narrow_block): a kernel
 * vectorized down the rows of C, which reads op(B), and op(A) when its rows are
 * adjacent, in place; C with 9 or 10 columns and an op(A) with rows apart (X·W)
 * takes the ten-column kernel there, which reads both in place.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "glibc_compat.h"

#if PD_X86
#include "simd.h"
#endif

static const pd_gemm_isa *const gemm_table[PD_ISA_COUNT] = {
    &pd_gemm_scalar,
#if PD_X86
    &pd_gemm_avx2,
    &pd_gemm_avx512,
    &pd_gemm_zen4,
#else
    NULL,
    NULL,
    NULL,
#endif
};
_Static_assert(sizeof(gemm_table) / sizeof(gemm_table[0]) == PD_ISA_COUNT,
               "gemm table must have one row per pd_isa");

/* Packed B is shared by the tasks of one parallel call; capped so that huge
 * products are done in several column blocks / k groups. */
#define PD_GEMM_B_CAP ((int64_t)2 << 20) /* floats (8 MiB) */
#define PD_GEMM_NC_MAX 4096
/* B micro-panels per phase-1 packing unit. */
#define PD_GEMM_B_GROUP 4
/* Packed A shared by the tasks when it is at most this many floats. */
#define PD_GEMM_A_CAP ((int64_t)2 << 20)
/* Below this many flops per extra task, threading costs more than it saves. */
#define PD_GEMM_FLOPS_PER_TASK ((int64_t)1 << 19)
/* At most this many packed-B floats per block, every task packs B itself. */
#define PD_GEMM_PRIVATE_B (32 * 1024)
/* Read op(A) unpacked when C has at most DIRECT_NPAN NR-wide column panels, or
 * when rows of op(A) are contiguous and each A panel meets at most
 * DIRECT_ROWS_NPAN of them (gemm_run). */
#define PD_GEMM_DIRECT_NPAN 1
#define PD_GEMM_DIRECT_ROWS_NPAN 16
/* k chunks at most this long run their tiles along rows of C (compute_block). */
#define PD_GEMM_SHORT_K 32
/* Most column groups of one call (group_task). */
#define PD_GEMM_MAX_GROUPS 16
/* AUTO takes a sparse operand with at most this fraction of nonzeros, in products of
 * at least SPARSE_FLOPS. On Zen 4 the sparse kernels broke even near 0.7 on every
 * SIMD row (1 and 2 threads: 256x784x256 and 256^3 with zeros at random, and
 * Fashion-MNIST batches X·W1) and ran 1.06-1.16x faster at 0.6, 1.2-1.33x at half
 * (the images' zeros) and 1.6-1.9x at 0.3 (what ReLU and dropout p = 0.5 leave). */
#define PD_GEMM_SPARSE_DENSITY 0.6
#define PD_GEMM_SPARSE_FLOPS ((int64_t)1 << 22)
/* Slack floats after each packed buffer (cheap insurance for vector packers). */
#define PD_GEMM_SLACK 64

/* Per-thread scratch, grown on demand and kept (no allocation per call); freed by
 * a thread-specific-data destructor when the thread exits. */
typedef struct scratch {
    float *p;
    size_t n;
} scratch;
typedef struct scratch_set {
    scratch a, b, sp; /* sp: the sparse rows of a block (pd_sparse_rows) */
} scratch_set;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_free(void *p) {
    scratch_set *s = p;
    free(s->a.p);
    free(s->b.p);
    free(s->sp.p);
    free(s);
}

static void scratch_key_init(void) {
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0;
}

static scratch_set *scratch_mine(void) {
    pthread_once(&scratch_once, scratch_key_init);
    if (!scratch_key_ok) {
        return NULL;
    }
    scratch_set *s = pthread_getspecific(scratch_key);
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s != NULL && pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            s = NULL;
        }
    }
    return s;
}

static float *scratch_get(scratch *s, int64_t n) {
    size_t want = (size_t)n + PD_GEMM_SLACK;
    if (s->n < want) {
        free(s->p);
        size_t bytes = (want * sizeof(float) + 63) & ~(size_t)63;
        s->p = aligned_alloc(64, bytes);
        s->n = s->p != NULL ? want : 0;
    }
    return s->p;
}

typedef struct gemm_job {
    const pd_gemm_isa *g;
    const float *a, *b;
    float *c;
    int64_t rsa, csa, rsb, csb, ldc;
    int64_t m, n, k;
    float alpha, beta;
    int64_t kc_base; /* every k chunk but the last has this length */
    /* this call's block: columns [j0, j1), k range [p0, p1) (whole chunks) */
    int64_t j0, j1, p0, p1;
    int64_t npan;    /* NR panels in [j0, j1) */
    float *bbuf;     /* packed B for the block (the caller's buffer) */
    int64_t bsize;   /* its size in floats */
    int private_b;   /* each task packs all of B itself (small B) */
    int shared_a;    /* op(A) for the whole group is packed once in phase 1, shared */
    float *ashared;  /* that packed A (the caller's buffer) */
    int64_t mpan;    /* MR panels of A */
    int64_t nb_units; /* phase-1 units [0, nb_units) pack B, the rest pack A */
    /* phase 2 work units: row blocks of upan MR-panels x column blocks of cpan
     * NR-panels, claimed dynamically (a late or descheduled worker's share is taken
     * by the others; which thread computes a tile never changes its value) */
    int64_t upan, cpan, mu, nu;
    _Atomic int64_t next_tile;
    int direct_a;    /* kernel reads op(A) in place (but the ragged last panel) */
    _Atomic int64_t next_unit;
    _Atomic int64_t done_units;
    int64_t n_units;
    _Atomic int32_t status;
    const pd_gemm_epilogue *ep; /* NULL: plain GEMM */
    /* > 0: column groups mode (group_task): groups of whole B packing units, about
     * equal (group_panel), each group's row blocks claimed from its own counter */
    int64_t groups;
    _Atomic int64_t group_next[PD_GEMM_MAX_GROUPS];
    /* sparse op(A) (one block): row blocks sum only their nonzeros, unless packed
     * B holds an Inf or NaN (0 * Inf must give NaN as the dense sum does: the
     * product then runs again, dense) */
    int sparse;
    int ct; /* the job computes C^T: its element (i, j) is c[j * ldc + i] */
    int narrow; /* the narrow path (narrow_block): mpan NMR-row panels in blocks of upan */
    int64_t nshift; /* its panel q starts at row q * NMR - nshift (the first at 0) */
    _Atomic int32_t nonfinite;
} gemm_job;

static int64_t imin(int64_t x, int64_t y) { return x < y ? x : y; }

static double gemm_flops(int64_t m, int64_t n, int64_t k) {
    return 2.0 * (double)m * (double)n * (double)k;
}

static _Atomic int32_t sparse_mode = PD_SPARSE_AUTO;

pd_status pd_set_sparse_gemm(int32_t mode) {
    if (mode != PD_SPARSE_OFF && mode != PD_SPARSE_AUTO && mode != PD_SPARSE_ALWAYS) {
        return PD_ERR_ARG;
    }
    atomic_store(&sparse_mode, mode);
    return PD_OK;
}

int32_t pd_get_sparse_gemm(void) { return atomic_load(&sparse_mode); }

/* The fraction of nonzeros (NaN included) of X(i, p) = x[i * rs + p * cs] (m x k,
 * rs == 1 or cs == 1) in up to 16 of its contiguous lines, spread over it. */
static double sample_density(const float *x, int64_t rs, int64_t cs, int64_t m, int64_t k) {
    const int rows = cs == 1;
    const int64_t lines = rows ? m : k, len = rows ? k : m;
    const int64_t stride = rows ? rs : cs; /* the lines themselves are contiguous */
    const int64_t picks = imin(16, lines);
    int64_t nz = 0;
    for (int64_t s = 0; s < picks; s++) {
        const float *l = x + s * lines / picks * stride;
        for (int64_t q = 0; q < len; q++) {
            nz += l[q] != 0.0f;
        }
    }
    return (double)nz / (double)(picks * len);
}

/* Every k chunk but the last: balanced chunks of at most PD_GEMM_KC_MAX, rounded up
 * to 8; a function of k only, never of the ISA or the thread count. */
static int64_t chunk_base(int64_t k) {
    const int64_t n_chunks = (k + PD_GEMM_KC_MAX - 1) / PD_GEMM_KC_MAX;
    return ((k + n_chunks - 1) / n_chunks + 7) & ~(int64_t)7;
}

/* The packed-B block width for n columns, and the k chunks per block (B_CAP). */
static int64_t block_cols(int64_t n, int64_t nr) {
    return imin((n + nr - 1) / nr * nr, PD_GEMM_NC_MAX);
}
static int64_t group_chunks(int64_t nc, int64_t kc_base) {
    const int64_t c = PD_GEMM_B_CAP / (nc * kc_base);
    return c < 1 ? 1 : c;
}

/* Whether an n-column product over k is one block: one column block, one k group. */
static int one_block(int64_t n, int64_t k, int64_t nr) {
    const int64_t kc_base = chunk_base(k), nc = block_cols(n, nr);
    return n <= nc && (k + kc_base - 1) / kc_base <= group_chunks(nc, kc_base);
}

/* Which operand, if any, the product takes sparse: 0 none, 1 op(A), 2 op(B) (as C^T
 * = op(B)^T op(A)^T, with C written transposed; plain products only). The sparser
 * eligible one; in AUTO mode only at most SPARSE_DENSITY nonzeros, and for
 * products of at least SPARSE_FLOPS whose sparse side's partner spans more than
 * one micro-panel. A function of the operands and the ISA, never of the threads. */
static int sparse_choice(int32_t mode, const pd_gemm_isa *g, const pd_gemm_epilogue *ep,
                         const float *a, int64_t rsa, int64_t csa, const float *b, int64_t rsb,
                         int64_t csb, int64_t m, int64_t n, int64_t k) {
    if (mode == PD_SPARSE_OFF || g->sparse == NULL) {
        return 0;
    }
    const int auto_mode = mode == PD_SPARSE_AUTO;
    if (auto_mode && gemm_flops(m, n, k) < (double)PD_GEMM_SPARSE_FLOPS) {
        return 0;
    }
    /* one block of the (possibly transposed) product: one column block, one k group */
    int ok_a = one_block(n, k, g->nr) && (!auto_mode || n > g->nr);
    int ok_b = ep == NULL && one_block(m, k, g->nr) && (!auto_mode || m > g->nr);
    double da = ok_a ? sample_density(a, rsa, csa, m, k) : 2.0;
    double db = ok_b ? sample_density(b, csb, rsb, n, k) : 2.0;
    double limit = auto_mode ? PD_GEMM_SPARSE_DENSITY : 1.0;
    if (ok_a && da <= limit && da <= db) {
        return 1;
    }
    return ok_b && db <= limit ? 2 : 0;
}

/* Packed-B offset of chunk starting at pc, panel q. */
static float *bpanel(const gemm_job *j, float *bbuf, int64_t pc, int64_t kc, int64_t q) {
    return bbuf + (pc - j->p0) * j->npan * j->g->nr + q * kc * j->g->nr;
}

/* B packing units per k chunk of the block: groups of PD_GEMM_B_GROUP panels. */
static int64_t b_units(const gemm_job *j) {
    return (j->npan + PD_GEMM_B_GROUP - 1) / PD_GEMM_B_GROUP;
}

/* Pack unit u = (chunk, group of PD_GEMM_B_GROUP panels) of B: one packer call, so
 * it can walk the source rows across the group's panels. */
static void pack_b_unit(gemm_job *j, float *bbuf, int64_t u) {
    const int64_t nr = j->g->nr;
    const int64_t groups = b_units(j);
    int64_t chunk = u / groups, q = u % groups * PD_GEMM_B_GROUP;
    int64_t pc = j->p0 + chunk * j->kc_base;
    int64_t kc = imin(j->kc_base, j->p1 - pc);
    int64_t col = j->j0 + q * nr;
    int64_t ncol = imin(PD_GEMM_B_GROUP * nr, j->j1 - col);
    /* X(jj, p) = op(B)(pc + p, col + jj) */
    float *dst = bpanel(j, bbuf, pc, kc, q);
    j->g->pack(j->b + pc * j->rsb + col * j->csb, j->csb, j->rsb, ncol, kc, (int32_t)nr, dst);
    if (j->sparse && !j->g->finite(dst, (ncol + nr - 1) / nr * nr * kc)) {
        atomic_store_explicit(&j->nonfinite, 1, memory_order_relaxed);
    }
}

/* Packed-A offset of chunk starting at pc, panel r (shared_a layout). */
static float *apanel(const gemm_job *j, int64_t pc, int64_t kc, int64_t r) {
    return j->ashared + (pc - j->p0) * j->mpan * j->g->mr + r * kc * j->g->mr;
}

/* Pack unit u = (chunk, row panel) of A into the shared buffer. */
static void pack_a_unit(gemm_job *j, int64_t u) {
    const int64_t mr = j->g->mr;
    int64_t chunk = u / j->mpan, r = u % j->mpan;
    int64_t pc = j->p0 + chunk * j->kc_base;
    int64_t kc = imin(j->kc_base, j->p1 - pc);
    j->g->pack(j->a + r * mr * j->rsa + pc * j->csa, j->rsa, j->csa, imin(mr, j->m - r * mr), kc,
               (int32_t)mr, apanel(j, pc, kc, r));
}

/* One micro-tile (row panel r, column panel q) of a block for k chunk pc. */
static inline void run_tile(const gemm_job *j, const float *abuf, float *bbuf, int64_t mp0,
                            int64_t rbase, const float *a0, int64_t pc, int64_t kc, float beta,
                            const float *bias, int64_t r, int64_t q) {
    const pd_gemm_isa *g = j->g;
    const int64_t mr = g->mr, nr = g->nr;
    const float *bp = bpanel(j, bbuf, pc, kc, q);
    int64_t col = j->j0 + q * nr, ncol = imin(nr, j->j1 - col);
    int64_t row = r * mr, nrow = imin(mr, j->m - row);
    float *cp = j->c + row * j->ldc + col;
    /* the C this chunk adds to: C itself, or the bias row (chunk 0 of a biased call) */
    const float *cin = bias != NULL ? bias + col : cp;
    int64_t ldcin = bias != NULL ? 0 : j->ldc;
    if (j->direct_a && r < j->m / mr) {
        g->ukr(kc, a0 + (r - mp0) * mr * j->rsa, j->rsa, j->csa, bp, cp, j->ldc, cin, ldcin,
               j->alpha, beta, (int32_t)nrow, (int32_t)ncol);
    } else {
        const float *ap = j->direct_a ? abuf : abuf + (r - rbase) * mr * kc;
        g->ukr(kc, ap, 1, mr, bp, cp, j->ldc, cin, ldcin, j->alpha, beta, (int32_t)nrow,
               (int32_t)ncol);
    }
}

/* The beta of k chunk pc, and the bias row it adds to instead of C (else NULL). */
static float chunk_beta(const gemm_job *j, int64_t pc, const float **bias) {
    *bias = NULL;
    if (pc > 0) {
        return 1.0f;
    }
    if (j->ep != NULL && j->ep->bias != NULL) {
        *bias = j->ep->bias;
        return 1.0f;
    }
    return j->beta;
}

/* Output rows panels [mp0, mp1) x column panels [np0, np1) of this block, every k
 * chunk in order (so each element's sum order is fixed). */
static void compute_block(gemm_job *j, float *abuf, float *bbuf, int64_t mp0, int64_t mp1,
                          int64_t np0, int64_t np1) {
    const pd_gemm_isa *g = j->g;
    const int64_t mr = g->mr, nr = g->nr;
    const int64_t full_pan = j->m / mr; /* panels with all mr rows inside A */
    const int64_t row0 = mp0 * mr, rows = imin(mp1 * mr, j->m) - row0;
    const int64_t col0 = j->j0 + np0 * nr, cols = imin(j->j0 + np1 * nr, j->j1) - col0;
    float *cblk = j->c + row0 * j->ldc + col0;
    for (int64_t pc = j->p0; pc < j->p1; pc += j->kc_base) {
        int64_t kc = imin(j->kc_base, j->p1 - pc);
        const float *bias;
        float beta = chunk_beta(j, pc, &bias);
        const float *a0 = j->a + row0 * j->rsa + pc * j->csa;
        const float *ablk = abuf; /* packed A of this block, row panel rbase first */
        int64_t rbase = mp0;
        if (j->shared_a) {
            ablk = apanel(j, pc, kc, 0);
            rbase = 0;
        } else if (!j->direct_a) {
            g->pack(a0, j->rsa, j->csa, rows, kc, (int32_t)mr, abuf);
        } else if (mp1 > full_pan) {
            /* direct A: only the ragged last panel is packed (zero rows past m) */
            int64_t r0 = full_pan * mr;
            g->pack(j->a + r0 * j->rsa + pc * j->csa, j->rsa, j->csa, j->m - r0, kc, (int32_t)mr,
                    abuf);
        }
        /* the epilogue, once this chunk completes the sums: on the block, or strips */
        int after = pc + kc == j->k && j->ep != NULL && j->ep->after != NULL;
        if (kc <= PD_GEMM_SHORT_K) {
            /* Short k: the block's B panels all fit in L1, so tiles go along rows of
             * C, which then fills whole cache lines one after the other even when C
             * does not start on a line (NumPy's arrays often start 16 bytes past
             * one): with such a C, 256x10x256 ran 8% faster than down the columns,
             * where each line is written in two parts a column of tiles apart. */
            for (int64_t r = mp0; r < mp1; r++) {
                for (int64_t q = np0; q < np1; q++) {
                    run_tile(j, ablk, bbuf, mp0, rbase, a0, pc, kc, beta, bias, r, q);
                }
            }
        } else if (g->b_sweep > 0) {
            /* A micro-panel stays in L1 while up to b_sweep B micro-panels stream
             * from L2 (for kernels whose B micro-panel is too big for L1) */
            for (int64_t qb = np0; qb < np1; qb += g->b_sweep) {
                int64_t qe = imin(qb + g->b_sweep, np1);
                for (int64_t r = mp0; r < mp1; r++) {
                    for (int64_t q = qb; q < qe; q++) {
                        run_tile(j, ablk, bbuf, mp0, rbase, a0, pc, kc, beta, bias, r, q);
                    }
                }
            }
        } else {
            /* B micro-panel stays in L1 while the block's A micro-panels stream. A
             * block of part rows (column groups) has its epilogue column strip by
             * column strip, as soon as a strip's tiles are stored, while they are in
             * L1; after the block, it read the block back from L2 (at 2 threads, the
             * ReLU of a 256^3 fused forward cost 10% of its GEMM that way, 5% strip
             * by strip). A block of whole rows keeps one pass: one run of y. */
            const int strips = after && cols < j->ldc;
            for (int64_t q = np0; q < np1; q++) {
                for (int64_t r = mp0; r < mp1; r++) {
                    run_tile(j, ablk, bbuf, mp0, rbase, a0, pc, kc, beta, bias, r, q);
                }
                if (strips) {
                    int64_t c0 = j->j0 + q * nr;
                    j->ep->after(j->ep, j->c + row0 * j->ldc + c0, j->ldc, row0, rows, c0,
                                 imin(nr, j->j1 - c0));
                }
            }
            after = after && !strips;
        }
        if (after) {
            j->ep->after(j->ep, cblk, j->ldc, row0, rows, col0, cols);
        }
    }
}

/* Rows [mp0 * MR, mp1 * MR) x column panels [np0, np1) of the job's C (of C^T when
 * j->ct) from the nonzeros of their rows of op(A) (j->sparse: one block), then the
 * epilogue. Returns 0 when out of memory. */
static int sparse_block(const gemm_job *j, scratch_set *mine, float *bbuf, int64_t mp0,
                        int64_t mp1, int64_t np0, int64_t np1) {
    const pd_gemm_isa *g = j->g;
    const int64_t row0 = mp0 * g->mr, rows = imin(mp1 * g->mr, j->m) - row0;
    const int64_t col0 = np0 * g->nr, cols = imin(np1 * g->nr, j->n) - col0;
    const int64_t nr = g->nr, kmax = imin(j->kc_base, j->k);
    const int64_t nseg_max = (kmax + PD_GEMM_SPARSE_SEG - 1) / PD_GEMM_SPARSE_SEG, cap = kmax + 8;
    float *buf = mine != NULL
                     ? scratch_get(&mine->sp, rows * (2 * cap + nseg_max + PD_GEMM_SPARSE_COLS))
                     : NULL;
    if (buf == NULL) {
        return 0;
    }
    uint64_t *ent = (uint64_t *)(void *)buf; /* 2 * cap floats a row */
    float *acc = buf + 2 * rows * cap;
    int32_t *ends = (int32_t *)(acc + rows * PD_GEMM_SPARSE_COLS);
    float *c = j->c + (j->ct ? col0 * j->ldc + row0 : row0 * j->ldc + col0);
    /* chunk by chunk, as the dense path: C = alpha * sum + beta * C (or the bias row),
     * then C = alpha * sum + C */
    for (int64_t pc = j->p0; pc < j->p1; pc += j->kc_base) {
        const int64_t kc = imin(j->kc_base, j->p1 - pc);
        const int64_t nseg = (kc + PD_GEMM_SPARSE_SEG - 1) / PD_GEMM_SPARSE_SEG;
        g->sparse_build(j->a + row0 * j->rsa + pc * j->csa, j->rsa, j->csa, rows, kc,
                        (int32_t)nr, cap, nseg, ends, ent);
        pd_sparse_rows sr = {.rows = rows, .cap = cap, .nseg = nseg, .ends = ends, .ent = ent};
        const float *bias;
        const float beta = chunk_beta(j, pc, &bias);
        g->sparse(&sr, bpanel(j, bbuf, pc, kc, np0), kc, (int32_t)nr, cols, c, j->ldc,
                  bias != NULL ? bias + col0 : c, bias != NULL ? 0 : j->ldc, j->alpha, beta,
                  j->ct, acc);
    }
    if (j->ep != NULL && j->ep->after != NULL) {
        j->ep->after(j->ep, c, j->ldc, row0, rows, col0, cols);
    }
    return 1;
}

/* The first row of narrow panel `panel` (m past the last): panels are NMR rows, but
 * the first is nshift rows shorter. */
static int64_t narrow_row(const gemm_job *j, int64_t panel) {
    const int64_t r = panel * j->g->nmr - j->nshift;
    return r < 0 ? 0 : imin(r, j->m);
}

/* Narrow path: the rows of panels [mp0, mp1) of C (narrow_row), all its columns (in
 * about equal parts of at most NNR), every k chunk in order, then the epilogue. The
 * kernel reads NMR adjacent floats of op(A) per k step: an op(A) with adjacent rows
 * (Xᵀ·dY) is read in place, a short last panel through the NMR rows that end it; any
 * other NMR-row panel is packed right before its parts run, so they read it from L1
 * (packing Xᵀ·dY's panels as well ran slower). op(B) is read in place: the kernel
 * broadcasts its elements. With 9 or 10 columns, rows of op(B) adjacent and rows of
 * op(A) apart, the ten-column kernel takes each 8 rows instead, with no packing. */
static void narrow_block(const gemm_job *j, float *abuf, int64_t mp0, int64_t mp1) {
    const pd_gemm_isa *g = j->g;
    const int64_t nmr = g->nmr, row0 = narrow_row(j, mp0), rows = narrow_row(j, mp1) - row0;
    const int64_t parts = (j->n + g->nnr - 1) / g->nnr;
    const int ten = g->ten != NULL && j->rsa != 1 && j->csb == 1 && (j->n == 9 || j->n == 10);
    for (int64_t pc = 0; pc < j->k; pc += j->kc_base) {
        const int64_t kc = imin(j->kc_base, j->k - pc);
        const float *bias;
        const float beta = chunk_beta(j, pc, &bias);
        for (int64_t pan = mp0; pan < mp1; pan++) {
            const int64_t i = narrow_row(j, pan), nrow = narrow_row(j, pan + 1) - i;
            const float *ap = j->a + i * j->rsa + pc * j->csa;
            float *ci = j->c + i * j->ldc;
            if (ten) {
                for (int64_t r = 0; r < nrow; r += 8) {
                    g->ten(kc, ap + r * j->rsa, j->rsa, j->csa, j->b + pc * j->rsb, j->rsb,
                           ci + r * j->ldc, j->ldc,
                           bias != NULL ? bias : ci + r * j->ldc, bias != NULL ? 0 : j->ldc,
                           j->alpha, beta, (int32_t)imin(8, nrow - r), (int32_t)j->n);
                }
                continue;
            }
            int64_t csa = j->csa, first = 0;
            if (j->rsa != 1) {
                g->pack(ap, j->rsa, j->csa, nrow, kc, (int32_t)nmr, abuf);
                ap = abuf;
                csa = nmr;
            } else if (i + nmr > j->m) {
                /* a short last panel: the kernel reads the NMR rows that end it (m >=
                 * NMR) and stores its own */
                first = i + nmr - j->m;
                ap -= first;
            }
            for (int64_t q = 0; q < parts; q++) {
                const int64_t col = q * j->n / parts, cols = (q + 1) * j->n / parts - col;
                g->narrow(kc, ap, csa, j->b + pc * j->rsb + col * j->csb, j->rsb, j->csb,
                          ci + col, j->ldc, bias != NULL ? bias + col : ci + col,
                          bias != NULL ? 0 : j->ldc, j->alpha, beta, (int32_t)first,
                          (int32_t)nrow, (int32_t)cols);
            }
        }
    }
    if (j->ep != NULL && j->ep->after != NULL) {
        j->ep->after(j->ep, j->c + row0 * j->ldc, j->ldc, row0, rows, 0, j->n);
    }
}

/* One claimed block, dense or sparse. Returns 0 when the task must stop: a sparse
 * product met an Inf or NaN in packed B (it then runs again, dense; every task
 * packed, or waited for, its part of B first, and a threaded sparse product in
 * column groups has beta == 0, so a partly written C is not read), or out of memory
 * (status set). */
static int run_block(gemm_job *j, scratch_set *mine, float *abuf, float *bbuf, int64_t mp0,
                     int64_t mp1, int64_t np0, int64_t np1) {
    if (!j->sparse) {
        compute_block(j, abuf, bbuf, mp0, mp1, np0, np1);
        return 1;
    }
    if (atomic_load_explicit(&j->nonfinite, memory_order_relaxed)) {
        return 0;
    }
    if (!sparse_block(j, mine, bbuf, mp0, mp1, np0, np1)) {
        atomic_store(&j->status, PD_ERR_NOMEM);
        return 0;
    }
    return 1;
}

/* The first B panel of column group grp (npan past the last): the groups split the
 * packing units as evenly as whole units go, so no thread's share of C is a unit
 * rounding larger than another's (784 columns: 25 and 24 panels, not 28 and 21). */
static int64_t group_panel(const gemm_job *j, int64_t grp) {
    return imin(grp * b_units(j) / j->groups * PD_GEMM_B_GROUP, j->npan);
}

/* Column groups mode: task t starts on column group t % groups, packs that group's
 * B panels into its own buffer (at the offsets a full packing would use) and claims
 * the group's row blocks; when none is left it moves on to the next group, packing
 * that group's B first. Each thread thus streams only its own group of B, from its
 * own L2, and no task waits for another's packing. */
static void group_task(gemm_job *j, int32_t t, scratch_set *mine) {
    float *bbuf = mine != NULL ? scratch_get(&mine->b, j->bsize) : NULL;
    float *abuf = mine != NULL ? scratch_get(&mine->a, j->upan * j->g->mr * j->kc_base) : NULL;
    if (bbuf == NULL || abuf == NULL) {
        atomic_store(&j->status, PD_ERR_NOMEM);
        return;
    }
    const int64_t chunks = (j->p1 - j->p0 + j->kc_base - 1) / j->kc_base;
    const int64_t b_groups = b_units(j);
    for (int64_t i = 0; i < j->groups; i++) {
        int64_t grp = (t + i) % j->groups;
        int64_t np0 = group_panel(j, grp), np1 = group_panel(j, grp + 1);
        int packed = 0;
        for (;;) {
            int64_t ur = atomic_fetch_add_explicit(&j->group_next[grp], 1, memory_order_relaxed);
            if (ur >= j->mu) {
                break;
            }
            if (!packed) {
                /* the group is whole packing units */
                for (int64_t c = 0; c < chunks; c++) {
                    for (int64_t q = np0 / PD_GEMM_B_GROUP; q * PD_GEMM_B_GROUP < np1; q++) {
                        pack_b_unit(j, bbuf, c * b_groups + q);
                    }
                }
                packed = 1;
            }
            /* Odd groups take their blocks bottom-up: rows of C (and of a fused
             * forward's mask, which the groups share line by line) are then written
             * by one thread at a time until the two meet. 256^3 fused at 2 threads:
             * fused / GEMM 1.115 -> 1.106. */
            if (grp % 2 == 1) {
                ur = j->mu - 1 - ur;
            }
            int64_t mp0 = ur * j->upan, mp1 = imin(mp0 + j->upan, j->mpan);
            if (!run_block(j, mine, abuf, bbuf, mp0, mp1, np0, np1)) {
                return;
            }
        }
    }
}

static void gemm_task(void *ctx, int32_t t, int32_t n_tasks) {
    gemm_job *j = ctx;
    (void)n_tasks;
    scratch_set *mine = scratch_mine();
    if (j->groups > 0) {
        group_task(j, t, mine);
        return;
    }
    if (j->narrow) {
        float *abuf = mine != NULL ? scratch_get(&mine->a, j->g->nmr * j->kc_base) : NULL;
        if (abuf == NULL) {
            atomic_store(&j->status, PD_ERR_NOMEM);
            return;
        }
        for (int64_t u;
             (u = atomic_fetch_add_explicit(&j->next_tile, 1, memory_order_relaxed)) < j->mu;) {
            narrow_block(j, abuf, u * j->upan, imin((u + 1) * j->upan, j->mpan));
        }
        return;
    }

    float *bbuf = j->bbuf;
    if (j->private_b && (mine == NULL || mine->b.p != j->bbuf)) {
        /* (the calling thread, task 0, already owns j->bbuf) */
        /* Small op(B): every task packs all of it into its own buffer, so no task
         * ever waits for another (a descheduled worker cannot stall the caller). */
        bbuf = mine != NULL ? scratch_get(&mine->b, j->bsize) : NULL;
        if (bbuf == NULL) {
            atomic_store(&j->status, PD_ERR_NOMEM);
            return;
        }
    }
    if (j->private_b) {
        for (int64_t u = 0; u < j->nb_units; u++) {
            pack_b_unit(j, bbuf, u);
        }
    } else {
        /* Phase 1: claim B panels until none are left, then wait for the others'
         * claimed panels. Claiming (not a static split) means no task ever waits
         * for work that has not started, whatever the pool does. */
        for (;;) {
            int64_t u = atomic_fetch_add_explicit(&j->next_unit, 1, memory_order_relaxed);
            if (u >= j->n_units) {
                break;
            }
            if (u < j->nb_units) {
                pack_b_unit(j, bbuf, u);
            } else {
                pack_a_unit(j, u - j->nb_units);
            }
            atomic_fetch_add_explicit(&j->done_units, 1, memory_order_release);
        }
        for (int spins = 0;
             atomic_load_explicit(&j->done_units, memory_order_acquire) < j->n_units; spins++) {
            /* a panel is a few microseconds of work; if its packer was descheduled,
             * give the CPU away instead of spinning through a time slice */
            if (spins < 4096) {
#if PD_X86
                _mm_pause();
#endif
            } else {
                sched_yield();
            }
        }
    }

    /* Phase 2: claim output blocks until none are left. (A sparse job lists its rows
     * of op(A) in sparse_block instead of packing them.) */
    float *abuf = j->ashared;
    if (!j->shared_a && !j->sparse) {
        abuf = mine != NULL ? scratch_get(&mine->a, j->upan * j->g->mr * j->kc_base) : NULL;
        if (abuf == NULL) {
            atomic_store(&j->status, PD_ERR_NOMEM);
            return;
        }
    }
    for (;;) {
        int64_t u = atomic_fetch_add_explicit(&j->next_tile, 1, memory_order_relaxed);
        if (u >= j->mu * j->nu) {
            break;
        }
        int64_t ur = u % j->mu, uc = u / j->mu;
        int64_t mp0 = ur * j->upan, mp1 = imin(mp0 + j->upan, j->mpan);
        int64_t np0 = uc * j->cpan, np1 = imin(np0 + j->cpan, j->npan);
        if (!run_block(j, mine, abuf, bbuf, mp0, mp1, np0, np1)) {
            return;
        }
    }
}

/* C = beta * C (k == 0 or alpha == 0); beta == 0 writes zeros without reading C. */
static void scale_c(float *c, int64_t ldc, int64_t m, int64_t n, float beta) {
    for (int64_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        if (beta == 0.0f) {
            memset(ci, 0, (size_t)n * sizeof(float));
        } else if (beta != 1.0f) {
            for (int64_t jj = 0; jj < n; jj++) {
                ci[jj] *= beta;
            }
        }
    }
}

/* Bytes spanned by each operand of g (0 when it is not read or written). */
static size_t span_a(const pd_sgemm_args *g) {
    return g->m > 0 && g->n > 0 && g->k > 0
               ? pd_span_bytes(g->trans_a ? g->k : g->m, g->trans_a ? g->m : g->k, g->lda)
               : 0;
}
static size_t span_b(const pd_sgemm_args *g) {
    return g->m > 0 && g->n > 0 && g->k > 0
               ? pd_span_bytes(g->trans_b ? g->n : g->k, g->trans_b ? g->k : g->n, g->ldb)
               : 0;
}
static size_t span_c(const pd_sgemm_args *g) {
    return g->m > 0 && g->n > 0 ? pd_span_bytes(g->m, g->n, g->ldc) : 0;
}

/* pd_sgemm's argument checks. */
static pd_status sgemm_check(const pd_sgemm_args *g) {
    if ((g->trans_a != 0 && g->trans_a != 1) || (g->trans_b != 0 && g->trans_b != 1)) {
        return PD_ERR_ARG;
    }
    if (g->m < 0 || g->n < 0 || g->k < 0) {
        return PD_ERR_ARG;
    }
    if (g->lda < (g->trans_a ? g->m : g->k) || g->ldb < (g->trans_b ? g->k : g->n) ||
        g->ldc < g->n) {
        return PD_ERR_ARG;
    }
    if ((g->a == NULL && g->m > 0 && g->k > 0) || (g->b == NULL && g->k > 0 && g->n > 0) ||
        (g->c == NULL && g->m > 0 && g->n > 0)) {
        return PD_ERR_ARG;
    }
    if (pd_misaligned(g->a) || pd_misaligned(g->b) || pd_misaligned(g->c)) {
        return PD_ERR_ARG;
    }
    /* The spans each operand's rows and leading dimension cover: no real array is
     * larger than PD_MAX_ELEMS, and C must not share a byte with A or B (a bound, as
     * np.may_share_memory's default is). */
    size_t abytes = span_a(g), bbytes = span_b(g), cbytes = span_c(g);
    if (abytes == PD_SPAN_BAD || bbytes == PD_SPAN_BAD || cbytes == PD_SPAN_BAD ||
        pd_overlaps(g->c, cbytes, g->a, abytes) || pd_overlaps(g->c, cbytes, g->b, bbytes)) {
        return PD_ERR_ARG;
    }
    return PD_OK;
}

/* pd_sgemm after sgemm_check, on at most max_threads threads. */
static pd_status sgemm_checked(const pd_sgemm_args *g, int32_t max_threads) {
    if (g->m == 0 || g->n == 0) {
        return PD_OK;
    }
    if (g->k == 0 || g->alpha == 0.0f) {
        scale_c(g->c, g->ldc, g->m, g->n, g->beta);
        return PD_OK;
    }
    return pd_gemm_run(g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha, g->a, g->lda, g->b,
                       g->ldb, g->beta, g->c, g->ldc, NULL, max_threads);
}

pd_status pd_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k,
                   float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                   float beta, float *c, int64_t ldc) {
    pd_sgemm_args g = {trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc};
    pd_status st = sgemm_check(&g);
    return st != PD_OK ? st : sgemm_checked(&g, pd_get_num_threads());
}

typedef struct pair_job {
    const pd_sgemm_args *g[2];
    pd_status st[2];
} pair_job;

static void pair_task(void *ctx, int32_t t, int32_t n_tasks) {
    pair_job *p = ctx;
    (void)n_tasks;
    p->st[t] = sgemm_checked(p->g[t], 1);
}

void pd_sgemm_spans(const pd_sgemm_args *g, size_t *a, size_t *b, size_t *c) {
    *a = span_a(g);
    *b = span_b(g);
    *c = span_c(g);
}

pd_status pd_sgemm_pair_check(const pd_sgemm_args *g0, const pd_sgemm_args *g1) {
    if (g0 == NULL) {
        return PD_ERR_ARG;
    }
    pd_status st = sgemm_check(g0);
    if (st != PD_OK || g1 == NULL) {
        return st;
    }
    st = sgemm_check(g1);
    if (st != PD_OK) {
        return st;
    }
    size_t c0 = span_c(g0), c1 = span_c(g1);
    if (pd_overlaps(g0->c, c0, g1->c, c1) || pd_overlaps(g0->c, c0, g1->a, span_a(g1)) ||
        pd_overlaps(g0->c, c0, g1->b, span_b(g1)) || pd_overlaps(g1->c, c1, g0->a, span_a(g0)) ||
        pd_overlaps(g1->c, c1, g0->b, span_b(g0))) {
        return PD_ERR_ARG;
    }
    return PD_OK;
}

pd_status pd_sgemm_pair(const pd_sgemm_args *a0, const pd_sgemm_args *a1) {
    if (a0 == NULL || a1 == NULL) {
        return PD_ERR_ARG;
    }
    /* Copies, so that what is checked is what runs (the caller's may change). */
    const pd_sgemm_args c0 = *a0, c1 = *a1, *g0 = &c0, *g1 = &c1;
    pd_status st = pd_sgemm_pair_check(g0, g1);
    if (st != PD_OK) {
        return st;
    }
    /* Side by side only when each product is worth a thread of its own. */
    if (pd_get_num_threads() != 2 || gemm_flops(g0->m, g0->n, g0->k) < PD_GEMM_FLOPS_PER_TASK ||
        gemm_flops(g1->m, g1->n, g1->k) < PD_GEMM_FLOPS_PER_TASK) {
        st = sgemm_checked(g0, pd_get_num_threads());
        return st != PD_OK ? st : sgemm_checked(g1, pd_get_num_threads());
    }
    pair_job p = {{g0, g1}, {PD_OK, PD_OK}};
    st = pd_parallel(2, pair_task, &p);
    if (st == PD_ERR_THREAD) {
        /* no worker could start (nothing ran): the same results on this thread */
        pair_task(&p, 0, 2);
        pair_task(&p, 1, 2);
        st = PD_OK;
    }
    return st != PD_OK ? st : p.st[0] != PD_OK ? p.st[0] : p.st[1];
}

/* Run the job's current block on up to threads tasks (resets the tile claims). */
static pd_status run_job(gemm_job *j, int32_t threads) {
    atomic_store(&j->next_tile, 0);
    atomic_store(&j->status, PD_OK);
    pd_status st = pd_parallel(threads, gemm_task, j);
    if (st == PD_ERR_THREAD) {
        /* no worker could start (nothing ran): same result on this thread */
        gemm_task(j, 0, 1);
    } else if (st != PD_OK) {
        return st;
    }
    return (pd_status)atomic_load(&j->status);
}

/* pd_gemm_run in one sparse mode. */
static pd_status gemm_run(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k,
                          float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                          float beta, float *c, int64_t ldc, const pd_gemm_epilogue *ep,
                          int32_t max_threads, int32_t mode) {
    const pd_gemm_isa *g = gemm_table[pd_isa_active()];
    if (g == NULL) {
        g = &pd_gemm_scalar;
    }
    const int64_t mr = g->mr, nr = g->nr;

    gemm_job j;
    memset(&j, 0, sizeof j);
    j.g = g;
    j.a = a;
    j.b = b;
    j.c = c;
    j.rsa = trans_a ? 1 : lda;
    j.csa = trans_a ? lda : 1;
    j.rsb = trans_b ? 1 : ldb;
    j.csb = trans_b ? ldb : 1;
    j.ldc = ldc;
    j.m = m;
    j.n = n;
    j.k = k;
    /* Sparse op(A) or op(B): each row of C (of C^T) then sums only its row's nonzero
     * terms of op(A) (of op(B)^T), in the dense order, so the result is the same. */
    const int64_t m_call = m, n_call = n;
    int choice = sparse_choice(mode, g, ep, a, j.rsa, j.csa, b, j.rsb, j.csb, m, n, k);
    j.sparse = choice != 0;
    if (choice == 2) {
        /* C^T (n x m) = op(B)^T op(A)^T: the operands trade places, each with its
         * row and column strides swapped (op(B)^T(j, p) = b[j * csb + p * rsb]) */
        const int64_t rsa = j.rsa, csa = j.csa;
        j.ct = 1;
        j.a = b;
        j.b = a;
        j.rsa = j.csb;
        j.csa = j.rsb;
        j.rsb = csa;
        j.csb = rsa;
        j.m = n;
        j.n = m;
        m = j.m;
        n = j.n;
    }
    j.alpha = alpha;
    j.beta = beta;
    j.ep = ep;
    j.kc_base = chunk_base(k);
    const int64_t n_chunks = (k + j.kc_base - 1) / j.kc_base;

    int32_t threads = max_threads;
    double by_work = gemm_flops(m, n, k) / (double)PD_GEMM_FLOPS_PER_TASK;
    if (by_work < (double)threads) {
        threads = by_work < 1.0 ? 1 : (int32_t)by_work;
    }
    if (!j.sparse && g->narrow != NULL && n < nr && m >= g->nmr) {
        /* Fewer columns than NR: NR-wide tiles would leave NR - n lanes of each
         * vector idle, the narrow kernel none (256x256x10 on AVX2: 10 of 16). Row
         * blocks, about 4 per thread. */
        j.narrow = 1;
        /* An op(A) read in place whose k steps all start alike within narrow_align
         * bytes: the panels after the first start on such a boundary, so no vector
         * load spans two cache lines (AVX2, 256x256x10 Xᵀ·dY with X 16 bytes past a
         * line, as NumPy's arrays often are: 15.4 -> 14.4 us). */
        const int64_t va = g->narrow_align / (int64_t)sizeof(float);
        if (va > 0 && j.rsa == 1 && j.csa % va == 0) {
            const int64_t off = (int64_t)((uintptr_t)j.a / sizeof(float) % (uintptr_t)va);
            j.nshift = off > 0 ? g->nmr - (va - off) : 0;
        }
        j.mpan = (m + j.nshift + g->nmr - 1) / g->nmr;
        j.upan = imin((j.mpan + 4 * threads - 1) / (4 * threads),
                      g->mc / g->nmr > 1 ? g->mc / g->nmr : 1);
        j.mu = (j.mpan + j.upan - 1) / j.upan;
        return run_job(&j, threads);
    }

    int64_t n_pad = (n + nr - 1) / nr * nr;
    int64_t nc = block_cols(n, nr);
    int64_t kgroup = group_chunks(nc, j.kc_base) * j.kc_base;
    scratch_set *mine = scratch_mine();
    j.bsize = nc * imin(kgroup, n_chunks * j.kc_base);
    float *bbuf = mine != NULL ? scratch_get(&mine->b, j.bsize) : NULL;
    if (bbuf == NULL) {
        return PD_ERR_NOMEM;
    }

    for (int64_t j0 = 0; j0 < n; j0 += nc) {
        for (int64_t p0 = 0; p0 < k; p0 += kgroup) {
            j.j0 = j0;
            j.j1 = imin(n, j0 + nc);
            j.p0 = p0;
            j.p1 = imin(k, p0 + kgroup);
            j.npan = (j.j1 - j0 + nr - 1) / nr;
            j.bbuf = bbuf;
            j.private_b = threads > 1 && j.npan * nr * (j.p1 - p0) <= PD_GEMM_PRIVATE_B;
            /* Work units, claimed dynamically; see each case. */
            int64_t mpan = (m + mr - 1) / mr;
            j.cpan = j.npan;
            j.groups = 0;
            /* Column groups (group_task) when B is large and fits one block. */
            const int grouped = threads > 1 && k > PD_GEMM_SHORT_K && !j.private_b &&
                                j.npan >= 2 * PD_GEMM_B_GROUP && n <= nc && k <= kgroup &&
                                (!j.sparse || beta == 0.0f);
            const int epilogue = ep != NULL && ep->after != NULL;
            if (!grouped && (j.sparse || (threads > 1 && (epilogue || k <= PD_GEMM_SHORT_K)))) {
                /* Full-width row blocks over a shared packing of B: an epilogue then
                 * sees whole rows of C, one contiguous run, instead of a short segment
                 * per row. About 8 per thread: each block streams all of packed B, so
                 * shorter blocks mean more of that traffic, but the other threads wait
                 * for the last block claimed. A short-k product, mostly the
                 * writing of C, also takes whole rows, so each task writes long runs of
                 * C: 256x10x256 ran 16-22% faster at 2 threads than in column units
                 * (C on a cache line, or 16 bytes past one). */
                int64_t units = 8 * (int64_t)threads;
                j.upan = imin((mpan + units - 1) / units, g->mc / mr);
            } else if (grouped) {
                /* Column groups (group_task): one per thread, whole packing units,
                 * each in about 4 row blocks so that a thread done with its own group
                 * takes over part of a late one. Each thread's B then stays in its
                 * own L2 instead of streaming from the shared L3: at 2 threads the
                 * plain 256x784x256, 784x256x256 and 256^3 products ran 16-34% faster
                 * than over a shared packing of B split into 2D blocks (below) in slow
                 * spells of this shared machine, and as fast in quiet ones. The fused
                 * Dense forward too (its epilogue then runs strip by strip on a
                 * group's block, compute_block): fused / GEMM alone at 256x784x256 and 256^3 went from 1.09-1.10
                 * and 1.18 over full-width row blocks to 1.04 and 1.14 in quiet spells,
                 * and at 256x784x256 from 1.20 to 1.11 in slow ones. */
                j.groups = imin(imin(threads, j.npan / PD_GEMM_B_GROUP), PD_GEMM_MAX_GROUPS);
                for (int64_t i = 0; i < j.groups; i++) {
                    atomic_store(&j.group_next[i], 0);
                }
                j.upan = imin((mpan + 3) / 4, g->mc / mr);
            } else {
                /* Row blocks of about one thread's share (at most MC rows), so each
                 * packed A block is reused across many B panels, split by columns into
                 * about 4 units per thread for dynamic balancing. */
                j.upan = imin((mpan + threads - 1) / threads, g->mc / mr);
                int64_t mu = (mpan + j.upan - 1) / j.upan, want = 4 * (int64_t)threads;
                if (threads > 1 && mu < want) {
                    int64_t ncol = (want + mu - 1) / mu;
                    j.cpan = (j.npan + ncol - 1) / ncol;
                }
            }
            if (j.sparse) {
                /* whole groups of 8 rows: the builders transpose 8 x 8 blocks */
                int64_t q = 1;
                while (q * mr % 8 != 0) {
                    q++;
                }
                j.upan = (j.upan + q - 1) / q * q;
            }
            /* The kernel reads op(A) in place, unpacked (the arithmetic is the same
             * either way), when packing it would cost more than it saves: with at
             * most DIRECT_NPAN column panels in C, each A panel is used once or
             * twice. With rows of op(A) contiguous (X·W, dY·Wᵀ), also when each A
             * panel meets at most DIRECT_ROWS_NPAN column panels: the kernel's MR
             * row streams then run as fast as a packed panel, and in column groups
             * each thread would pack all of A (256x784x256 at 2 threads, operands 16
             * bytes past a line: 503 -> 486 us; 256^3 at 1 thread: 313 -> 308 us). */
            const int64_t uses = j.groups > 0 ? (j.npan + j.groups - 1) / j.groups : j.cpan;
            j.direct_a = n_pad <= PD_GEMM_DIRECT_NPAN * nr ||
                         (j.csa == 1 && uses <= PD_GEMM_DIRECT_ROWS_NPAN);
            j.mu = (mpan + j.upan - 1) / j.upan;
            j.nu = (j.npan + j.cpan - 1) / j.cpan;
            int64_t chunks = (j.p1 - p0 + j.kc_base - 1) / j.kc_base;
            j.nb_units = chunks * b_units(&j);
            j.n_units = j.nb_units;
            j.mpan = mpan;
            /* Threads sharing B also share one packing of A when it fits: otherwise
             * each column unit would pack its row block again. */
            j.shared_a = threads > 1 && j.groups == 0 && !j.direct_a && !j.private_b && j.nu > 1 &&
                         mpan * mr * (j.p1 - p0) <= PD_GEMM_A_CAP;
            if (j.shared_a) {
                j.ashared = scratch_get(&mine->a, mpan * mr * (j.p1 - p0));
                if (j.ashared == NULL) {
                    return PD_ERR_NOMEM;
                }
                j.n_units += chunks * mpan;
            }
            atomic_store(&j.next_unit, 0);
            atomic_store(&j.done_units, 0);
            atomic_store(&j.nonfinite, 0);
            pd_status st = run_job(&j, threads);
            if (st != PD_OK) {
                return st;
            }
        }
    }
    if (j.sparse && atomic_load(&j.nonfinite)) {
        /* nothing was written: the dense path, which propagates the Inf or NaN */
        return gemm_run(trans_a, trans_b, m_call, n_call, k, alpha, a, lda, b, ldb, beta, c, ldc,
                        ep, max_threads, PD_SPARSE_OFF);
    }
    return PD_OK;
}

pd_status pd_gemm_run(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k,
                      float alpha, const float *a, int64_t lda, const float *b, int64_t ldb,
                      float beta, float *c, int64_t ldc, const pd_gemm_epilogue *ep,
                      int32_t max_threads) {
    return gemm_run(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ep,
                    max_threads, atomic_load(&sparse_mode));
}
