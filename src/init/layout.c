/* The file layout of a Phi-3 model: tensor names, shapes and types (spec 4.5) and metadata keys
 * (spec 4.4), in the order of the project's golden files (tests/data/phi3-tiny-f16.gguf and
 * phi3-tiny-longrope-f16.gguf, written by llama.cpp's tooling). */
#include <stdio.h>
#include <string.h>

#include "init/init_internal.h"

int pf_init_check_preset(const pf_init_preset *p, pf_error *err) {
    if (p == NULL) return pf_error_set(err, PF_ERR_ARG, "init: no preset");
    if (p->n_embd <= 0 || p->n_ff <= 0 || p->n_layer <= 0 || p->n_head <= 0 || p->n_head_kv <= 0 ||
        p->n_embd % p->n_head != 0 || p->n_head % p->n_head_kv != 0 || (p->n_embd / p->n_head) % 2 != 0)
        return pf_error_set(err, PF_ERR_ARG,
                            "init: preset '%s': n_embd %lld must split into n_head %lld heads of even size, "
                            "n_head into n_head_kv %lld groups, n_ff %lld > 0, n_layer %lld > 0",
                            p->name ? p->name : "?", (long long)p->n_embd, (long long)p->n_head,
                            (long long)p->n_head_kv, (long long)p->n_ff, (long long)p->n_layer);
    if (p->n_ctx_orig <= 0 || p->n_ctx_train < p->n_ctx_orig || p->n_ctx_train > UINT32_MAX)
        return pf_error_set(err, PF_ERR_ARG, "init: preset '%s': context %lld / original %lld",
                            p->name ? p->name : "?", (long long)p->n_ctx_train, (long long)p->n_ctx_orig);
    if ((p->rope_long == NULL) != (p->rope_short == NULL))
        return pf_error_set(err, PF_ERR_ARG, "init: preset '%s': rope_long and rope_short go together",
                            p->name ? p->name : "?");
    return PF_OK;
}

int pf_init_vocab_size(const pf_gguf *vocab, int64_t *n_vocab, pf_error *err) {
    const pf_gguf_value *v = pf_gguf_get(vocab, "tokenizer.ggml.tokens");
    if (v == NULL || v->type != PF_GGUF_ARRAY || v->v.arr.type != PF_GGUF_STRING || v->v.arr.n == 0)
        return pf_error_set(err, PF_ERR_FORMAT, "init: %s has no tokenizer.ggml.tokens string array",
                            pf_gguf_path(vocab));
    *n_vocab = (int64_t)v->v.arr.n;
    return PF_OK;
}

typedef struct tlist {
    pf_init_tensor *out;
    int64_t cap, n;
} tlist;

static void add(tlist *l, const pf_quant_recipe *r, int64_t n_layer, const char *name, int64_t ne0, int64_t ne1) {
    if (l->n < l->cap) {
        pf_init_tensor *t = &l->out[l->n];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s", name);
        t->n_dims = ne1 > 0 ? 2 : 1;
        t->ne[0] = ne0;
        t->ne[1] = ne1 > 0 ? ne1 : 1;
        t->ne[2] = t->ne[3] = 1;
        /* 1-D tensors are F32 (converter and quantizer); matrices get the recipe's type */
        t->type = pf_quant_recipe_type(r, name, t->n_dims, ne0, t->n_dims == 1 ? PF_TYPE_F32 : r->base, n_layer);
        t->nbytes = pf_row_size(t->type, ne0) * (size_t)t->ne[1];
    }
    l->n++;
}

int64_t pf_init_tensors(const pf_init_preset *p, const pf_quant_recipe *r, int64_t n_vocab, pf_init_tensor *out,
                        int64_t cap, pf_error *err) {
    int rc = pf_init_check_preset(p, err);
    if (rc != PF_OK) return rc;
    if (r == NULL || pf_type_get(r->base) == NULL || n_vocab <= 0 || (cap > 0 && out == NULL))
        return pf_error_set(err, PF_ERR_ARG, "init: bad recipe, vocabulary size or output array");
    tlist l = {out, cap, 0};
    const int64_t E = p->n_embd, hd = E / p->n_head, n_kv = p->n_head_kv * hd, L = p->n_layer;
    char name[48];
    add(&l, r, L, "token_embd.weight", E, n_vocab);
    if (p->rope_long) {
        add(&l, r, L, "rope_factors_long.weight", hd / 2, 0);
        add(&l, r, L, "rope_factors_short.weight", hd / 2, 0);
    }
    static const char *const parts[] = {"attn_norm", "attn_qkv", "attn_output", "ffn_norm", "ffn_up", "ffn_down"};
    for (int64_t il = 0; il < L; il++) {
        const int64_t shape[6][2] = {{E, 0}, {E, E + 2 * n_kv}, {E, E}, {E, 0}, {E, 2 * p->n_ff}, {p->n_ff, E}};
        for (int k = 0; k < 6; k++) {
            snprintf(name, sizeof name, "blk.%lld.%s.weight", (long long)il, parts[k]);
            add(&l, r, L, name, shape[k][0], shape[k][1]);
        }
    }
    add(&l, r, L, "output_norm.weight", E, 0);
    add(&l, r, L, "output.weight", E, n_vocab);
    return l.n;
}

/* Copies the tokenizer.* keys of the vocab file in order. */
static int copy_tokenizer(pf_gguf_writer *w, const pf_gguf *vocab, pf_error *err) {
    int n = 0;
    for (int64_t i = 0; i < pf_gguf_n_kv(vocab); i++) {
        const char *k = pf_gguf_key(vocab, i);
        if (strncmp(k, "tokenizer.", 10) != 0) continue;
        int rc = pf_gguf_writer_set(w, k, pf_gguf_value_at(vocab, i), err);
        if (rc != PF_OK) return rc;
        n++;
    }
    return n > 0 ? PF_OK
                 : pf_error_set(err, PF_ERR_FORMAT, "init: %s has no tokenizer.* keys", pf_gguf_path(vocab));
}

int pf_init_add_metadata(pf_gguf_writer *w, const pf_init_preset *p, const pf_quant_recipe *r, const pf_gguf *vocab,
                         pf_error *err) {
    int rc = pf_init_check_preset(p, err);
    if (rc != PF_OK) return rc;
    const uint32_t head_dim = (uint32_t)(p->n_embd / p->n_head);
    const struct { const char *key; uint32_t v; } u32s[] = {
        {"phi3.context_length", (uint32_t)p->n_ctx_train},
        {"phi3.rope.scaling.original_context_length", (uint32_t)p->n_ctx_orig},
        {"phi3.embedding_length", (uint32_t)p->n_embd},
        {"phi3.feed_forward_length", (uint32_t)p->n_ff},
        {"phi3.block_count", (uint32_t)p->n_layer},
        {"phi3.attention.head_count", (uint32_t)p->n_head},
        {"phi3.attention.head_count_kv", (uint32_t)p->n_head_kv},
    };
    if ((rc = pf_gguf_writer_set_str(w, "general.architecture", "phi3", err)) ||
        (rc = pf_gguf_writer_set_str(w, "general.name", p->general_name ? p->general_name : "Phi3", err)))
        return rc;
    for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++)
        if ((rc = pf_gguf_writer_set_u32(w, u32s[i].key, u32s[i].v, err))) return rc;
    if ((rc = pf_gguf_writer_set_f32(w, "phi3.attention.layer_norm_rms_epsilon", 1e-5f, err)) ||
        (rc = pf_gguf_writer_set_u32(w, "phi3.rope.dimension_count", head_dim, err)) ||
        (rc = pf_gguf_writer_set_f32(w, "phi3.rope.freq_base", 10000.0f, err)) ||
        (rc = pf_gguf_writer_set_u32(w, "general.file_type", r->file_type, err)))
        return rc;
    if (p->sliding_window && (rc = pf_gguf_writer_set_u32(w, "phi3.attention.sliding_window", p->sliding_window, err)))
        return rc;
    if ((rc = copy_tokenizer(w, vocab, err)) ||
        (rc = pf_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", p->add_bos, err)) ||
        (p->chat_template && (rc = pf_gguf_writer_set_str(w, "tokenizer.chat_template", p->chat_template, err))) ||
        (rc = pf_gguf_writer_set_u32(w, "general.quantization_version", 2, err)))
        return rc;
    if (p->rope_long && (rc = pf_gguf_writer_set_f32(w, "phi3.rope.scaling.attn_factor", pf_init_attn_factor(p), err)))
        return rc;
    return PF_OK;
}
