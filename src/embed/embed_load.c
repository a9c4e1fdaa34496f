/* Embedding model loading: hyperparameters from the {arch}.* keys, then every tensor looked up
 * by name and checked for presence, type and shape (errors name the key or tensor). Matrices
 * stay in the GGUF mapping; 1-D tensors (norms, biases, token-type row 0) are converted once
 * to f32 into the embedder's arena. Tensor set (spec 6.3):
 *   token_embd [E, V], token_types [E, T] (optional), position_embd [E, n_ctx] (bert),
 *   token_embd_norm.{weight,bias} [E]; per layer blk.N.:
 *   bert:  attn_q/k/v.{weight [E, E], bias [E]}, attn_output.{weight, bias},
 *          ffn_up.{weight [E, F], bias [F]}, ffn_down.{weight [F, E], bias [E]}
 *   nomic: attn_qkv.weight [E, 3E] (+ optional bias), attn_output.weight (+ optional bias),
 *          ffn_up.weight [E, F], ffn_gate.weight [E, F], ffn_down.weight [F, E]
 *   both:  attn_output_norm.{weight,bias} [E], layer_output_norm.{weight,bias} [E]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed/embed_internal.h"

#define HP_MAX ((int64_t)1 << 24)

/* ---- hyperparameters --------------------------------------------------------------------- */

static const char *arch_name(pfe_arch a) { return a == PFE_NOMIC ? "nomic-bert" : "bert"; }

/* {arch}.<key> as an integer in [lo, HP_MAX]; def < 0 makes it required. */
static int hp_int(const pf_embedder *e, const char *key, int64_t def, int64_t lo, int64_t *out, pf_error *err) {
    char full[96];
    pf_error e2 = {0};
    snprintf(full, sizeof full, "%s.%s", arch_name(e->hp.arch), key);
    int rc = pf_gguf_get_int(e->g, full, out, &e2);
    if (rc == PF_ERR_NOT_FOUND && def >= 0) *out = def;
    else if (rc == PF_ERR_NOT_FOUND)
        return pf_error_set(err, PF_ERR_FORMAT, "embedder: missing hyperparameter key '%s'", full);
    else if (rc != PF_OK) return pf_error_set(err, rc, "embedder: hyperparameter '%s': %s", full, e2.msg);
    if (*out < lo || *out > HP_MAX)
        return pf_error_set(err, PF_ERR_FORMAT, "embedder: hyperparameter '%s' = %lld is out of range [%lld, %lld]", full,
                            (long long)*out, (long long)lo, (long long)HP_MAX);
    return PF_OK;
}

/* {arch}.<key> as a finite float > 0, def when absent. */
static int hp_float(const pf_embedder *e, const char *key, double def, float *out, pf_error *err) {
    char full[96];
    pf_error e2 = {0};
    double v = def;
    snprintf(full, sizeof full, "%s.%s", arch_name(e->hp.arch), key);
    int rc = pf_gguf_get_float(e->g, full, &v, &e2);
    if (rc != PF_OK && rc != PF_ERR_NOT_FOUND) return pf_error_set(err, rc, "embedder: hyperparameter '%s': %s", full, e2.msg);
    if (!(v > 0) || !isfinite(v) || (float)v <= 0)
        return pf_error_set(err, PF_ERR_FORMAT, "embedder: hyperparameter '%s' = %g must be finite and > 0", full, v);
    *out = (float)v;
    return PF_OK;
}

static int load_arch(pf_embedder *e, pf_error *err) {
    const char *arch = NULL;
    if (pf_gguf_get_str(e->g, "general.architecture", &arch, NULL) != PF_OK)
        return pf_error_set(err, PF_ERR_FORMAT, "embedder: missing key 'general.architecture'");
    if (!strcmp(arch, "bert")) e->hp.arch = PFE_BERT;
    else if (!strcmp(arch, "nomic-bert")) e->hp.arch = PFE_NOMIC;
    else
        return pf_error_set(err, PF_ERR_UNSUPPORTED,
                            "embedder: general.architecture '%s' is not an embedding model (expected 'bert' or 'nomic-bert')",
                            arch);
    return PF_OK;
}

static int load_hparams(pf_embedder *e, pf_error *err) {
    pfe_hparams *hp = &e->hp;
    int64_t n_kv = 0, pool = 0;
    int rc;
    if ((rc = hp_int(e, "context_length", -1, 2, &hp->n_ctx, err)) ||
        (rc = hp_int(e, "embedding_length", -1, 1, &hp->n_embd, err)) ||
        (rc = hp_int(e, "feed_forward_length", -1, 1, &hp->n_ff, err)) ||
        (rc = hp_int(e, "block_count", -1, 1, &hp->n_layer, err)) ||
        (rc = hp_int(e, "attention.head_count", -1, 1, &hp->n_head, err)) ||
        (rc = hp_int(e, "attention.head_count_kv", hp->n_head, 1, &n_kv, err)) ||
        (rc = hp_int(e, "pooling_type", PF_POOLING_MEAN, 0, &pool, err)) ||
        (rc = hp_float(e, "attention.layer_norm_epsilon", 1e-12, &hp->eps, err)) ||
        (rc = hp_float(e, "rope.freq_base", 10000.0, &hp->rope_theta, err)))
        return rc;
    const char *a = arch_name(hp->arch);
    if (n_kv != hp->n_head)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "embedder: %s.attention.head_count_kv %lld != head_count %lld",
                            a, (long long)n_kv, (long long)hp->n_head);
    if (hp->n_embd % hp->n_head || (hp->arch == PFE_NOMIC && (hp->n_embd / hp->n_head) % 2))
        return pf_error_set(err, PF_ERR_FORMAT, "embedder: %s.embedding_length %lld does not split into %lld %sheads", a,
                            (long long)hp->n_embd, (long long)hp->n_head, hp->arch == PFE_NOMIC ? "even-sized " : "");
    hp->head_dim = hp->n_embd / hp->n_head;
    if (pool == 0 || pool > PF_POOLING_LAST)
        return pf_error_set(err, pool <= 4 ? PF_ERR_UNSUPPORTED : PF_ERR_FORMAT,
                            "embedder: %s.pooling_type %lld is not supported (1 MEAN, 2 CLS, 3 LAST)", a, (long long)pool);
    hp->pooling = (pf_pooling)pool;
    char key[96];
    bool causal = false;
    snprintf(key, sizeof key, "%s.attention.causal", a);
    if (pf_gguf_get_bool(e->g, key, &causal, NULL) == PF_OK && causal)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "embedder: %s = true (only bidirectional encoders)", key);
    return PF_OK;
}

/* ---- tensors ------------------------------------------------------------------------------ */

static const pf_tensor_info *find(const pf_embedder *e, const char *name) {
    int64_t i = pf_gguf_find_tensor(e->g, name);
    return i < 0 ? NULL : pf_gguf_tensor(e->g, i);
}

/* t must be [ne0] (ne1 == 0) or [ne0, ne1]. */
static int check_shape(const pf_tensor_info *t, int64_t ne0, int64_t ne1, pf_error *err) {
    bool ok = ne1 == 0 ? t->n_dims == 1 && t->ne[0] == ne0 : t->n_dims == 2 && t->ne[0] == ne0 && t->ne[1] == ne1;
    if (ok) return PF_OK;
    char got[96], want[48];
    int n = snprintf(got, sizeof got, "[");
    for (uint32_t d = 0; d < t->n_dims && d < 4; d++)
        n += snprintf(got + n, sizeof got - (size_t)n, d ? ", %lld" : "%lld", (long long)t->ne[d]);
    snprintf(got + n, sizeof got - (size_t)n, "]");
    if (ne1 == 0) snprintf(want, sizeof want, "[%lld]", (long long)ne0);
    else snprintf(want, sizeof want, "[%lld, %lld]", (long long)ne0, (long long)ne1);
    return pf_error_set(err, PF_ERR_FORMAT, "embedder: tensor '%s' has shape %s, expected %s", t->name, got, want);
}

/* Rows of ne0 elements of t can be converted to f32. */
static int check_float_rows(const pf_tensor_info *t, pf_error *err) {
    const pf_type_traits *tr = pf_type_get(t->type);
    if (!tr || !tr->to_float || t->ne[0] % tr->block_size)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "embedder: tensor '%s' has unsupported type %s", t->name,
                            pf_type_name(t->type));
    return PF_OK;
}

/* A required (or, with optional, possibly absent: *v stays NULL) vector of n floats. */
static int get_vec(pf_embedder *e, const char *name, int64_t n, bool optional, float **cursor, const float **v,
                   pf_error *err) {
    const pf_tensor_info *t = find(e, name);
    *v = NULL;
    if (!t) return optional ? PF_OK : pf_error_set(err, PF_ERR_FORMAT, "embedder: tensor '%s' is missing", name);
    int rc = check_shape(t, n, 0, err);
    if (!rc) rc = check_float_rows(t, err);
    if (rc) return rc;
    pf_type_get(t->type)->to_float(t->data, *cursor, n);
    *v = *cursor;
    *cursor += n;
    return PF_OK;
}

static int get_norm(pf_embedder *e, const char *base, float **cursor, pfe_norm *nrm, pf_error *err) {
    char name[96];
    int rc;
    snprintf(name, sizeof name, "%s.weight", base);
    if ((rc = get_vec(e, name, e->hp.n_embd, false, cursor, &nrm->w, err))) return rc;
    snprintf(name, sizeof name, "%s.bias", base);
    return get_vec(e, name, e->hp.n_embd, false, cursor, &nrm->b, err);
}

/* Weight base.weight [n_in, n_out] of a matmul type, bias base.bias [n_out] (bias: 0 none,
 * 1 optional, 2 required). */
static int get_linear(pf_embedder *e, const char *base, int64_t n_in, int64_t n_out, int bias, float **cursor,
                      pfe_linear *l, pf_error *err) {
    char name[96];
    snprintf(name, sizeof name, "%s.weight", base);
    const pf_tensor_info *t = find(e, name);
    if (!t) return pf_error_set(err, PF_ERR_FORMAT, "embedder: tensor '%s' is missing", name);
    int rc = check_shape(t, n_in, n_out, err);
    if (rc) return rc;
    const pf_type_traits *tr = pf_type_get(t->type);
    if (!tr || !tr->is_weight || n_in % tr->block_size)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "embedder: tensor '%s' has type %s, not a weight type for rows of %lld",
                            name, pf_type_name(t->type), (long long)n_in);
    *l = (pfe_linear){.t = t, .w = t->data, .type = t->type, .n_in = n_in, .n_out = n_out};
    if (!bias) return PF_OK;
    snprintf(name, sizeof name, "%s.bias", base);
    return get_vec(e, name, n_out, bias == 1, cursor, &l->b, err);
}

static int load_layer(pf_embedder *e, int64_t il, float **cur, pf_error *err) {
    const int64_t E = e->hp.n_embd, F = e->hp.n_ff;
    const bool bert = e->hp.arch == PFE_BERT;
    pfe_layer *L = &e->layers[il];
    char b[64];
    int rc;
#define T(suffix) (snprintf(b, sizeof b, "blk.%lld." suffix, (long long)il), b)
    if (bert) {
        if ((rc = get_linear(e, T("attn_q"), E, E, 2, cur, &L->q, err)) ||
            (rc = get_linear(e, T("attn_k"), E, E, 2, cur, &L->k, err)) ||
            (rc = get_linear(e, T("attn_v"), E, E, 2, cur, &L->v, err)) ||
            (rc = get_linear(e, T("ffn_up"), E, F, 2, cur, &L->up, err)) ||
            (rc = get_linear(e, T("ffn_down"), F, E, 2, cur, &L->down, err)))
            return rc;
    } else if ((rc = get_linear(e, T("attn_qkv"), E, 3 * E, 1, cur, &L->qkv, err)) ||
               (rc = get_linear(e, T("ffn_up"), E, F, 0, cur, &L->up, err)) ||
               (rc = get_linear(e, T("ffn_gate"), E, F, 0, cur, &L->gate, err)) ||
               (rc = get_linear(e, T("ffn_down"), F, E, 0, cur, &L->down, err)))
        return rc;
    if ((rc = get_linear(e, T("attn_output"), E, E, bert ? 2 : 1, cur, &L->o, err)) ||
        (rc = get_norm(e, T("attn_output_norm"), cur, &L->attn_norm, err)) ||
        (rc = get_norm(e, T("layer_output_norm"), cur, &L->out_norm, err)))
        return rc;
#undef T
    return PF_OK;
}

/* token_embd (rows of any convertible type), token_types row 0, position_embd, embedding norm. */
static int load_globals(pf_embedder *e, float **cur, pf_error *err) {
    const int64_t E = e->hp.n_embd;
    const pf_tensor_info *t = find(e, "token_embd.weight");
    if (!t) return pf_error_set(err, PF_ERR_FORMAT, "embedder: tensor 'token_embd.weight' is missing");
    int rc = check_shape(t, E, pf_tokenizer_n_vocab(e->tok), err);
    if (!rc) rc = check_float_rows(t, err);
    if (rc) return rc;
    e->tok_embd = t;
    e->hp.n_vocab = t->ne[1];
    if ((t = find(e, "token_types.weight")) != NULL) {
        if ((rc = check_shape(t, E, t->n_dims == 1 ? 0 : t->ne[1], err)) || (rc = check_float_rows(t, err))) return rc;
        pf_type_get(t->type)->to_float(t->data, *cur, E); /* token types are all 0 ("sentence A") */
        e->type0 = *cur;
        *cur += E;
    }
    if (e->hp.arch == PFE_BERT) {
        if (!(t = find(e, "position_embd.weight")))
            return pf_error_set(err, PF_ERR_FORMAT, "embedder: tensor 'position_embd.weight' is missing");
        if ((rc = check_shape(t, E, e->hp.n_ctx, err)) || (rc = check_float_rows(t, err))) return rc;
        e->pos_embd = t;
    }
    return get_norm(e, "token_embd_norm", cur, &e->tok_norm, err);
}

int pfe_load_gguf(pf_embedder *e, pf_error *err) {
    int rc = load_arch(e, err);
    if (!rc) rc = load_hparams(e, err);
    if (!rc) rc = pf_tokenizer_load(e->g, &e->tok, err);
    if (rc) return rc;
    const pfe_hparams *hp = &e->hp;
    /* arena: type row + embedding norm, then per layer at most 9 E + F (bert with biases) */
    const size_t floats = (size_t)(3 * hp->n_embd) + (size_t)hp->n_layer * (size_t)(9 * hp->n_embd + hp->n_ff);
    e->arena = malloc(floats * sizeof(float));
    e->layers = calloc((size_t)hp->n_layer, sizeof *e->layers);
    if (!e->arena || !e->layers) return pf_error_set(err, PF_ERR_NOMEM, "embedder: out of memory for the weights");
    float *cur = e->arena;
    rc = load_globals(e, &cur, err);
    for (int64_t il = 0; !rc && il < hp->n_layer; il++) rc = load_layer(e, il, &cur, err);
    if (rc || hp->arch != PFE_NOMIC) return rc;
    const int64_t half = hp->head_dim / 2;
    if (!(e->inv_freq = malloc((size_t)half * sizeof(double))))
        return pf_error_set(err, PF_ERR_NOMEM, "embedder: out of memory");
    for (int64_t i = 0; i < half; i++) e->inv_freq[i] = pow((double)hp->rope_theta, -2.0 * (double)i / (double)hp->head_dim);
    return PF_OK;
}
