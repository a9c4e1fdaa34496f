/* Phi-3 model loading: hyperparameters from the phi3.* keys, then every tensor looked up by
 * name and checked for presence, type and shape (errors name the key or tensor and what was
 * expected). Weights are views into the GGUF mapping. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"

#define HP_MAX ((int64_t)1 << 24) /* sanity bound on every dimension / count */

/* ---- hyperparameters --------------------------------------------------------------------- */

/* Reads integer key `key` into *out; `def` < 0 makes the key required. Values must lie in
 * [1, HP_MAX]. */
static int hp_int(const pf_gguf *g, const char *key, int64_t def, int64_t *out, pf_error *err) {
    pf_error e = {0};
    int rc = pf_gguf_get_int(g, key, out, &e);
    if (rc == PF_ERR_NOT_FOUND && def >= 0) {
        *out = def;
        return PF_OK;
    }
    if (rc == PF_ERR_NOT_FOUND)
        return pf_error_set(err, PF_ERR_FORMAT, "phi3 model: missing hyperparameter key '%s'", key);
    if (rc != PF_OK) return pf_error_set(err, rc, "phi3 model: hyperparameter '%s': %s", key, e.msg);
    if (*out < 1 || *out > HP_MAX)
        return pf_error_set(err, PF_ERR_FORMAT, "phi3 model: hyperparameter '%s' = %lld is out of range [1, %lld]", key,
                            (long long)*out, (long long)HP_MAX);
    return PF_OK;
}

/* Reads float key `key` into *out, `def` when absent; must be finite and > 0. */
static int hp_float(const pf_gguf *g, const char *key, double def, float *out, bool *present, pf_error *err) {
    pf_error e = {0};
    double v = def;
    int rc = pf_gguf_get_float(g, key, &v, &e);
    if (present) *present = rc == PF_OK;
    if (rc != PF_OK && rc != PF_ERR_NOT_FOUND)
        return pf_error_set(err, rc, "phi3 model: hyperparameter '%s': %s", key, e.msg);
    if (!(v > 0) || !isfinite(v))
        return pf_error_set(err, PF_ERR_FORMAT, "phi3 model: hyperparameter '%s' = %g must be finite and > 0", key, v);
    *out = (float)v;
    return PF_OK;
}

static int load_hparams(const pf_gguf *g, pf_model_hparams *hp, pf_error *err) {
    const char *arch = NULL;
    if (pf_gguf_get_str(g, "general.architecture", &arch, NULL) != PF_OK)
        return pf_error_set(err, PF_ERR_FORMAT, "phi3 model: missing key 'general.architecture'");
    if (strcmp(arch, "phi3") != 0)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "phi3 model: general.architecture is '%s', expected 'phi3'", arch);
    int rc;
    if ((rc = hp_int(g, "phi3.embedding_length", -1, &hp->n_embd, err)) ||
        (rc = hp_int(g, "phi3.feed_forward_length", -1, &hp->n_ff, err)) ||
        (rc = hp_int(g, "phi3.block_count", -1, &hp->n_layer, err)) ||
        (rc = hp_int(g, "phi3.attention.head_count", -1, &hp->n_head, err)) ||
        (rc = hp_int(g, "phi3.context_length", -1, &hp->n_ctx_train, err)) ||
        (rc = hp_int(g, "phi3.attention.head_count_kv", hp->n_head, &hp->n_head_kv, err)))
        return rc;
    if (hp->n_embd % hp->n_head != 0)
        return pf_error_set(err, PF_ERR_FORMAT, "phi3 model: embedding_length %lld is not a multiple of head_count %lld",
                            (long long)hp->n_embd, (long long)hp->n_head);
    if (hp->n_head % hp->n_head_kv != 0)
        return pf_error_set(err, PF_ERR_FORMAT, "phi3 model: head_count %lld is not a multiple of head_count_kv %lld",
                            (long long)hp->n_head, (long long)hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((rc = hp_int(g, "phi3.rope.dimension_count", hp->head_dim, &hp->n_rot, err)) ||
        (rc = hp_int(g, "phi3.rope.scaling.original_context_length", hp->n_ctx_train, &hp->n_ctx_orig, err)))
        return rc;
    if (hp->n_rot % 2 != 0 || hp->n_rot > hp->head_dim)
        return pf_error_set(err, PF_ERR_FORMAT,
                            "phi3 model: rope.dimension_count %lld must be even and at most the head size %lld",
                            (long long)hp->n_rot, (long long)hp->head_dim);
    if ((rc = hp_float(g, "phi3.attention.layer_norm_rms_epsilon", 1e-5, &hp->rms_eps, NULL, err)) ||
        (rc = hp_float(g, "phi3.rope.freq_base", 10000.0, &hp->rope_theta, NULL, err)))
        return rc;
    return PF_OK;
}

/* LongRoPE magnitude factor: the file's attn_factor, else (128k files converted without it)
 * m = sqrt(1 + ln(s) / ln(n_ctx_orig)) with s = n_ctx_train / n_ctx_orig when s > 1, else 1. */
static int rope_attn_factor(const pf_gguf *g, pf_model_hparams *hp, pf_error *err) {
    bool present = false;
    int rc = hp_float(g, "phi3.rope.scaling.attn_factor", 1.0, &hp->rope_attn_factor, &present, err);
    if (rc != PF_OK || present) return rc;
    double s = (double)hp->n_ctx_train / (double)hp->n_ctx_orig;
    if (hp->has_rope_factors && s > 1.0 && hp->n_ctx_orig > 1)
        hp->rope_attn_factor = (float)sqrt(1.0 + log(s) / log((double)hp->n_ctx_orig));
    return PF_OK;
}

/* ---- tensors ------------------------------------------------------------------------------ */

static const pf_tensor_info *find(const pf_gguf *g, const char *name) {
    int64_t i = pf_gguf_find_tensor(g, name);
    return i < 0 ? NULL : pf_gguf_tensor(g, i);
}

static const char *shape_str(const pf_tensor_info *t, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "[");
    for (uint32_t d = 0; d < t->n_dims && n > 0 && (size_t)n < cap; d++)
        n += snprintf(buf + n, cap - (size_t)n, d ? ", %lld" : "%lld", (long long)t->ne[d]);
    if (n > 0 && (size_t)n < cap) snprintf(buf + n, cap - (size_t)n, "]");
    return buf;
}

/* Checks that `t` is a matrix ne = [ne0, ne1] (ne1 < 0: any ne1; ne1 == 0: a vector [ne0]);
 * `what` names the dimensions in the error message. */
static int check_shape(const pf_tensor_info *t, int64_t ne0, int64_t ne1, const char *what, pf_error *err) {
    bool ok;
    if (ne1 == 0) ok = t->n_dims == 1 && t->ne[0] == ne0; /* ne1 == 0 asks for a vector */
    else ok = t->n_dims <= 2 && t->ne[0] == ne0 && (ne1 < 0 || t->ne[1] == ne1);
    if (ok) return PF_OK;
    char b[96];
    if (ne1 == 0)
        return pf_error_set(err, PF_ERR_FORMAT, "phi3 model: tensor '%s' has shape %s, expected [%lld] (%s)", t->name,
                            shape_str(t, b, sizeof b), (long long)ne0, what);
    if (ne1 < 0)
        return pf_error_set(err, PF_ERR_FORMAT, "phi3 model: tensor '%s' has shape %s, expected [%lld, n] (%s)", t->name,
                            shape_str(t, b, sizeof b), (long long)ne0, what);
    return pf_error_set(err, PF_ERR_FORMAT, "phi3 model: tensor '%s' has shape %s, expected [%lld, %lld] (%s)", t->name,
                        shape_str(t, b, sizeof b), (long long)ne0, (long long)ne1, what);
}

static int missing(const char *name, pf_error *err) {
    return pf_error_set(err, PF_ERR_FORMAT, "phi3 model: tensor '%s' is missing", name);
}

/* A weight matrix [n_in, n_out] of any matmul-capable type. */
static int get_linear(const pf_gguf *g, const char *name, int64_t n_in, int64_t n_out, const char *what, pf_linear *l,
                      pf_error *err) {
    const pf_tensor_info *t = find(g, name);
    if (t == NULL) return missing(name, err);
    int rc = check_shape(t, n_in, n_out, what, err);
    if (rc != PF_OK) return rc;
    const pf_type_traits *tr = pf_type_get(t->type);
    if (tr == NULL || !tr->is_weight)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "phi3 model: tensor '%s' has type %s, not a weight type", name,
                            pf_type_name(t->type));
    *l = (pf_linear){.t = t, .w = t->data, .type = t->type, .n_in = t->ne[0], .n_out = t->ne[1]};
    return PF_OK;
}

/* A 1-D F32 vector of n elements (norm weights, rope factors). */
static int get_vec(const pf_gguf *g, const char *name, int64_t n, const char *what, pf_vec *v, pf_error *err) {
    const pf_tensor_info *t = find(g, name);
    if (t == NULL) return missing(name, err);
    int rc = check_shape(t, n, 0, what, err);
    if (rc != PF_OK) return rc;
    if (t->type != PF_TYPE_F32)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "phi3 model: tensor '%s' has type %s, expected F32", name,
                            pf_type_name(t->type));
    *v = (pf_vec){.t = t, .v = t->data, .n = n};
    return PF_OK;
}

static int load_layer(const pf_gguf *g, const pf_model_hparams *hp, int64_t il, pf_layer *L, pf_error *err) {
    const int64_t n_embd = hp->n_embd, n_kv = hp->n_head_kv * hp->head_dim;
    char name[96];
    int rc;
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%lld." suffix, (long long)il), name)
    if ((rc = get_vec(g, NAME("attn_norm.weight"), n_embd, "n_embd", &L->attn_norm, err)) ||
        (rc = get_linear(g, NAME("attn_qkv.weight"), n_embd, n_embd + 2 * n_kv, "n_embd, n_embd + 2*n_head_kv*head_dim",
                         &L->qkv, err)) ||
        (rc = get_linear(g, NAME("attn_output.weight"), n_embd, n_embd, "n_embd, n_embd", &L->o, err)) ||
        (rc = get_vec(g, NAME("ffn_norm.weight"), n_embd, "n_embd", &L->ffn_norm, err)) ||
        (rc = get_linear(g, NAME("ffn_up.weight"), n_embd, 2 * hp->n_ff, "n_embd, 2*n_ff: fused gate|up", &L->up, err)) ||
        (rc = get_linear(g, NAME("ffn_down.weight"), hp->n_ff, n_embd, "n_ff, n_embd", &L->down, err)))
        return rc;
#undef NAME
    return PF_OK;
}

/* token_embd, output_norm, output (token_embd if absent), rope factors (both or none). */
static int load_globals(const pf_gguf *g, pf_model *m, pf_error *err) {
    pf_model_hparams *hp = &m->hp;
    const pf_tensor_info *te = find(g, "token_embd.weight");
    if (te == NULL) return missing("token_embd.weight", err);
    int rc = check_shape(te, hp->n_embd, -1, "n_embd, n_vocab", err);
    if (rc != PF_OK) return rc;
    const pf_type_traits *tr = pf_type_get(te->type);
    if (tr == NULL || tr->to_float == NULL || hp->n_embd % tr->block_size != 0)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "phi3 model: tensor 'token_embd.weight' has unsupported type %s",
                            pf_type_name(te->type));
    m->tok_embd = te;
    hp->n_vocab = te->ne[1];
    if ((rc = get_vec(g, "output_norm.weight", hp->n_embd, "n_embd", &m->output_norm, err))) return rc;
    const char *out_name = find(g, "output.weight") ? "output.weight" : "token_embd.weight";
    if ((rc = get_linear(g, out_name, hp->n_embd, hp->n_vocab, "n_embd, n_vocab", &m->output, err))) return rc;

    bool has_long = find(g, "rope_factors_long.weight") != NULL, has_short = find(g, "rope_factors_short.weight") != NULL;
    if (has_long != has_short)
        return pf_error_set(err, PF_ERR_FORMAT, "phi3 model: tensor '%s' is missing (LongRoPE needs both factor sets)",
                            has_long ? "rope_factors_short.weight" : "rope_factors_long.weight");
    hp->has_rope_factors = has_long;
    if (has_long && ((rc = get_vec(g, "rope_factors_long.weight", hp->n_rot / 2, "rope.dimension_count / 2",
                                   &m->rope_long, err)) ||
                     (rc = get_vec(g, "rope_factors_short.weight", hp->n_rot / 2, "rope.dimension_count / 2",
                                   &m->rope_short, err))))
        return rc;
    return PF_OK;
}

int pf_model_load_gguf(const pf_gguf *g, pf_model **out, pf_error *err) {
    if (g == NULL || out == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_model_load_gguf: NULL argument");
    *out = NULL;
    pf_model *m = calloc(1, sizeof *m);
    if (m == NULL) return pf_error_set(err, PF_ERR_NOMEM, "pf_model_load_gguf: out of memory");
    m->g = g;
    int rc = load_hparams(g, &m->hp, err);
    if (rc == PF_OK) rc = load_globals(g, m, err);
    if (rc == PF_OK) rc = rope_attn_factor(g, &m->hp, err);
    if (rc == PF_OK && (m->layers = calloc((size_t)m->hp.n_layer, sizeof *m->layers)) == NULL)
        rc = pf_error_set(err, PF_ERR_NOMEM, "pf_model_load_gguf: out of memory for %lld layers", (long long)m->hp.n_layer);
    for (int64_t il = 0; rc == PF_OK && il < m->hp.n_layer; il++) rc = load_layer(g, &m->hp, il, &m->layers[il], err);
    if (rc != PF_OK) {
        pf_model_free(m);
        return rc;
    }
    *out = m;
    return PF_OK;
}

int pf_model_load(const char *path, pf_model **out, pf_error *err) {
    if (path == NULL || out == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_model_load: NULL argument");
    *out = NULL;
    pf_gguf *g = NULL;
    int rc = pf_gguf_open(path, &g, err);
    if (rc != PF_OK) return rc;
    rc = pf_model_load_gguf(g, out, err);
    if (rc != PF_OK) {
        /* prefix the file name: "model.gguf: phi3 model: tensor ... " */
        if (err != NULL) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            pf_error_set(err, rc, "%s: %s", path, msg);
        }
        pf_gguf_close(g);
        return rc;
    }
    (*out)->owned = g;
    return PF_OK;
}

void pf_model_free(pf_model *m) {
    if (m == NULL) return;
    free(m->layers);
    pf_gguf_close(m->owned);
    free(m);
}

const pf_model_hparams *pf_model_get_hparams(const pf_model *m) { return m ? &m->hp : NULL; }
const pf_gguf *pf_model_gguf(const pf_model *m) { return m ? m->g : NULL; }
