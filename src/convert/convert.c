/* phiforge convert: a Hugging Face Phi3ForCausalLM directory -> GGUF, laid out as llama.cpp's
 * convert_hf_to_gguf.py (Phi3MiniModel) writes it:
 *   keys   general.architecture "phi3", general.name, phi3.context_length (max_position_embeddings),
 *          phi3.rope.scaling.original_context_length, embedding_length, feed_forward_length,
 *          block_count, attention.head_count(_kv), attention.layer_norm_rms_epsilon,
 *          rope.dimension_count (partial_rotary_factor · hidden / heads), rope.freq_base,
 *          general.file_type, attention.sliding_window (0 when absent), the tokenizer
 *          (convert_vocab.c), general.quantization_version 2, and for LongRoPE
 *          rope.scaling.attn_factor = sqrt(1 + ln(s) / ln(original context)), s = context ratio;
 *   tensors HF [out, in] -> GGUF ne [in, out] under llama.cpp's names; 1-D tensors and rope
 *          factors F32, 2-D weights in the chosen type (Q8_0 rows that do not split into 32
 *          fall back to F16, as gguf-py does).
 * Each tensor is converted from the safetensors mapping straight into the writer's buffer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert/convert_internal.h"

pf_convert_params pf_convert_default_params(void) {
    pf_convert_params p = {.outtype = PF_TYPE_F16};
    return p;
}

typedef struct hparams {
    int64_t n_embd, n_ff, n_layer, n_head, n_head_kv, n_ctx, n_ctx_orig, n_vocab, rope_dims, sliding_window;
    double eps, rope_theta, attn_factor;
    const cJSON *long_factor, *short_factor;
} hparams;

/* One output tensor: from an HF tensor (src) or from a float list of config.json (factors). */
typedef struct plan_tensor {
    char name[96];
    const pf_st_tensor *src;
    const cJSON *factors;
    pf_type type;
    int n_dims;
    int64_t ne[2];
} plan_tensor;

typedef struct job {
    plan_tensor *t;
    int64_t n;
    pf_compute *c;
    float *buf; /* row chunk in f32 for Q8_0 */
    size_t buf_floats;
    const pf_convert_params *p;
} job;

static int get_int(const cJSON *cfg, const char *key, int64_t def, int64_t *out, const char *dir, pf_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (v == NULL || cJSON_IsNull(v)) {
        if (def == INT64_MIN) return pf_error_set(err, PF_ERR_FORMAT, "%s/config.json: missing \"%s\"", dir, key);
        *out = def;
        return PF_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 || v->valuedouble > 1e9)
        return pf_error_set(err, PF_ERR_FORMAT, "%s/config.json: \"%s\" is not a non-negative integer", dir, key);
    *out = (int64_t)v->valuedouble;
    return PF_OK;
}

static int get_num(const cJSON *cfg, const char *key, double def, double *out, const char *dir, pf_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (v == NULL || cJSON_IsNull(v)) {
        if (isnan(def)) return pf_error_set(err, PF_ERR_FORMAT, "%s/config.json: missing \"%s\"", dir, key);
        *out = def;
        return PF_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return pf_error_set(err, PF_ERR_FORMAT, "%s/config.json: \"%s\" is not a number", dir, key);
    *out = v->valuedouble;
    return PF_OK;
}

static int read_hparams(const cJSON *cfg, const char *dir, hparams *h, pf_error *err) {
    memset(h, 0, sizeof *h);
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    const cJSON *a0 = cJSON_IsArray(arch) ? cJSON_GetArrayItem(arch, 0) : NULL;
    if (!cJSON_IsString(a0) || strcmp(a0->valuestring, "Phi3ForCausalLM") != 0)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "%s/config.json: architectures[0] is %s%s%s, only Phi3ForCausalLM converts",
                            dir, cJSON_IsString(a0) ? "'" : "", cJSON_IsString(a0) ? a0->valuestring : "missing",
                            cJSON_IsString(a0) ? "'" : "");
    int rc;
    if ((rc = get_int(cfg, "hidden_size", INT64_MIN, &h->n_embd, dir, err)) != PF_OK) return rc;
    if ((rc = get_int(cfg, "intermediate_size", INT64_MIN, &h->n_ff, dir, err)) != PF_OK) return rc;
    if ((rc = get_int(cfg, "num_hidden_layers", INT64_MIN, &h->n_layer, dir, err)) != PF_OK) return rc;
    if ((rc = get_int(cfg, "num_attention_heads", INT64_MIN, &h->n_head, dir, err)) != PF_OK) return rc;
    if ((rc = get_int(cfg, "num_key_value_heads", h->n_head, &h->n_head_kv, dir, err)) != PF_OK) return rc;
    if ((rc = get_int(cfg, "max_position_embeddings", INT64_MIN, &h->n_ctx, dir, err)) != PF_OK) return rc;
    if ((rc = get_int(cfg, "vocab_size", 0, &h->n_vocab, dir, err)) != PF_OK) return rc;
    if ((rc = get_int(cfg, "sliding_window", 0, &h->sliding_window, dir, err)) != PF_OK) return rc;
    if ((rc = get_num(cfg, "rms_norm_eps", NAN, &h->eps, dir, err)) != PF_OK) return rc;
    if ((rc = get_num(cfg, "rope_theta", 10000.0, &h->rope_theta, dir, err)) != PF_OK) return rc;
    double rot = 1.0;
    if ((rc = get_num(cfg, "partial_rotary_factor", 1.0, &rot, dir, err)) != PF_OK) return rc;
    if (h->n_embd <= 0 || h->n_head <= 0 || h->n_head_kv <= 0 || h->n_layer <= 0 || h->n_ff <= 0 || h->n_ctx <= 0 ||
        h->n_embd % h->n_head != 0 || h->n_head % h->n_head_kv != 0 || rot <= 0 || rot > 1)
        return pf_error_set(err, PF_ERR_FORMAT, "%s/config.json: inconsistent sizes (hidden %lld, heads %lld/%lld, layers %lld)",
                            dir, (long long)h->n_embd, (long long)h->n_head, (long long)h->n_head_kv, (long long)h->n_layer);
    h->rope_dims = (int64_t)(rot * (double)h->n_embd) / h->n_head;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "rope_scaling");
    int64_t orig = h->n_ctx;
    if ((rc = get_int(cfg, "original_max_position_embeddings", h->n_ctx, &orig, dir, err)) != PF_OK) return rc;
    if (cJSON_IsObject(rs) && (rc = get_int(rs, "original_max_position_embeddings", orig, &orig, dir, err)) != PF_OK) return rc;
    h->n_ctx_orig = orig > 0 ? orig : h->n_ctx;
    h->attn_factor = 0;
    if (cJSON_IsObject(rs)) {
        const cJSON *lf = cJSON_GetObjectItemCaseSensitive(rs, "long_factor"), *sf = cJSON_GetObjectItemCaseSensitive(rs, "short_factor");
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
        if (!cJSON_IsString(ty)) ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
        if (lf && !cJSON_IsNull(lf)) {
            if (!cJSON_IsString(ty))
                return pf_error_set(err, PF_ERR_FORMAT, "%s/config.json: rope_scaling has factors but no type", dir);
            const double s = (double)h->n_ctx / (double)h->n_ctx_orig;
            if (!strcmp(ty->valuestring, "su") || !strcmp(ty->valuestring, "longrope"))
                h->attn_factor = s > 1.0 ? sqrt(1.0 + log(s) / log((double)h->n_ctx_orig)) : 1.0;
            else if (!strcmp(ty->valuestring, "yarn"))
                h->attn_factor = s > 1.0 ? 0.1 * log(s) + 1.0 : 1.0;
            else
                return pf_error_set(err, PF_ERR_UNSUPPORTED, "%s/config.json: rope_scaling type '%s' is not supported", dir,
                                    ty->valuestring);
            if (!cJSON_IsArray(lf) || !cJSON_IsArray(sf) || cJSON_GetArraySize(lf) != cJSON_GetArraySize(sf) ||
                cJSON_GetArraySize(lf) != h->rope_dims / 2)
                return pf_error_set(err, PF_ERR_FORMAT,
                                    "%s/config.json: rope_scaling long_factor and short_factor must both have %lld numbers", dir,
                                    (long long)(h->rope_dims / 2));
            for (const cJSON *e = lf->child; e; e = e->next)
                if (!cJSON_IsNumber(e)) return pf_error_set(err, PF_ERR_FORMAT, "%s/config.json: long_factor holds a non-number", dir);
            for (const cJSON *e = sf->child; e; e = e->next)
                if (!cJSON_IsNumber(e)) return pf_error_set(err, PF_ERR_FORMAT, "%s/config.json: short_factor holds a non-number", dir);
            h->long_factor = lf, h->short_factor = sf;
        }
    }
    return PF_OK;
}

/* Adds an HF tensor under its GGUF name after checking its shape ([out, in] or [n]). */
static int plan_hf(plan_tensor *pt, const pf_st_set *st, const char *hf, const char *gg, int64_t out, int64_t in,
                   pf_type wtype, const char *dir, pf_error *err) {
    const pf_st_tensor *t = pf_st_find(st, hf);
    if (t == NULL) return pf_error_set(err, PF_ERR_NOT_FOUND, "%s: tensor '%s' is missing from the safetensors files", dir, hf);
    const int nd = in > 0 ? 2 : 1;
    if (t->n_dims != nd || t->shape[0] != out || (nd == 2 && t->shape[1] != in))
        return pf_error_set(err, PF_ERR_FORMAT, "%s: tensor '%s' has shape [%lld%s%lld] but config.json implies [%lld%s%lld]",
                            t->file, hf, (long long)t->shape[0], t->n_dims > 1 ? ", " : "",
                            t->n_dims > 1 ? (long long)t->shape[1] : 0LL, (long long)out, nd == 2 ? ", " : "",
                            nd == 2 ? (long long)in : 0LL);
    memset(pt, 0, sizeof *pt);
    snprintf(pt->name, sizeof pt->name, "%s", gg);
    pt->src = t;
    pt->n_dims = nd;
    pt->ne[0] = nd == 2 ? in : out;
    pt->ne[1] = nd == 2 ? out : 1;
    pt->type = nd == 1 ? PF_TYPE_F32 : wtype;
    if (pt->type == PF_TYPE_Q8_0 && pt->ne[0] % 32 != 0) pt->type = PF_TYPE_F16;
    return PF_OK;
}

/* f32 value i of a source tensor (any alignment). */
static inline float src_at(const pf_st_tensor *t, int64_t i) {
    if (t->type == PF_TYPE_F32) {
        float f;
        memcpy(&f, t->data + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, t->data + 2 * i, 2);
    return t->type == PF_TYPE_F16 ? pf_fp16_to_fp32(h) : pf_bf16_to_fp32(h);
}

static int fill(void *ctx, int64_t ti, void *dst, size_t nbytes, pf_error *err) {
    job *j = ctx;
    const plan_tensor *pt = &j->t[ti];
    const int64_t n = pt->ne[0] * pt->ne[1];
    int rc = PF_OK;
    if (pt->factors) {
        float *o = dst;
        int64_t i = 0;
        for (const cJSON *e = pt->factors->child; e; e = e->next) o[i++] = (float)e->valuedouble;
    } else if (pt->type == pt->src->type) {
        memcpy(dst, pt->src->data, nbytes);
    } else if (pt->type == PF_TYPE_F32 || pt->type == PF_TYPE_F16 || pt->type == PF_TYPE_BF16) {
        uint8_t *o = dst;
        for (int64_t i = 0; i < n; i++) {
            const float f = src_at(pt->src, i);
            if (pt->type == PF_TYPE_F32) memcpy(o + 4 * i, &f, 4);
            else {
                const uint16_t h = pt->type == PF_TYPE_F16 ? pf_fp32_to_fp16(f) : pf_fp32_to_bf16(f);
                memcpy(o + 2 * i, &h, 2);
            }
        }
    } else { /* Q8_0: rows widened to f32 a chunk at a time, then the reference quantizer */
        const int64_t rows_per = (int64_t)(j->buf_floats / (size_t)pt->ne[0]) > 0 ? (int64_t)(j->buf_floats / (size_t)pt->ne[0]) : 1;
        const size_t rs = pf_row_size(pt->type, pt->ne[0]);
        for (int64_t r = 0; r < pt->ne[1] && rc == PF_OK; r += rows_per) {
            const int64_t nr = pt->ne[1] - r < rows_per ? pt->ne[1] - r : rows_per;
            for (int64_t i = 0; i < nr * pt->ne[0]; i++) j->buf[i] = src_at(pt->src, r * pt->ne[0] + i);
            rc = pf_quantize(j->c, j->buf, pt->type, nr, pt->ne[0], (uint8_t *)dst + (size_t)r * rs, err);
        }
    }
    if (rc == PF_OK && j->p && j->p->progress) j->p->progress(j->p->user, ti + 1, j->n, pt->name);
    return rc;
}

static uint32_t file_type(pf_type t) {
    switch (t) {
    case PF_TYPE_F32: return 0;
    case PF_TYPE_F16: return 1;
    case PF_TYPE_Q8_0: return 7;
    default: return 32; /* BF16 */
    }
}

int pf_convert_hf(const char *dir, const char *out_path, const pf_convert_params *pp, pf_error *err) {
    if (dir == NULL || out_path == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_convert_hf: NULL path");
    const pf_convert_params p = pp ? *pp : pf_convert_default_params();
    if (p.outtype != PF_TYPE_F32 && p.outtype != PF_TYPE_F16 && p.outtype != PF_TYPE_BF16 && p.outtype != PF_TYPE_Q8_0)
        return pf_error_set(err, PF_ERR_ARG, "pf_convert_hf: output type %s is not one of f32, f16, bf16, q8_0",
                            pf_type_name(p.outtype));
    cJSON *cfg = NULL;
    pf_st_set *st = NULL;
    pf_gguf_writer *w = NULL;
    plan_tensor *plan = NULL;
    job j = {0};
    hparams h;
    int rc = pf_cv_read_json(dir, "config.json", &cfg, err);
    if (rc == PF_OK && cfg == NULL) rc = pf_error_set(err, PF_ERR_NOT_FOUND, "%s: no config.json", dir);
    if (rc == PF_OK) rc = read_hparams(cfg, dir, &h, err);
    if (rc == PF_OK) rc = pf_st_open_dir(dir, &st, err);
    if (rc != PF_OK) goto done;

    /* the tensor plan, in llama.cpp's order */
    const int64_t max_t = 5 + 6 * h.n_layer; /* embeddings, 2 rope factors, layers, norm, output */
    plan = calloc((size_t)max_t, sizeof *plan);
    if (!plan) {
        rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
        goto done;
    }
    const int64_t head_dim = h.n_embd / h.n_head, n_qkv = (h.n_head + 2 * h.n_head_kv) * head_dim;
    const pf_type wt = p.outtype;
    int64_t np = 0, n_vocab_w = h.n_vocab;
    const pf_st_tensor *emb = pf_st_find(st, "model.embed_tokens.weight");
    if (emb && emb->n_dims == 2 && n_vocab_w == 0) n_vocab_w = emb->shape[0];
    if ((rc = plan_hf(&plan[np++], st, "model.embed_tokens.weight", "token_embd.weight", n_vocab_w, h.n_embd, wt, dir, err)) != PF_OK)
        goto done;
    if (h.long_factor) {
        for (int k = 0; k < 2; k++) {
            plan_tensor *pt = &plan[np++];
            snprintf(pt->name, sizeof pt->name, "%s", k == 0 ? "rope_factors_long.weight" : "rope_factors_short.weight");
            pt->factors = k == 0 ? h.long_factor : h.short_factor;
            pt->type = PF_TYPE_F32;
            pt->n_dims = 1;
            pt->ne[0] = h.rope_dims / 2, pt->ne[1] = 1;
        }
    }
    for (int64_t l = 0; l < h.n_layer && rc == PF_OK; l++) {
        static const struct { const char *hf, *gg; } m[6] = {
            {"input_layernorm", "attn_norm"},          {"self_attn.qkv_proj", "attn_qkv"}, {"self_attn.o_proj", "attn_output"},
            {"post_attention_layernorm", "ffn_norm"}, {"mlp.gate_up_proj", "ffn_up"},      {"mlp.down_proj", "ffn_down"}};
        const int64_t outs[6] = {h.n_embd, n_qkv, h.n_embd, h.n_embd, 2 * h.n_ff, h.n_embd};
        const int64_t ins[6] = {0, h.n_embd, h.n_embd, 0, h.n_embd, h.n_ff};
        for (int k = 0; k < 6 && rc == PF_OK; k++) {
            char hf[128], gg[96];
            snprintf(hf, sizeof hf, "model.layers.%lld.%s.weight", (long long)l, m[k].hf);
            snprintf(gg, sizeof gg, "blk.%lld.%s.weight", (long long)l, m[k].gg);
            rc = plan_hf(&plan[np++], st, hf, gg, outs[k], ins[k], wt, dir, err);
        }
    }
    if (rc == PF_OK) rc = plan_hf(&plan[np++], st, "model.norm.weight", "output_norm.weight", h.n_embd, 0, wt, dir, err);
    if (rc == PF_OK) rc = plan_hf(&plan[np++], st, "lm_head.weight", "output.weight", n_vocab_w, h.n_embd, wt, dir, err);
    if (rc != PF_OK) goto done;
    /* anything left over is a tensor llama.cpp could not map either */
    for (int64_t i = 0; i < pf_st_count(st); i++) {
        const pf_st_tensor *t = pf_st_at(st, i);
        int used = 0;
        for (int64_t k = 0; k < np && !used; k++) used = plan[k].src == t;
        if (!used && strstr(t->name, "rotary_emb.inv_freq") == NULL) { /* llama.cpp skips those too */
            rc = pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: tensor '%s' has no GGUF name in a Phi-3 model", t->file, t->name);
            goto done;
        }
    }

    /* metadata */
    const char *name = p.name;
    char base[256];
    if (name == NULL) {
        const char *s = dir + strlen(dir);
        while (s > dir && s[-1] == '/') s--;
        const char *e = s;
        while (s > dir && s[-1] != '/') s--;
        snprintf(base, sizeof base, "%.*s", (int)(e - s), s);
        name = base;
    }
    if ((rc = pf_gguf_writer_create(&w, err)) != PF_OK) goto done;
#define SET(call) \
    if (rc == PF_OK) rc = (call)
    SET(pf_gguf_writer_set_str(w, "general.architecture", "phi3", err));
    SET(pf_gguf_writer_set_str(w, "general.name", name, err));
    SET(pf_gguf_writer_set_u32(w, "phi3.context_length", (uint32_t)h.n_ctx, err));
    SET(pf_gguf_writer_set_u32(w, "phi3.rope.scaling.original_context_length", (uint32_t)h.n_ctx_orig, err));
    SET(pf_gguf_writer_set_u32(w, "phi3.embedding_length", (uint32_t)h.n_embd, err));
    SET(pf_gguf_writer_set_u32(w, "phi3.feed_forward_length", (uint32_t)h.n_ff, err));
    SET(pf_gguf_writer_set_u32(w, "phi3.block_count", (uint32_t)h.n_layer, err));
    SET(pf_gguf_writer_set_u32(w, "phi3.attention.head_count", (uint32_t)h.n_head, err));
    SET(pf_gguf_writer_set_u32(w, "phi3.attention.head_count_kv", (uint32_t)h.n_head_kv, err));
    SET(pf_gguf_writer_set_f32(w, "phi3.attention.layer_norm_rms_epsilon", (float)h.eps, err));
    SET(pf_gguf_writer_set_u32(w, "phi3.rope.dimension_count", (uint32_t)h.rope_dims, err));
    SET(pf_gguf_writer_set_f32(w, "phi3.rope.freq_base", (float)h.rope_theta, err));
    SET(pf_gguf_writer_set_u32(w, "general.file_type", file_type(p.outtype), err));
    SET(pf_gguf_writer_set_u32(w, "phi3.attention.sliding_window", (uint32_t)h.sliding_window, err));
    SET(pf_cv_add_vocab(w, dir, cfg, err));
    SET(pf_gguf_writer_set_u32(w, "general.quantization_version", 2, err));
    if (h.long_factor) SET(pf_gguf_writer_set_f32(w, "phi3.rope.scaling.attn_factor", (float)h.attn_factor, err));
#undef SET
    for (int64_t i = 0; i < np && rc == PF_OK; i++)
        rc = pf_gguf_writer_add_tensor(w, plan[i].name, plan[i].type, (uint32_t)plan[i].n_dims, plan[i].ne, NULL, err);
    if (rc != PF_OK) goto done;

    j.t = plan, j.n = np, j.p = &p;
    if (p.outtype == PF_TYPE_Q8_0) {
        j.buf_floats = (size_t)1 << 20;
        if ((j.buf = malloc(j.buf_floats * sizeof(float))) == NULL) {
            rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
            goto done;
        }
        if ((rc = pf_compute_create(1, PF_ISA_AUTO, &j.c, err)) != PF_OK) goto done;
    }
    rc = pf_gguf_writer_write(w, out_path, fill, &j, err);
done:
    free(j.buf);
    pf_compute_free(j.c);
    pf_gguf_writer_free(w);
    free(plan);
    pf_st_close(st);
    cJSON_Delete(cfg);
    return rc;
}
