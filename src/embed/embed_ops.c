/* The element-wise and row-wise ops of the encoder, one function per op (E = n_embd, rows of a
 * batch are sequence-major: row r = s·len + t is token t of sequence s, t >= n_tok[s] padding).
 * Every matrix product goes through pfe_linear_fwd (pf_matmul); the rest is split over the
 * pool's threads by rows or elements. Nothing here allocates. */
#include <math.h>
#include <string.h>

#include "embed/embed_internal.h"

/* ---- parallel helper ---------------------------------------------------------------------- */

void pfe_parallel(pf_embedder *e, int64_t n, int64_t min_par, pfe_range_fn fn, void *arg) {
    pf_compute_parallel(e->c, n, min_par, fn, arg);
}

/* ---- linear ------------------------------------------------------------------------------- */

/* y[rows × n_out] = x[rows × n_in] · Wᵀ + b (b broadcast over rows, when present). */
int pfe_linear_fwd(pf_embedder *e, const pfe_linear *l, const float *x, int64_t rows, float *y, pf_error *err) {
    int rc = pf_matmul(e->c, l->w, l->type, l->n_out, l->n_in, x, rows, y, err);
    if (rc != PF_OK) {
        if (err) {
            char msg[sizeof err->msg];
            memcpy(msg, err->msg, sizeof msg);
            pf_error_set(err, rc, "embedder: %s: %s", l->t->name, msg);
        }
        return rc;
    }
    if (l->b)
        for (int64_t r = 0; r < rows; r++) {
            float *yr = y + r * l->n_out;
            for (int64_t i = 0; i < l->n_out; i++) yr[i] += l->b[i];
        }
    return PF_OK;
}

/* ---- input embeddings --------------------------------------------------------------------- */

/* x[r] = token_embd[id_r] + token_types[0] + position_embd[t] (the last two when present);
 * padding rows embed id 0 (masked as keys, never pooled). */
void pfe_embed_rows(pf_embedder *e, const pfe_batch *b) {
    const int64_t E = e->hp.n_embd;
    const pf_kernels *k = pf_compute_kernels(e->c);
    const pf_tensor_info *te = e->tok_embd, *pe = e->pos_embd;
    pf_to_float_fn tconv = k->to_float[te->type] ? k->to_float[te->type] : pf_type_get(te->type)->to_float;
    pf_to_float_fn pconv = NULL;
    if (pe) pconv = k->to_float[pe->type] ? k->to_float[pe->type] : pf_type_get(pe->type)->to_float;
    const size_t trow = pf_row_size(te->type, E), prow = pe ? pf_row_size(pe->type, E) : 0;
    float *tmp = e->w.y; /* the sublayer buffer is free before the first layer */
    for (int64_t s = 0; s < b->n_seq; s++)
        for (int64_t t = 0; t < b->len; t++) {
            float *x = e->w.x + (s * b->len + t) * E;
            const int32_t id = t < b->n_tok[s] ? b->ids[s][t] : 0;
            tconv((const uint8_t *)te->data + (size_t)id * trow, x, E);
            if (e->type0)
                for (int64_t i = 0; i < E; i++) x[i] += e->type0[i];
            if (pconv) {
                pconv((const uint8_t *)pe->data + (size_t)t * prow, tmp, E);
                for (int64_t i = 0; i < E; i++) x[i] = tmp[i] + x[i];
            }
        }
}

/* ---- LayerNorm ---------------------------------------------------------------------------- */

typedef struct ln_job {
    float *x;
    const float *res;
    const pfe_norm *nrm;
    int64_t n;
    double eps;
} ln_job;

/* Rows [r0, r1): v = x + res (res optional), x = (v - mean(v)) / sqrt(var(v) + eps) ⊙ w + b,
 * mean and (biased) variance accumulated in double. */
static void ln_rows(void *arg, int64_t r0, int64_t r1) {
    const ln_job *j = arg;
    const int64_t n = j->n;
    for (int64_t r = r0; r < r1; r++) {
        float *x = j->x + r * n;
        if (j->res)
            for (int64_t i = 0; i < n; i++) x[i] += j->res[r * n + i];
        double sum = 0.0, sq = 0.0;
        for (int64_t i = 0; i < n; i++) sum += x[i];
        const double mean = sum / (double)n;
        for (int64_t i = 0; i < n; i++) sq += ((double)x[i] - mean) * ((double)x[i] - mean);
        const float scale = (float)(1.0 / sqrt(sq / (double)n + j->eps)), m = (float)mean;
        for (int64_t i = 0; i < n; i++) x[i] = (x[i] - m) * scale * j->nrm->w[i] + j->nrm->b[i];
    }
}

void pfe_layernorm(pf_embedder *e, float *x, const float *res, const pfe_norm *nrm, int64_t rows) {
    ln_job job = {x, res, nrm, e->hp.n_embd, e->hp.eps};
    pfe_parallel(e, rows, PFE_PAR_WORK / e->hp.n_embd, ln_rows, &job);
}

/* ---- activations -------------------------------------------------------------------------- */

typedef struct act_job {
    float *x;
    const float *g;
} act_job;

/* GELU, tanh form (as llama.cpp's ggml_gelu; it matches the goldens a little better than the
 * erf form of Hugging Face): 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x³), computed
 * as x / (1 + e^(-2u)) (the same function: 0.5 (1 + tanh u) = sigmoid(2u)), one expf. */
static void gelu_range(void *arg, int64_t i0, int64_t i1) {
    float *x = ((act_job *)arg)->x;
    const float c2 = 2.0f * 0.7978845608028654f; /* 2 sqrt(2/pi) */
    for (int64_t i = i0; i < i1; i++) {
        const float v = x[i];
        x[i] = v / (1.0f + expf(-c2 * v * (1.0f + 0.044715f * v * v)));
    }
}

void pfe_gelu(pf_embedder *e, float *x, int64_t n) {
    act_job job = {x, NULL};
    pfe_parallel(e, n, PFE_PAR_WORK / 8, gelu_range, &job);
}

/* SwiGLU: up[i] = up[i] · silu(gate[i]), silu(g) = g / (1 + e^-g) (llama.cpp's nomic-bert
 * graph: build_ffn(..., LLM_FFN_SILU, LLM_FFN_PAR) applies silu to ffn_gate · x). */
static void swiglu_range(void *arg, int64_t i0, int64_t i1) {
    const act_job *j = arg;
    for (int64_t i = i0; i < i1; i++) {
        const float g = j->g[i];
        j->x[i] *= g > -100.0f ? g / (1.0f + expf(-g)) : 0.0f;
    }
}

void pfe_swiglu(pf_embedder *e, float *up, const float *gate, int64_t n) {
    act_job job = {up, gate};
    pfe_parallel(e, n, PFE_PAR_WORK / 8, swiglu_range, &job);
}

/* ---- rotary position embedding (nomic-bert) ----------------------------------------------- */

typedef struct rope_job {
    pf_embedder *e;
    const pfe_batch *b;
} rope_job;

/* NeoX rotation of every Q and K head of rows [r0, r1) at position t = r mod len, over the
 * whole head (h = head_dim / 2):
 *   y[i] = x[i] cos(t θ_i) − x[i+h] sin(t θ_i),  y[i+h] = x[i+h] cos(t θ_i) + x[i] sin(t θ_i),
 *   θ_i = freq_base^(-2i / head_dim). Q | K | V are adjacent in each fused qkv row. */
static void rope_rows(void *arg, int64_t r0, int64_t r1) {
    const rope_job *j = arg;
    const pfe_hparams *hp = &j->e->hp;
    const int64_t d = hp->head_dim, half = d / 2, stride = 3 * hp->n_embd;
    for (int64_t r = r0; r < r1; r++) {
        const float *cs = j->e->w.rope + (r % j->b->len) * d, *sn = cs + half;
        float *row = j->e->w.qkv + r * stride;
        for (int64_t h = 0; h < 2 * hp->n_head; h++) {
            float *x = row + h * d, *x1 = x + half;
            for (int64_t i = 0; i < half; i++) {
                const float a = x[i], c = x1[i];
                x[i] = a * cs[i] - c * sn[i];
                x1[i] = c * cs[i] + a * sn[i];
            }
        }
    }
}

void pfe_rope(pf_embedder *e, const pfe_batch *b) {
    const int64_t half = e->hp.head_dim / 2;
    for (int64_t t = 0; t < b->len; t++) {
        float *cs = e->w.rope + t * 2 * half, *sn = cs + half;
        for (int64_t i = 0; i < half; i++) {
            const double a = (double)t * e->inv_freq[i];
            cs[i] = (float)cos(a);
            sn[i] = (float)sin(a);
        }
    }
    rope_job job = {e, b};
    pfe_parallel(e, b->n_seq * b->len, PFE_PAR_WORK / (2 * e->hp.n_embd), rope_rows, &job);
}

/* ---- pooling ------------------------------------------------------------------------------ */

/* dst[s] = L2-normalized pool of sequence s's real rows: MEAN (1/n Σ_t x_t), CLS (x_0) or
 * LAST (x_{n-1}); a zero vector stays zero. */
void pfe_pool(const pf_embedder *e, const pfe_batch *b, float *const *dst) {
    const int64_t E = e->hp.n_embd;
    for (int64_t s = 0; s < b->n_seq; s++) {
        const float *x = e->w.x + s * b->len * E;
        const int64_t n = b->n_tok[s];
        float *o = dst[s];
        if (e->hp.pooling == PF_POOLING_MEAN) {
            for (int64_t i = 0; i < E; i++) {
                double acc = 0.0;
                for (int64_t t = 0; t < n; t++) acc += x[t * E + i];
                o[i] = (float)(acc / (double)n);
            }
        } else {
            memcpy(o, x + (e->hp.pooling == PF_POOLING_LAST ? n - 1 : 0) * E, (size_t)E * sizeof(float));
        }
        double ss = 0.0;
        for (int64_t i = 0; i < E; i++) ss += (double)o[i] * o[i];
        const float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int64_t i = 0; i < E; i++) o[i] *= inv;
    }
}
