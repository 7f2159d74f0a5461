/* Fused Dense forward: bias, ReLU and dropout applied in the SGEMM epilogue.
 *
 * The GEMM's first k chunk accumulates onto the bias row (beta = 1, the micro-kernel
 * reading the bias where the unfused Dense reads a y pre-filled with it: the same
 * arithmetic, without writing y twice), and the driver calls after() once a block's
 * last chunk is stored, while the block is still in L1/L2: one pass that draws the
 * Philox keep bits of its elements (mask byte e / 8 of element e = i * n + j) and
 * writes keep ? relu(y) * s : +0.0. Every step is elementwise with the active ISA's
 * kernels, so y and the mask are bit-identical to the unfused sequence documented in
 * pydrop.h, for any thread count. */
#include <string.h>

#include "gemm.h"

typedef struct linear_ctx {
    const pd_kernels *kern;
    uint8_t *mask; /* NULL: no mask drawn in the epilogue (see fuse) */
    int64_t n;
    int32_t act;
    float s;
    uint32_t t, stream;
    uint32_t key[2];
    uint64_t step;
} linear_ctx;

static void lin_after(const pd_gemm_epilogue *e, float *c, int64_t ldc, int64_t row0,
                      int64_t rows, int64_t col0, int64_t cols) {
    const linear_ctx *x = e->ctx;
    /* Rows of the block (or strip), each a run of y; a block of whole rows is one
     * contiguous run. n % 8 == 0 and col0 % 8 == 0 here, so each run owns whole mask
     * bytes: run r's are the stride bytes after run r - 1's. */
    int64_t runs = rows, len = cols;
    if (cols == ldc) {
        runs = 1;
        len = rows * cols;
    }
    if (x->mask == NULL) {
        x->kern->relu_rows(c, c, ldc, runs, len);
        return;
    }
    /* ReLU rides on the dropout pass */
    const int64_t byte0 = (row0 * x->n + col0) >> 3;
    x->kern->drop_rows(x->key, x->stream, x->step, (uint64_t)byte0, x->n >> 3, c, c, ldc, runs,
                       len, x->t, x->s, x->mask + byte0, x->act);
}

pd_status pd_linear_forward_f32(const float *x, int64_t ldx, const float *w, int64_t ldw,
                                int32_t trans_w, const float *bias, float *y, uint8_t *mask,
                                int64_t m, int64_t n, int64_t k, int32_t act, float p,
                                uint64_t seed, uint32_t stream, uint64_t step) {
    if (m < 0 || n < 0 || k < 0 || (trans_w != 0 && trans_w != 1) || (act != 0 && act != 1) ||
        !(p >= 0.0f && p <= 1.0f) || ldx < k || ldw < (trans_w ? k : n)) {
        return PD_ERR_ARG;
    }
    if (m == 0 || n == 0) {
        return PD_OK;
    }
    if (n > ((int64_t)1 << 35) / m) {
        return PD_ERR_ARG; /* mask counters are 32-bit blocks: at most 2^35 elements */
    }
    const int64_t total = m * n;
    size_t ybytes = (size_t)total * sizeof(float), mbytes = (size_t)((total + 7) >> 3);
    if (y == NULL || (k > 0 && (x == NULL || w == NULL)) || (mask == NULL && p != 0.0f) ||
        pd_misaligned(x) || pd_misaligned(w) || pd_misaligned(bias) || pd_misaligned(y)) {
        return PD_ERR_ARG;
    }
    size_t xbytes = k > 0 ? pd_span_bytes(m, k, ldx) : 0;
    size_t wbytes = k > 0 ? pd_span_bytes(trans_w ? n : k, trans_w ? k : n, ldw) : 0;
    if (xbytes == PD_SPAN_BAD || wbytes == PD_SPAN_BAD ||
        (k > 0 && (pd_overlaps(y, ybytes, x, xbytes) || pd_overlaps(y, ybytes, w, wbytes))) ||
        pd_overlaps(y, ybytes, bias, (size_t)n * sizeof(float)) ||
        pd_overlaps(y, ybytes, mask, mbytes) ||
        pd_overlaps(mask, mbytes, bias, (size_t)n * sizeof(float)) ||
        pd_overlaps(mask, mbytes, x, k > 0 ? xbytes : 0) ||
        pd_overlaps(mask, mbytes, w, k > 0 ? wbytes : 0)) {
        return PD_ERR_ARG;
    }

    uint32_t t = pd_dropout_threshold(p);
    if (mask != NULL && t >= 65536u) {
        /* p == 1, or so close that no 16-bit value is kept: dropout writes y = +0.0
         * and no keep bit whatever y holds, so the GEMM is skipped */
        return pd_dropout_forward_f32(y, y, mask, total, p, seed, stream, step);
    }
    linear_ctx lc = {.kern = pd_active_kernels(), .n = n, .act = act, .s = pd_keep_scale(p),
                     .t = t, .stream = stream, .key = {(uint32_t)seed, (uint32_t)(seed >> 32)},
                     .step = step};
    /* The mask joins the epilogue when rows hold whole mask bytes and there is one to
     * draw. Otherwise dropout runs after the GEMM: a second pass over y with the same
     * bits, or, for p == 0, only the all-ones mask, written once rather than 2 bytes
     * a row per strip (which at 2 threads cost 3% of a 256^3 forward). */
    int fuse = (n & 7) == 0 && p != 0.0f;
    if (fuse) {
        lc.mask = mask;
    }

    pd_status st = PD_OK;
    if (k == 0) {
        /* y = bias (or 0), then the same elementwise steps. */
        for (int64_t i = 0; i < m; i++) {
            if (bias != NULL) {
                memcpy(y + i * n, bias, (size_t)n * sizeof(float));
            } else {
                memset(y + i * n, 0, (size_t)n * sizeof(float));
            }
        }
        if (act) {
            st = pd_relu_forward_f32(y, y, total);
        }
        fuse = 0;
    } else {
        pd_gemm_epilogue ep = {.bias = bias, .after = lin_after, .ctx = &lc};
        if (!act && lc.mask == NULL) {
            ep.after = NULL;
        }
        st = pd_gemm_run(0, trans_w, m, n, k, 1.0f, x, ldx, w, ldw, 0.0f, y, n, &ep,
                         pd_get_num_threads());
    }
    if (st == PD_OK && !fuse && mask != NULL) {
        st = pd_dropout_forward_f32(y, y, mask, total, p, seed, stream, step);
    }
    return st;
}

/* ---- backward ---------------------------------------------------------------- */

typedef struct linear_bwd_job {
    const pd_kernels *kern;
    const float *dy, *y;
    const uint8_t *mask;
    float *dz, *db;
    int64_t m, n;
    int32_t act;
    int32_t all_dropped; /* p keeps no 16-bit value (p == 1): dz = 0, whatever the mask */
    float s;
} linear_bwd_job;

/* Columns [c0, c1) of every row, rows in order: dz = relu'(y) * (keep ? dy * s : 0),
 * db[j] += dz[i][j] for i = 0, 1, ... (one task owns a column, so the sum order is
 * fixed). n % 8 == 0 and c0 % 8 == 0, so each row segment starts on a mask byte. */
static void bwd_columns(const linear_bwd_job *j, int64_t c0, int64_t c1) {
    const int64_t len = c1 - c0;
    for (int64_t i = 0; i < j->m; i++) {
        const int64_t off = i * j->n + c0;
        float *dz = j->dz + off;
        if (j->all_dropped) {
            memset(dz, 0, (size_t)len * sizeof(float));
        } else if (j->mask != NULL) {
            j->kern->apply(j->dy + off, j->mask + (off >> 3), dz, len, j->s);
        } else if (dz != j->dy + off) {
            memcpy(dz, j->dy + off, (size_t)len * sizeof(float));
        }
        if (j->act) {
            j->kern->relu_bwd(dz, j->y + off, dz, len);
        }
        if (j->db != NULL) {
            float *db = j->db + c0;
            for (int64_t c = 0; c < len; c++) {
                db[c] += dz[c];
            }
        }
    }
}

static void bwd_task(void *ctx, int32_t t, int32_t n_tasks) {
    const linear_bwd_job *j = ctx;
    int64_t units = j->n / 8; /* columns in groups of 8 (one mask byte per row) */
    int64_t c0 = units * t / n_tasks * 8, c1 = units * (t + 1) / n_tasks * 8;
    if (c0 < c1) {
        bwd_columns(j, c0, c1);
    }
}

/* The bytes of the elementwise part's operands: dy, dz and y (*f) and the mask (*mb),
 * 0 when dz is empty; db (*db), which is written even then (zero-filled). Callers
 * have checked that m * n does not overflow. */
static void bwd_bytes(int64_t m, int64_t n, size_t *f, size_t *mb, size_t *db) {
    size_t total = m > 0 && n > 0 ? (size_t)(m * n) : 0;
    *f = total * sizeof(float);
    *mb = (total + 7) >> 3;
    *db = (size_t)(n > 0 ? n : 0) * sizeof(float);
}

/* The elementwise part's checks (m == 0 or n == 0 pass: nothing to do). */
static pd_status bwd_check(const float *dy, const uint8_t *mask, const float *y, const float *dz,
                           const float *db, int64_t m, int64_t n, int32_t act, float p) {
    if (m < 0 || n < 0 || (act != 0 && act != 1) || !(p >= 0.0f && p <= 1.0f)) {
        return PD_ERR_ARG;
    }
    if (m == 0 || n == 0) {
        return PD_OK;
    }
    if (n > ((int64_t)1 << 35) / m) {
        return PD_ERR_ARG;
    }
    size_t fbytes, mbytes, dbbytes;
    bwd_bytes(m, n, &fbytes, &mbytes, &dbbytes);
    if (dy == NULL || dz == NULL || (act && y == NULL) || (mask == NULL && p != 0.0f)) {
        return PD_ERR_ARG;
    }
    if ((dz != dy && pd_overlaps(dz, fbytes, dy, fbytes)) ||
        pd_overlaps(dz, fbytes, mask, mbytes) ||
        (act && pd_overlaps(dz, fbytes, y, fbytes)) ||
        pd_overlaps(db, dbbytes, dz, fbytes) || pd_overlaps(db, dbbytes, dy, fbytes) ||
        pd_overlaps(db, dbbytes, mask, mbytes) || (act && pd_overlaps(db, dbbytes, y, fbytes))) {
        return PD_ERR_ARG;
    }
    return PD_OK;
}

/* Whether g and the elementwise part clash: g's C on anything the elementwise part
 * reads or writes, or dz and db (written first) under an operand g reads. One
 * operand may be dz itself (the product's dz), not both. */
static int gemm_clashes(const pd_sgemm_args *g, const float *dy, const uint8_t *mask,
                        const float *y, const float *dz, const float *db, int64_t m, int64_t n,
                        int32_t act) {
    size_t fbytes, mbytes, dbbytes, abytes, bbytes, cbytes;
    bwd_bytes(m, n, &fbytes, &mbytes, &dbbytes);
    pd_sgemm_spans(g, &abytes, &bbytes, &cbytes);
    int a_dz = g->a == dz, b_dz = g->b == dz;
    return pd_overlaps(g->c, cbytes, dy, fbytes) || pd_overlaps(g->c, cbytes, dz, fbytes) ||
           pd_overlaps(g->c, cbytes, mask, mbytes) || pd_overlaps(g->c, cbytes, db, dbbytes) ||
           (act && pd_overlaps(g->c, cbytes, y, fbytes)) || (a_dz && b_dz) ||
           (!a_dz && pd_overlaps(g->a, abytes, dz, fbytes)) ||
           (!b_dz && pd_overlaps(g->b, bbytes, dz, fbytes)) ||
           pd_overlaps(g->a, abytes, db, dbbytes) || pd_overlaps(g->b, bbytes, db, dbbytes);
}

/* The elementwise part after bwd_check. */
static pd_status bwd_run(const float *dy, const uint8_t *mask, const float *y, float *dz,
                         float *db, int64_t m, int64_t n, int32_t act, float p) {
    if (m == 0 || n == 0) {
        return PD_OK;
    }
    const int64_t total = m * n;
    linear_bwd_job j = {.kern = pd_active_kernels(), .dy = dy, .y = y, .mask = mask, .dz = dz,
                        .db = db, .m = m, .n = n, .act = act,
                        .all_dropped = mask != NULL && pd_dropout_threshold(p) >= 65536u,
                        .s = pd_keep_scale(p)};
    if ((n & 7) != 0) {
        /* rows do not start on mask bytes: whole-array passes, then the column sums */
        pd_status st = mask != NULL ? pd_dropout_backward_f32(dy, mask, dz, total, p) : PD_OK;
        if (st == PD_OK && mask == NULL && dz != dy) {
            memcpy(dz, dy, (size_t)total * sizeof(float));
        }
        if (st == PD_OK && act) {
            st = pd_relu_backward_f32(dz, y, dz, total);
        }
        for (int64_t i = 0; st == PD_OK && db != NULL && i < m; i++) {
            for (int64_t c = 0; c < n; c++) {
                db[c] += dz[i * n + c];
            }
        }
        return st;
    }
    int32_t tasks = pd_get_num_threads();
    int64_t by_size = total / 65536; /* below ~64K elements a second thread does not pay */
    if (by_size < tasks) {
        tasks = by_size < 1 ? 1 : (int32_t)by_size;
    }
    if (tasks > n / 8) {
        tasks = (int32_t)(n / 8);
    }
    pd_status st = pd_parallel(tasks, bwd_task, &j);
    if (st == PD_ERR_THREAD) {
        bwd_task(&j, 0, 1);
        st = PD_OK;
    }
    return st;
}

pd_status pd_linear_backward_f32(const float *dy, const uint8_t *mask, const float *y, float *dz,
                                 float *db, int32_t db_accumulate, int64_t m, int64_t n,
                                 int32_t act, float p, const pd_sgemm_args *gw,
                                 const pd_sgemm_args *gx) {
    pd_status st = bwd_check(dy, mask, y, dz, db, m, n, act, p);
    if (st != PD_OK) {
        return st;
    }
    if (db_accumulate != 0 && db_accumulate != 1) {
        return PD_ERR_ARG;
    }
    /* Both GEMMs are checked before the elementwise part writes anything, on copies
     * of the caller's arguments (what is checked is what runs). */
    pd_sgemm_args c0, c1;
    const pd_sgemm_args *g0 = NULL, *g1 = NULL;
    if (gw != NULL || gx != NULL) {
        c0 = gw != NULL ? *gw : *gx;
        g0 = &c0;
    }
    if (gw != NULL && gx != NULL) {
        c1 = *gx;
        g1 = &c1;
    }
    if (g0 != NULL) {
        st = pd_sgemm_pair_check(g0, g1);
        if (st == PD_OK && (gemm_clashes(g0, dy, mask, y, dz, db, m, n, act) ||
                            (g1 != NULL && gemm_clashes(g1, dy, mask, y, dz, db, m, n, act)))) {
            st = PD_ERR_ARG;
        }
        if (st != PD_OK) {
            return st;
        }
    }
    if (db != NULL && !db_accumulate && n > 0) {
        memset(db, 0, (size_t)n * sizeof(float));
    }
    st = bwd_run(dy, mask, y, dz, db, m, n, act, p);
    if (st != PD_OK || g0 == NULL) {
        return st;
    }
    if (g1 != NULL) {
        return pd_sgemm_pair(g0, g1);
    }
    return pd_sgemm(g0->trans_a, g0->trans_b, g0->m, g0->n, g0->k, g0->alpha, g0->a, g0->lda,
                    g0->b, g0->ldb, g0->beta, g0->c, g0->ldc);
}
