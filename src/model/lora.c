/* LoRA adapters in llama.cpp's GGUF format, applied at inference: for every adapted linear
 * layer y = W x + Σ s · B (A x), s = user_scale · alpha / r (user_scale when alpha is 0).
 *   <base>.lora_a: ne [n_in, r]   used as an r × n_in weight      (u = x · Aᵀ)
 *   <base>.lora_b: ne [r, n_out]  used as an n_out × r weight     (y += s · u · Bᵀ)
 * Tensors stay in the adapter's mapping unless pf_matmul cannot take them as they are (rows
 * that are not whole blocks of the activation format), in which case they are dequantized to
 * f32 at load. The context's adapter buffers are allocated by pf_context_set_lora. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/model_internal.h"

/* One adapted linear: the base weight's slot and both halves of the adapter. */
typedef struct lora_pair {
    const void *a, *b;   /* NULL when this slot is not adapted */
    pf_type a_type, b_type;
    int64_t r;
    float factor;        /* alpha / r, or 1 when alpha is 0    */
} lora_pair;

struct pf_lora {
    const pf_model *m;
    pf_gguf *g;
    float alpha;
    int64_t n_slots;     /* 4 per layer (qkv, o, up, down) + output */
    int64_t n_adapted;
    int64_t max_r, max_out;
    lora_pair *slots;
    void **owned;        /* dequantized copies */
    int64_t n_owned;
};

/* ---- slots -------------------------------------------------------------------------------- */

static int64_t n_slots(const pf_model *m) { return m->hp.n_layer * 4 + 1; }

static const pf_linear *slot_linear(const pf_model *m, int64_t s) {
    if (s == m->hp.n_layer * 4) return &m->output;
    const pf_layer *L = &m->layers[s / 4];
    switch (s % 4) {
    case 0: return &L->qkv;
    case 1: return &L->o;
    case 2: return &L->up;
    default: return &L->down;
    }
}

/* Slot of a linear of the model, -1 if it is none of them. */
static int64_t linear_slot(const pf_model *m, const pf_linear *l) {
    if (l == &m->output) return m->hp.n_layer * 4;
    const uintptr_t p = (uintptr_t)l, base = (uintptr_t)m->layers;
    if (p < base || p >= base + (uintptr_t)m->hp.n_layer * sizeof(pf_layer)) return -1;
    const int64_t il = (int64_t)((p - base) / sizeof(pf_layer));
    const pf_layer *L = &m->layers[il];
    const int k = l == &L->qkv ? 0 : l == &L->o ? 1 : l == &L->up ? 2 : l == &L->down ? 3 : -1;
    return k < 0 ? -1 : il * 4 + k;
}

/* Slot of the base weight named `name` (GGUF base name), -1 if the model has no such linear. */
static int64_t slot_by_name(const pf_model *m, const char *name) {
    if (!strcmp(name, "output.weight")) return m->hp.n_layer * 4;
    for (int64_t s = 0; s < m->hp.n_layer * 4; s++)
        if (!strcmp(slot_linear(m, s)->t->name, name)) return s;
    return -1;
}

/* ---- load --------------------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Checks that pf_matmul takes tensor t as a weight; dequantizes it to f32 when its rows are not
 * whole blocks of the activation format. *data / *type receive what to multiply with. */
static int prepare_weight(pf_lora *a, const pf_tensor_info *t, const void **data, pf_type *type, pf_error *err) {
    const pf_type_traits *tr = pf_type_get(t->type);
    if (tr == NULL || !tr->is_weight || tr->to_float == NULL)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "LoRA tensor %s: type %s is not a weight type", t->name,
                            pf_type_name(t->type));
    const pf_type_traits *vt = pf_type_get(tr->vec_dot_type);
    const int64_t vblock = vt ? vt->block_size : 1;
    *data = t->data, *type = t->type;
    if (t->ne[0] % tr->block_size == 0 && t->ne[0] % vblock == 0) return PF_OK;
    if (t->ne[0] % tr->block_size != 0)
        return pf_error_set(err, PF_ERR_FORMAT, "LoRA tensor %s: ne[0] %lld is not whole %s blocks", t->name,
                            (long long)t->ne[0], tr->name);
    const int64_t ne = t->ne[0] * t->ne[1];
    float *f = malloc((size_t)ne * sizeof *f);
    void **o = realloc(a->owned, (size_t)(a->n_owned + 1) * sizeof *o);
    if (o) a->owned = o;
    if (f == NULL || o == NULL) {
        free(f);
        return pf_error_set(err, PF_ERR_NOMEM, "LoRA tensor %s: out of memory", t->name);
    }
    a->owned[a->n_owned++] = f;
    tr->to_float(t->data, f, ne);
    *data = f, *type = PF_TYPE_F32;
    return PF_OK;
}

/* Reads metadata and pairs every tensor of the adapter with its base weight. */
static int load_tensors(pf_lora *a, pf_error *err) {
    const pf_model *m = a->m;
    const pf_gguf *g = a->g;
    const char *s = NULL, *model_arch = NULL;
    if (pf_gguf_get_str(g, "general.type", &s, NULL) != PF_OK || strcmp(s, "adapter") != 0)
        return pf_error_set(err, PF_ERR_FORMAT, "LoRA: general.type is '%s', expected 'adapter'", s ? s : "(absent)");
    s = NULL;
    if (pf_gguf_get_str(g, "adapter.type", &s, NULL) != PF_OK || strcmp(s, "lora") != 0)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "LoRA: adapter.type is '%s', expected 'lora'", s ? s : "(absent)");
    s = NULL;
    if (pf_gguf_get_str(g, "general.architecture", &s, NULL) != PF_OK)
        return pf_error_set(err, PF_ERR_FORMAT, "LoRA: missing key 'general.architecture'");
    if (pf_gguf_get_str(m->g, "general.architecture", &model_arch, NULL) != PF_OK) model_arch = "phi3";
    if (strcmp(s, model_arch) != 0)
        return pf_error_set(err, PF_ERR_ARG, "LoRA: model arch and LoRA arch mismatch: general.architecture is '%s', "
                            "the model's is '%s'", s, model_arch);
    double alpha = 0;
    int rc = pf_gguf_get_float(g, "adapter.lora.alpha", &alpha, err);
    if (rc == PF_ERR_NOT_FOUND) alpha = 0;
    else if (rc != PF_OK) return rc;
    a->alpha = (float)alpha;

    for (int64_t i = 0; i < pf_gguf_n_tensors(g); i++) {
        const pf_tensor_info *t = pf_gguf_tensor(g, i);
        const bool is_a = ends_with(t->name, ".lora_a"), is_b = ends_with(t->name, ".lora_b");
        if (ends_with(t->name, "_norm.weight")) continue;
        if (!is_a && !is_b)
            return pf_error_set(err, PF_ERR_FORMAT, "LoRA tensor %s: name ends neither in .lora_a nor .lora_b", t->name);
        char base[256];
        const size_t len = strlen(t->name) - 7;
        if (len >= sizeof base) return pf_error_set(err, PF_ERR_FORMAT, "LoRA tensor %s: name too long", t->name);
        memcpy(base, t->name, len);
        base[len] = 0;
        if (!is_a) { /* pairs are formed from the lora_a side; a lone lora_b is caught here */
            char other[264];
            snprintf(other, sizeof other, "%s.lora_a", base);
            if (pf_gguf_find_tensor(g, other) < 0)
                return pf_error_set(err, PF_ERR_FORMAT, "LoRA tensor %s: its %s is missing", t->name, other);
            continue;
        }
        char bname[264];
        snprintf(bname, sizeof bname, "%s.lora_b", base);
        const int64_t bi = pf_gguf_find_tensor(g, bname);
        if (bi < 0) return pf_error_set(err, PF_ERR_FORMAT, "LoRA tensor %s: its %s is missing", t->name, bname);
        const pf_tensor_info *tb = pf_gguf_tensor(g, bi);
        const int64_t slot = slot_by_name(m, base);
        if (slot < 0)
            return pf_error_set(err, PF_ERR_UNSUPPORTED, "LoRA tensor %s: the model has no linear weight %s", t->name,
                                base);
        const pf_linear *l = slot_linear(m, slot);
        if (t->n_dims > 2 || tb->n_dims > 2 || t->ne[0] != l->n_in || tb->ne[1] != l->n_out || t->ne[1] != tb->ne[0] ||
            t->ne[1] < 1)
            return pf_error_set(err, PF_ERR_FORMAT,
                                "LoRA tensor %s: shapes do not fit: lora_a ne [%lld, %lld], lora_b ne [%lld, %lld], base "
                                "%s ne [%lld, %lld] (need a.ne[0] == base.ne[0], b.ne[1] == base.ne[1], a.ne[1] == "
                                "b.ne[0])",
                                t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)tb->ne[0],
                                (long long)tb->ne[1], l->t->name, (long long)l->n_in, (long long)l->n_out);
        lora_pair *p = &a->slots[slot];
        if (p->a != NULL) return pf_error_set(err, PF_ERR_FORMAT, "LoRA tensor %s: duplicate", t->name);
        if ((rc = prepare_weight(a, t, &p->a, &p->a_type, err)) != PF_OK) return rc;
        if ((rc = prepare_weight(a, tb, &p->b, &p->b_type, err)) != PF_OK) return rc;
        p->r = t->ne[1];
        p->factor = a->alpha != 0.0f ? a->alpha / (float)p->r : 1.0f;
        a->n_adapted++;
        if (p->r > a->max_r) a->max_r = p->r;
        if (l->n_out > a->max_out) a->max_out = l->n_out;
    }
    if (a->n_adapted == 0) return pf_error_set(err, PF_ERR_FORMAT, "LoRA: the adapter holds no lora_a/lora_b pairs");
    return PF_OK;
}

/* An adapter from fp32 weights: each pair's A and B are copied into owned buffers, used as F32
 * matmul weights, with the pair's scale alpha / r (or alpha / sqrt(r) for rsLoRA). */
int pf_lora_from_weights(const pf_lora_weights *w, const pf_model *m, pf_lora **out, pf_error *err) {
    if (w == NULL || m == NULL || out == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_lora_from_weights: NULL argument");
    *out = NULL;
    pf_lora *a = calloc(1, sizeof *a);
    if (a) a->m = m, a->n_slots = n_slots(m), a->alpha = w->alpha;
    if (a) a->slots = calloc((size_t)a->n_slots, sizeof *a->slots);
    if (a) a->owned = calloc((size_t)(2 * w->n + 1), sizeof *a->owned);
    int rc = a && a->slots && a->owned ? PF_OK : pf_error_set(err, PF_ERR_NOMEM, "pf_lora_from_weights: out of memory");
    for (int64_t i = 0; rc == PF_OK && i < w->n; i++) {
        const pf_lora_pair *p = &w->pairs[i];
        const int64_t slot = slot_by_name(m, p->base);
        if (slot < 0) {
            rc = pf_error_set(err, PF_ERR_UNSUPPORTED, "LoRA pair %s: the model has no linear weight of that name", p->base);
            break;
        }
        const pf_linear *l = slot_linear(m, slot);
        if (p->n_in != l->n_in || p->n_out != l->n_out || p->r < 1 || !p->a || !p->b) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "LoRA pair %s: shape %lld -> %lld (r %lld) does not fit the base (%lld -> %lld)",
                              p->base, (long long)p->n_in, (long long)p->n_out, (long long)p->r, (long long)l->n_in,
                              (long long)l->n_out);
            break;
        }
        lora_pair *s = &a->slots[slot];
        if (s->a != NULL) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "LoRA pair %s: duplicate", p->base);
            break;
        }
        const size_t na = (size_t)(p->r * p->n_in), nb = (size_t)(p->n_out * p->r);
        float *ca = malloc(na * sizeof *ca), *cb = malloc(nb * sizeof *cb);
        if (ca) a->owned[a->n_owned++] = ca;
        if (cb) a->owned[a->n_owned++] = cb;
        if (!ca || !cb) {
            rc = pf_error_set(err, PF_ERR_NOMEM, "LoRA pair %s: out of memory", p->base);
            break;
        }
        memcpy(ca, p->a, na * sizeof *ca), memcpy(cb, p->b, nb * sizeof *cb);
        *s = (lora_pair){.a = ca, .b = cb, .a_type = PF_TYPE_F32, .b_type = PF_TYPE_F32, .r = p->r,
                         .factor = pf_lora_pair_scale(w, p)};
        a->n_adapted++;
        if (p->r > a->max_r) a->max_r = p->r;
        if (l->n_out > a->max_out) a->max_out = l->n_out;
    }
    if (rc == PF_OK && a->n_adapted == 0) rc = pf_error_set(err, PF_ERR_FORMAT, "LoRA: the adapter holds no pairs");
    if (rc != PF_OK) {
        pf_lora_free(a);
        return rc;
    }
    *out = a;
    return PF_OK;
}

int pf_lora_load(const char *path, const pf_model *m, pf_lora **out, pf_error *err) {
    if (path == NULL || m == NULL || out == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_lora_load: NULL argument");
    *out = NULL;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) { /* a PEFT directory: read to fp32, then as in memory */
        pf_lora_weights w;
        int rc = pf_lora_read(path, m, &w, err);
        if (rc == PF_OK) rc = pf_lora_from_weights(&w, m, out, err);
        pf_lora_weights_clear(&w);
        return rc;
    }
    pf_lora *a = calloc(1, sizeof *a);
    if (a == NULL) return pf_error_set(err, PF_ERR_NOMEM, "pf_lora_load: out of memory");
    a->m = m;
    a->n_slots = n_slots(m);
    a->slots = calloc((size_t)a->n_slots, sizeof *a->slots);
    int rc = a->slots ? pf_gguf_open(path, &a->g, err) : pf_error_set(err, PF_ERR_NOMEM, "pf_lora_load: out of memory");
    if (rc == PF_OK) rc = load_tensors(a, err);
    if (rc != PF_OK) {
        if (err != NULL && a->g != NULL) { /* prefix the file name */
            char msg[sizeof err->msg];
            memcpy(msg, err->msg, sizeof msg);
            pf_error_set(err, rc, "%s: %s", path, msg);
        }
        pf_lora_free(a);
        return rc;
    }
    *out = a;
    return PF_OK;
}

void pf_lora_free(pf_lora *a) {
    if (a == NULL) return;
    for (int64_t i = 0; i < a->n_owned; i++) free(a->owned[i]);
    free(a->owned);
    free(a->slots);
    pf_gguf_close(a->g);
    free(a);
}

float pf_lora_alpha(const pf_lora *a) { return a ? a->alpha : 0.0f; }
int64_t pf_lora_n_adapted(const pf_lora *a) { return a ? a->n_adapted : 0; }
const pf_gguf *pf_lora_gguf(const pf_lora *a) { return a ? a->g : NULL; }

/* ---- context ------------------------------------------------------------------------------ */

void pf_lora_context_free(pf_context *ctx) {
    free(ctx->lora);
    free(ctx->lora_scale);
    free(ctx->lora_u);
    free(ctx->lora_y);
    ctx->lora = NULL, ctx->lora_scale = NULL, ctx->lora_u = NULL, ctx->lora_y = NULL;
    ctx->n_lora = 0;
}

/* Runs every adapter matmul once at its largest size so that pf_matmul's scratch is grown now
 * rather than in the token loop. */
static int reserve(pf_context *ctx, pf_error *err) {
    const pf_model *m = ctx->m;
    const int64_t rows = ctx->n_batch < PF_LORA_ROWS ? ctx->n_batch : PF_LORA_ROWS;
    for (int i = 0; i < ctx->n_lora; i++) {
        const pf_lora *a = ctx->lora[i];
        for (int64_t s = 0; s < a->n_slots; s++) {
            const lora_pair *p = &a->slots[s];
            if (p->a == NULL) continue;
            const pf_linear *l = slot_linear(m, s);
            const float *x = l->n_in == m->hp.n_embd ? ctx->xb : ctx->act; /* n_batch rows */
            int rc = pf_matmul(ctx->c, p->a, p->a_type, 1, l->n_in, x, ctx->n_batch, ctx->att, err);
            if (rc == PF_OK) {
                memset(ctx->lora_u, 0, (size_t)rows * (size_t)p->r * sizeof(float));
                rc = pf_matmul(ctx->c, p->b, p->b_type, 1, p->r, ctx->lora_u, rows, ctx->lora_y, err);
            }
            if (rc != PF_OK) return rc;
        }
    }
    return PF_OK;
}

int pf_context_set_lora(pf_context *ctx, pf_lora *const *adapters, const float *scales, int n, pf_error *err) {
    if (ctx == NULL || n < 0 || (n > 0 && adapters == NULL))
        return pf_error_set(err, PF_ERR_ARG, "pf_context_set_lora: %s", ctx == NULL ? "NULL context" : "bad adapter list");
    int64_t max_r = 0, max_out = 0;
    for (int i = 0; i < n; i++) {
        const pf_lora *a = adapters[i];
        if (a == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_context_set_lora: adapter %d is NULL", i);
        if (a->m != ctx->m)
            return pf_error_set(err, PF_ERR_ARG, "pf_context_set_lora: adapter %d was loaded for another model", i);
        max_r = a->max_r > max_r ? a->max_r : max_r;
        max_out = a->max_out > max_out ? a->max_out : max_out;
    }
    pf_lora_context_free(ctx);
    if (n == 0) return PF_OK;
    const int64_t rows = ctx->n_batch < PF_LORA_ROWS ? ctx->n_batch : PF_LORA_ROWS;
    ctx->lora = calloc((size_t)n, sizeof *ctx->lora);
    ctx->lora_scale = calloc((size_t)n, sizeof *ctx->lora_scale);
    ctx->lora_u = calloc((size_t)(ctx->n_batch * max_r), sizeof(float));
    ctx->lora_y = calloc((size_t)(rows * max_out), sizeof(float));
    if (!ctx->lora || !ctx->lora_scale || !ctx->lora_u || !ctx->lora_y) {
        pf_lora_context_free(ctx);
        return pf_error_set(err, PF_ERR_NOMEM, "pf_context_set_lora: out of memory");
    }
    for (int i = 0; i < n; i++) {
        ctx->lora[i] = adapters[i];
        ctx->lora_scale[i] = scales ? scales[i] : 1.0f;
    }
    ctx->n_lora = n;
    int rc = reserve(ctx, err);
    if (rc != PF_OK) pf_lora_context_free(ctx);
    return rc;
}

/* ---- forward ------------------------------------------------------------------------------ */

int pf_lora_apply(pf_context *ctx, const pf_linear *l, const float *x, int64_t n, float *y, pf_error *err) {
    const int64_t slot = linear_slot(ctx->m, l);
    if (slot < 0) return PF_OK;
    for (int i = 0; i < ctx->n_lora; i++) {
        const lora_pair *p = &ctx->lora[i]->slots[slot];
        const float s = ctx->lora_scale[i] * p->factor;
        if (p->a == NULL || s == 0.0f) continue;
        int rc = pf_matmul(ctx->c, p->a, p->a_type, p->r, l->n_in, x, n, ctx->lora_u, err); /* u = x · Aᵀ */
        if (rc != PF_OK) return rc;
        for (int64_t t0 = 0; t0 < n; t0 += PF_LORA_ROWS) {
            const int64_t nt = n - t0 < PF_LORA_ROWS ? n - t0 : PF_LORA_ROWS;
            rc = pf_matmul(ctx->c, p->b, p->b_type, l->n_out, p->r, ctx->lora_u + t0 * p->r, nt, ctx->lora_y, err);
            if (rc != PF_OK) return rc;
            float *yr = y + t0 * l->n_out;
            const int64_t len = nt * l->n_out;
            for (int64_t k = 0; k < len; k++) yr[k] += s * ctx->lora_y[k];
        }
    }
    return PF_OK;
}
