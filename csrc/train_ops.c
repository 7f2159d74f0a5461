/* Training-step kernels outside the layers: softmax cross-entropy, the SGD update
 * and the row gather that batches the data. One path for every ISA: the loops are
 * short and GCC vectorizes them at the baseline flags, and without FMA contraction
 * (-std=c11) every product and sum rounds as NumPy's float32 ones do. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "internal.h"

/* Elements per extra thread below which a hand-off to the pool costs more than it
 * saves. The SGD step streams 12-20 bytes per element; the gather copies whole rows
 * and stalls on a cache miss at the start of each one, so it pays from less work. */
#define PD_PAR_SGD 32768
#define PD_PAR_GATHER 16384
/* Rows of logits per softmax block: their maxima stay on the stack, and the
 * block's exponentials run as one flat (vectorized) loop. */
#define PD_XENT_ROWS 64
/* Rows ahead of the copy whose first two cache lines the gather requests (about a
 * fifth off a 256 x 784 batch from a 188 MB array, one thread). */
#define PD_GATHER_AHEAD 4

/* Whether every a[i], i < n, is in [0, bound). The kernels still test each index
 * where they use it: another thread of the caller may change one after this pass. */
static int all_below(const int64_t *a, int64_t n, int64_t bound) {
    for (int64_t i = 0; i < n; i++) {
        if (a[i] < 0 || a[i] >= bound) {
            return 0;
        }
    }
    return 1;
}

/* --- softmax cross-entropy ------------------------------------------------------ */

static inline float bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t float_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* exp(x) in float32 within 1 ulp (faithfully rounded; measured over every 61st
 * float in [-104, 88.72]), subnormal results and overflow to inf included, NaN in
 * -> NaN out. Our own rather than libm's expf: it inlines into a loop GCC
 * vectorizes, gives the same bits on every platform, and links no libm symbol
 * (glibc 2.27 gave expf a new version, which would lift the wheel's manylinux tag).
 * Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2, e^r from a degree-7 polynomial. */
static inline float exp_f32(float x) {
    /* Below -104 the result is 0 (as float32), above 89 inf; the clamp keeps n
     * small enough for the exponent arithmetic. NaN fails both tests and stays.
     * Written as bit selects because GCC leaves `x < lo ? lo : x` as a branch
     * (it must keep NaN) and then does not vectorize the loop. */
    uint32_t below = 0u - (uint32_t)(x < -104.0f), above = 0u - (uint32_t)(x > 89.0f);
    uint32_t xb = float_to_bits(x);
    xb = (xb & ~below) | (float_to_bits(-104.0f) & below);
    xb = (xb & ~above) | (float_to_bits(89.0f) & above);
    x = bits_to_float(xb);
    /* n = round(x / ln2): adding 1.5 * 2^23 rounds to an integer held in the low
     * mantissa bits, so n is read from the bits without a float -> int conversion
     * (which would be undefined for NaN). */
    const float shift = 12582912.0f;
    float t = x * 1.44269504088896341f + shift;
    float nf = t - shift;
    int32_t n = (int32_t)(float_to_bits(t) - float_to_bits(shift));
    /* r = x - n ln2, with ln2 split in two (Cody-Waite) so n * hi is exact. */
    float r = x - nf * 0.693359375f;
    r = r - nf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    /* p * 2^n as p * 2^n1 * 2^n2, each factor a normal float for n in [-150, 128]:
     * the first product is exact, the second rounds once (to a subnormal or inf
     * where the result is one). */
    int32_t n1 = n / 2, n2 = n - n1;
    return p * bits_to_float((uint32_t)(n1 + 127) << 23) *
           bits_to_float((uint32_t)(n2 + 127) << 23);
}

/* log(s) in double for s >= 1 (a softmax row sum), within a few ulp of double;
 * NaN and inf are returned as they are. Ours for the same reasons as exp_f32 (log
 * got a new glibc version in 2.29). s = 2^e f with f in [sqrt(1/2), sqrt(2)), and
 * log f = 2 atanh(u), u = (f - 1) / (f + 1), |u| <= 0.1716, from its series. */
static double log_ge1(double s) {
    if (!isfinite(s)) {
        return s;
    }
    uint64_t b;
    memcpy(&b, &s, sizeof b);
    int64_t e = (int64_t)(b >> 52) - 1023;
    b = (b & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    double f;
    memcpy(&f, &b, sizeof f);
    if (f > 1.4142135623730951) {
        f *= 0.5;
        e += 1;
    }
    double u = (f - 1.0) / (f + 1.0), u2 = u * u;
    /* 1 + u^2/3 + u^4/5 + ... + u^16/17; the first term left out is below 1e-15. */
    double series = 1.0 / 17;
    series = series * u2 + 1.0 / 15;
    series = series * u2 + 1.0 / 13;
    series = series * u2 + 1.0 / 11;
    series = series * u2 + 1.0 / 9;
    series = series * u2 + 1.0 / 7;
    series = series * u2 + 1.0 / 5;
    series = series * u2 + 1.0 / 3;
    series = series * u2 + 1.0;
    return (double)e * 0.6931471805599453 + 2.0 * u * series;
}

pd_status pd_softmax_xent_f32(const float *z, const int64_t *y, float *p, int64_t n, int64_t c,
                              double *loss) {
    if (n < 0 || c < 0 || n > PD_MAX_ELEMS || pd_elems(n, c) < 0 || loss == NULL) {
        return PD_ERR_ARG;
    }
    if (n == 0) {
        *loss = 0.0;
        return PD_OK;
    }
    size_t nbytes = (size_t)(n * c) * sizeof(float);
    if (z == NULL || y == NULL || p == NULL || pd_overlaps(p, nbytes, z, nbytes) ||
        pd_overlaps(p, nbytes, y, (size_t)n * sizeof(int64_t)) || !all_below(y, n, c)) {
        return PD_ERR_ARG;
    }
    /* The rows run on the calling thread: a batch's logits are a few thousand
     * elements, well below what a hand-off to the pool costs. */
    double total = 0.0;
    float m[PD_XENT_ROWS];
    for (int64_t r0 = 0; r0 < n; r0 += PD_XENT_ROWS) {
        int64_t rows = n - r0 < PD_XENT_ROWS ? n - r0 : PD_XENT_ROWS;
        const float *restrict zb = z + r0 * c;
        float *restrict pb = p + r0 * c;
        for (int64_t i = 0; i < rows; i++) {
            /* A NaN logit is skipped here but still turns its row to NaN below. */
            float mi = zb[i * c];
            for (int64_t j = 1; j < c; j++) {
                mi = zb[i * c + j] > mi ? zb[i * c + j] : mi;
            }
            m[i] = mi;
            for (int64_t j = 0; j < c; j++) {
                pb[i * c + j] = zb[i * c + j] - mi;
            }
        }
        for (int64_t k = 0; k < rows * c; k++) {
            pb[k] = exp_f32(pb[k]);
        }
        for (int64_t i = 0; i < rows; i++) {
            float *row = pb + i * c;
            float s = 0.0f;
            for (int64_t j = 0; j < c; j++) {
                s += row[j];
            }
            for (int64_t j = 0; j < c; j++) {
                row[j] /= s;
            }
            /* m - z_y first, in double: huge logits cancel before the log term
             * is added, which m + log(s) would absorb (logits (1e30, 1e30) with
             * either label give log 2, not 0). */
            const int64_t yi = y[r0 + i]; /* read once, tested where used (all_below) */
            if ((uint64_t)yi >= (uint64_t)c) {
                return PD_ERR_ARG;
            }
            total += ((double)m[i] - (double)zb[i * c + yi]) + log_ge1((double)s);
        }
    }
    *loss = total;
    return PD_OK;
}

pd_status pd_softmax_xent_backward_f32(float *p, const int64_t *y, int64_t n, int64_t c) {
    if (n < 0 || c < 0 || n > PD_MAX_ELEMS || pd_elems(n, c) < 0) {
        return PD_ERR_ARG;
    }
    if (n == 0) {
        return PD_OK;
    }
    if (p == NULL || y == NULL ||
        pd_overlaps(p, (size_t)(n * c) * sizeof(float), y, (size_t)n * sizeof(int64_t)) ||
        !all_below(y, n, c)) {
        return PD_ERR_ARG;
    }
    for (int64_t i = 0; i < n; i++) {
        const int64_t yi = y[i]; /* read once, tested where used (all_below) */
        if ((uint64_t)yi >= (uint64_t)c) {
            return PD_ERR_ARG;
        }
        p[i * c + yi] -= 1.0f;
    }
    const float scale = (float)(1.0 / (double)n);
    for (int64_t k = 0; k < n * c; k++) {
        p[k] *= scale;
    }
    return PD_OK;
}

/* --- SGD ---------------------------------------------------------------------------- */

/* Elements [lo, hi) of one parameter. */
static void sgd_range(float *restrict w, const float *restrict g, float *restrict v, int64_t lo,
                      int64_t hi, float lr, float mu, float wd) {
    /* One loop per case, so each inner loop is branch-free and vectorizes. */
    if (wd != 0.0f && mu != 0.0f) {
        for (int64_t i = lo; i < hi; i++) {
            float d = w[i] * wd + g[i];
            v[i] = v[i] * mu + d;
            w[i] = w[i] - lr * v[i];
        }
    } else if (mu != 0.0f) {
        for (int64_t i = lo; i < hi; i++) {
            v[i] = v[i] * mu + g[i];
            w[i] = w[i] - lr * v[i];
        }
    } else if (wd != 0.0f) {
        for (int64_t i = lo; i < hi; i++) {
            w[i] = w[i] - lr * (w[i] * wd + g[i]);
        }
    } else {
        for (int64_t i = lo; i < hi; i++) {
            w[i] = w[i] - lr * g[i];
        }
    }
}

typedef struct {
    float *const *w;
    const float *const *g;
    float *const *v;
    const int64_t *n;
    int32_t count;
    int64_t total;
    float lr, momentum, weight_decay;
} sgd_job;

/* A contiguous share of all the parameters' elements, laid end to end. */
static void sgd_task(void *arg, int32_t t, int32_t tasks) {
    const sgd_job *j = arg;
    int64_t lo, hi;
    pd_task_range(j->total, 16, t, tasks, &lo, &hi);
    int64_t base = 0;
    for (int32_t p = 0; p < j->count && base < hi; base += j->n[p], p++) {
        int64_t a = lo > base ? lo - base : 0, b = hi - base < j->n[p] ? hi - base : j->n[p];
        if (a < b) {
            float *v = j->momentum != 0.0f ? j->v[p] : NULL; /* (v may be NULL then) */
            sgd_range(j->w[p], j->g[p], v, a, b, j->lr, j->momentum, j->weight_decay);
        }
    }
}

/* Whether any array written for parameter p (w, and v with momentum) overlaps an
 * array of parameter q (p != q), or of p itself (w, g, v pairwise). */
static int sgd_clash(float *const *w, const float *const *g, float *const *v, const int64_t *n,
                     int32_t p, int32_t q, int use_v) {
    size_t bp = (size_t)n[p] * sizeof(float), bq = (size_t)n[q] * sizeof(float);
    if (p == q) {
        return pd_overlaps(w[p], bp, g[p], bp) ||
               (use_v && (pd_overlaps(v[p], bp, w[p], bp) || pd_overlaps(v[p], bp, g[p], bp)));
    }
    return pd_overlaps(w[p], bp, w[q], bq) || pd_overlaps(w[p], bp, g[q], bq) ||
           (use_v && (pd_overlaps(w[p], bp, v[q], bq) || pd_overlaps(v[p], bp, w[q], bq) ||
                      pd_overlaps(v[p], bp, g[q], bq) || pd_overlaps(v[p], bp, v[q], bq)));
}

pd_status pd_sgd_step_multi_f32(float *const *w, const float *const *g, float *const *v,
                                const int64_t *n, int32_t count, float lr, float momentum,
                                float weight_decay) {
    int use_v = momentum != 0.0f;
    if (count < 0 || (count > 0 && (w == NULL || g == NULL || (use_v && v == NULL) || n == NULL))) {
        return PD_ERR_ARG;
    }
    int64_t total = 0;
    for (int32_t p = 0; p < count; p++) {
        if (n[p] < 0 || n[p] > ((int64_t)1 << 60) - total) {
            return PD_ERR_ARG;
        }
        total += n[p];
        if (n[p] > 0 && (w[p] == NULL || g[p] == NULL || (use_v && v[p] == NULL))) {
            return PD_ERR_ARG;
        }
    }
    for (int32_t p = 0; p < count; p++) {
        for (int32_t q = 0; q < count; q++) {
            if (n[p] > 0 && n[q] > 0 && sgd_clash(w, g, v, n, p, q, use_v)) {
                return PD_ERR_ARG;
            }
        }
    }
    if (total == 0) {
        return PD_OK;
    }
    sgd_job j = {.w = w, .g = g, .v = v, .n = n, .count = count, .total = total, .lr = lr,
                 .momentum = momentum, .weight_decay = weight_decay};
    return pd_parallel(pd_tasks_for(total, PD_PAR_SGD), sgd_task, &j);
}

pd_status pd_sgd_step_f32(float *w, const float *g, float *v, int64_t n, float lr, float momentum,
                          float weight_decay) {
    return pd_sgd_step_multi_f32(&w, &g, &v, &n, 1, lr, momentum, weight_decay);
}

/* --- row gather --------------------------------------------------------------------- */

typedef struct {
    const float *src;
    int64_t src_rows, cols;
    const int64_t *idx;
    int64_t n;
    float *dst;
    _Atomic int bad; /* an index left [0, src_rows) after all_below (see there) */
} gather_job;

static void gather_task(void *arg, int32_t t, int32_t tasks) {
    const gather_job *j = arg;
    int64_t lo, hi;
    pd_task_range(j->n, 1, t, tasks, &lo, &hi);
    size_t row_bytes = (size_t)j->cols * sizeof(float);
    const uint64_t rows = (uint64_t)j->src_rows;
    for (int64_t i = lo; i < hi; i++) {
        /* The rows are scattered, so the hardware prefetcher only joins once a row
         * is under way; requesting the start of a row a few ahead hides that miss. */
        if (i + PD_GATHER_AHEAD < hi) {
            const int64_t ra = j->idx[i + PD_GATHER_AHEAD];
            if ((uint64_t)ra < rows) {
                __builtin_prefetch(j->src + ra * j->cols, 0, 0);
                __builtin_prefetch(j->src + ra * j->cols + 16, 0, 0);
            }
        }
        const int64_t r = j->idx[i]; /* read once, tested where used (all_below) */
        if ((uint64_t)r >= rows) {
            atomic_store_explicit(&j->bad, 1, memory_order_relaxed);
            continue;
        }
        memcpy(j->dst + i * j->cols, j->src + r * j->cols, row_bytes);
    }
}

pd_status pd_take_rows_f32(const float *src, int64_t src_rows, int64_t cols, const int64_t *idx,
                           int64_t n, float *dst) {
    if (src_rows < 0 || cols < 0 || n < 0 || n > PD_MAX_ELEMS || pd_elems(src_rows, cols) < 0 ||
        pd_elems(n, cols) < 0) {
        return PD_ERR_ARG;
    }
    if (n == 0) {
        return PD_OK;
    }
    if (idx == NULL || !all_below(idx, n, src_rows)) {
        return PD_ERR_ARG;
    }
    if (cols == 0) {
        return PD_OK;
    }
    size_t dst_bytes = (size_t)(n * cols) * sizeof(float);
    if (src == NULL || dst == NULL ||
        pd_overlaps(dst, dst_bytes, src, (size_t)(src_rows * cols) * sizeof(float)) ||
        pd_overlaps(dst, dst_bytes, idx, (size_t)n * sizeof(int64_t))) {
        return PD_ERR_ARG;
    }
    gather_job j = {.src = src, .src_rows = src_rows, .cols = cols, .idx = idx, .n = n, .dst = dst};
    atomic_init(&j.bad, 0);
    pd_status st = pd_parallel(pd_tasks_for(n * cols, PD_PAR_GATHER), gather_task, &j);
    return st != PD_OK ? st : atomic_load(&j.bad) ? PD_ERR_ARG : PD_OK;
}
