/* Forward/backward pairs of the element-wise and per-row ops of the Phi-3 trainer: RMSNorm,
 * RoPE (with LongRoPE factors, the math of src/model/rope.c), SwiGLU on the fused gate|up rows,
 * cross-entropy and the embedding lookup. Parallel over rows through pf_compute_parallel. */
#include <math.h>
#include <string.h>

#include "train/train_internal.h"

/* ---- RMSNorm -------------------------------------------------------------------------------- */

typedef struct norm_job {
    const float *x, *g, *rstd, *dy;
    float *y, *r, *dx;
    int64_t dim;
    float eps;
} norm_job;

static void rmsnorm_fwd_rows(void *arg, int64_t t0, int64_t t1) {
    const norm_job *j = arg;
    for (int64_t t = t0; t < t1; t++) {
        const float *x = j->x + t * j->dim;
        float *y = j->y + t * j->dim;
        double ss = 0.0;
        for (int64_t i = 0; i < j->dim; i++) ss += (double)x[i] * x[i];
        const float r = (float)(1.0 / sqrt(ss / (double)j->dim + (double)j->eps));
        j->r[t] = r;
        for (int64_t i = 0; i < j->dim; i++) y[i] = x[i] * r * j->g[i];
    }
}

void pf_train_rmsnorm_fwd(pf_compute *c, const float *x, const float *g, int64_t n, int64_t dim, float eps, float *y,
                          float *rstd) {
    norm_job job = {.x = x, .g = g, .y = y, .r = rstd, .dim = dim, .eps = eps};
    pf_compute_parallel(c, n, 8, rmsnorm_fwd_rows, &job);
}

/* y_i = x_i r g_i with r = (Σx²/D + eps)^-½, so ∂r/∂x_k = −r³ x_k / D and
 * dx_k = r g_k dy_k − (r³/D) x_k Σ_i dy_i g_i x_i. */
static void rmsnorm_bwd_rows(void *arg, int64_t t0, int64_t t1) {
    const norm_job *j = arg;
    for (int64_t t = t0; t < t1; t++) {
        const float *x = j->x + t * j->dim, *dy = j->dy + t * j->dim;
        float *dx = j->dx + t * j->dim;
        const float r = j->rstd[t];
        double dot = 0.0;
        for (int64_t i = 0; i < j->dim; i++) dot += (double)dy[i] * j->g[i] * x[i];
        const float k = (float)(dot * (double)r * r * r / (double)j->dim);
        for (int64_t i = 0; i < j->dim; i++) dx[i] += r * j->g[i] * dy[i] - k * x[i];
    }
}

void pf_train_rmsnorm_bwd(pf_compute *c, const float *x, const float *g, const float *rstd, const float *dy, int64_t n,
                          int64_t dim, float *dx, float *dg) {
    norm_job job = {.x = x, .g = g, .rstd = rstd, .dy = dy, .dx = dx, .dim = dim};
    pf_compute_parallel(c, n, 8, rmsnorm_bwd_rows, &job);
    if (dg == NULL) return; /* norm weights are trained only in full fine-tuning */
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < dim; i++) dg[i] += dy[t * dim + i] * x[t * dim + i] * rstd[t];
}

/* ---- RoPE ----------------------------------------------------------------------------------- */

void pf_train_rope_table(const pf_model_hparams *hp, const float *ff, int64_t n_pos, float *table) {
    const int64_t half = hp->n_rot / 2;
    const double m = hp->rope_attn_factor;
    for (int64_t p = 0; p < n_pos; p++) {
        float *cs = table + p * 2 * half, *sn = cs + half;
        for (int64_t i = 0; i < half; i++) {
            double f = pow((double)hp->rope_theta, -2.0 * (double)i / (double)hp->n_rot);
            if (ff) f /= (double)ff[i];
            const double a = (double)p * f;
            cs[i] = (float)(m * cos(a));
            sn[i] = (float)(m * sin(a));
        }
    }
}

typedef struct rope_job {
    const pf_model_hparams *hp;
    const float *table;
    const int32_t *pos;
    float *qkv;
    int64_t stride;
    bool backward;
} rope_job;

static void rope_rows(void *arg, int64_t t0, int64_t t1) {
    const rope_job *j = arg;
    const int64_t d = j->hp->head_dim, half = j->hp->n_rot / 2, n_heads = j->hp->n_head + j->hp->n_head_kv;
    const float sign = j->backward ? -1.0f : 1.0f; /* the transpose of a rotation by a is one by −a */
    for (int64_t t = t0; t < t1; t++) {
        const float *cs = j->table + (int64_t)j->pos[t] * 2 * half, *sn = cs + half;
        float *row = j->qkv + t * j->stride;
        for (int64_t h = 0; h < n_heads; h++) {
            float *x0 = row + h * d, *x1 = x0 + half;
            for (int64_t i = 0; i < half; i++) {
                const float a = x0[i], b = x1[i], s = sign * sn[i];
                x0[i] = a * cs[i] - b * s;
                x1[i] = b * cs[i] + a * s;
            }
        }
    }
}

void pf_train_rope(pf_compute *c, const pf_model_hparams *hp, const float *table, const int32_t *pos, int64_t n,
                   float *qkv, int64_t stride, bool backward) {
    rope_job job = {hp, table, pos, qkv, stride, backward};
    pf_compute_parallel(c, n, 16, rope_rows, &job);
}

/* ---- SwiGLU --------------------------------------------------------------------------------- */

typedef struct swiglu_job {
    const float *gu, *dact;
    float *act, *dgu;
    int64_t n_ff;
} swiglu_job;

static inline float sigmoidf(float g) { return 1.0f / (1.0f + expf(-g)); }

static void swiglu_fwd_rows(void *arg, int64_t t0, int64_t t1) {
    const swiglu_job *j = arg;
    for (int64_t t = t0; t < t1; t++) {
        const float *g = j->gu + t * 2 * j->n_ff, *u = g + j->n_ff;
        float *a = j->act + t * j->n_ff;
        for (int64_t i = 0; i < j->n_ff; i++) a[i] = g[i] * sigmoidf(g[i]) * u[i];
    }
}

static void swiglu_bwd_rows(void *arg, int64_t t0, int64_t t1) {
    const swiglu_job *j = arg;
    for (int64_t t = t0; t < t1; t++) {
        const float *g = j->gu + t * 2 * j->n_ff, *u = g + j->n_ff, *da = j->dact + t * j->n_ff;
        float *dg = j->dgu + t * 2 * j->n_ff, *du = dg + j->n_ff;
        for (int64_t i = 0; i < j->n_ff; i++) {
            const float s = sigmoidf(g[i]);
            dg[i] = da[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
            du[i] = da[i] * g[i] * s;
        }
    }
}

void pf_train_swiglu_fwd(pf_compute *c, const float *gu, int64_t n, int64_t n_ff, float *act) {
    swiglu_job job = {.gu = gu, .act = act, .n_ff = n_ff};
    pf_compute_parallel(c, n, 4, swiglu_fwd_rows, &job);
}

void pf_train_swiglu_bwd(pf_compute *c, const float *gu, const float *dact, int64_t n, int64_t n_ff, float *dgu) {
    swiglu_job job = {.gu = gu, .dact = dact, .dgu = dgu, .n_ff = n_ff};
    pf_compute_parallel(c, n, 4, swiglu_bwd_rows, &job);
}

/* ---- cross-entropy -------------------------------------------------------------------------- */

typedef struct xent_job {
    float *logits;
    const int32_t *targets;
    double *loss;
    int64_t n_vocab;
    float scale;
} xent_job;

/* loss_t = lse(l_t) − l_t[y]; dl = (softmax(l_t) − onehot(y))·scale, in place. */
static void xent_rows(void *arg, int64_t t0, int64_t t1) {
    const xent_job *j = arg;
    for (int64_t t = t0; t < t1; t++) {
        float *l = j->logits + t * j->n_vocab;
        float mx = l[0];
        for (int64_t i = 1; i < j->n_vocab; i++) mx = l[i] > mx ? l[i] : mx;
        const int32_t y = j->targets[t];
        const float ly = l[y];
        /* e^(l − max) in float (≤ 1, no overflow), stored in place (one exp per logit), summed in double */
        double sum = 0.0;
        for (int64_t i = 0; i < j->n_vocab; i++) {
            const float e = expf(l[i] - mx);
            l[i] = e;
            sum += e;
        }
        const double lse = (double)mx + log(sum);
        j->loss[t] = lse - (double)ly;
        const float inv = (float)(1.0 / sum) * j->scale; /* softmax = e^(l − max) / sum */
        for (int64_t i = 0; i < j->n_vocab; i++) l[i] *= inv;
        l[y] -= j->scale;
    }
}

double pf_train_xent(pf_compute *c, float *logits, const int32_t *targets, int64_t n, int64_t n_vocab, float scale) {
    /* rows in chunks of 64 whose losses are summed in row order, so the total is deterministic */
    double total = 0.0;
    double loss[64];
    for (int64_t t0 = 0; t0 < n; t0 += 64) {
        const int64_t m = n - t0 < 64 ? n - t0 : 64;
        xent_job job = {logits + t0 * n_vocab, targets + t0, loss, n_vocab, scale};
        pf_compute_parallel(c, m, 2, xent_rows, &job);
        for (int64_t t = 0; t < m; t++) total += loss[t];
    }
    return total;
}

/* ---- embedding ------------------------------------------------------------------------------ */

void pf_train_embed_fwd(const pf_compute *c, const pf_tensor_info *e, const int32_t *ids, int64_t n, int64_t dim,
                        float *x) {
    const size_t row = pf_row_size(e->type, dim);
    const pf_kernels *k = pf_compute_kernels(c);
    pf_to_float_fn conv = k->to_float[e->type] ? k->to_float[e->type] : pf_type_get(e->type)->to_float;
    for (int64_t t = 0; t < n; t++) conv((const uint8_t *)e->data + (size_t)ids[t] * row, x + t * dim, dim);
}
