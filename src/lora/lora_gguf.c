/* LoRA weights <-> llama.cpp LoRA GGUF (spec §7.1): keys general.architecture, general.type
 * "adapter", adapter.type "lora", adapter.lora.alpha; per pair <base>.lora_a ne [n_in, r] and
 * <base>.lora_b ne [r, n_out], whose bytes are A (r × n_in) and B (n_out × r) row-major. The
 * writer reproduces the layout of llama.cpp's convert_lora_to_gguf.py (those four keys in that
 * order, lora_a then lora_b per pair), so the golden adapter reads and writes back byte for
 * byte. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora_internal.h"

typedef struct save_ctx {
    const pf_lora_weights *w;
    pf_type t;
} save_ctx;

/* Writer callback: tensor 2i is pair i's A, 2i+1 its B, converted to the file type. */
static int fill(void *ctx, int64_t i, void *dst, size_t nbytes, pf_error *err) {
    const save_ctx *s = ctx;
    const pf_lora_pair *p = &s->w->pairs[i / 2];
    const float *src = i % 2 ? p->b : p->a;
    const int64_t n = p->r * (i % 2 ? p->n_out : p->n_in);
    if (nbytes != pf_row_size(s->t, n)) return pf_error_set(err, PF_ERR_ARG, "LoRA save: size mismatch for %s", p->base);
    pf_type_get(s->t)->from_float(src, dst, n);
    return PF_OK;
}

static int check_pairs(const pf_lora_weights *w, const char *what, pf_error *err) {
    if (w->n < 1) return pf_error_set(err, PF_ERR_ARG, "%s: the adapter has no pairs", what);
    for (int64_t i = 0; i < w->n; i++) {
        const pf_lora_pair *p = &w->pairs[i];
        if (!p->a || !p->b || p->r < 1 || p->n_in < 1 || p->n_out < 1 || !memchr(p->base, 0, sizeof p->base) || !p->base[0])
            return pf_error_set(err, PF_ERR_ARG, "%s: pair %lld (%.96s) is incomplete", what, (long long)i, p->base);
        if (w->rslora && p->r != w->pairs[0].r)
            return pf_error_set(err, PF_ERR_UNSUPPORTED,
                                "%s: rsLoRA with ranks %lld and %lld cannot be one adapter.lora.alpha", what,
                                (long long)w->pairs[0].r, (long long)p->r);
    }
    return PF_OK;
}

int pf_lora_save_gguf(const pf_lora_weights *w, const pf_model *base, const char *path, pf_type t, pf_error *err) {
    if (!w || !path) return pf_error_set(err, PF_ERR_ARG, "pf_lora_save_gguf: NULL argument");
    if (t != PF_TYPE_F32 && t != PF_TYPE_F16)
        return pf_error_set(err, PF_ERR_ARG, "%s: LoRA tensors are written as F32 or F16, not %s", path, pf_type_name(t));
    int rc = check_pairs(w, path, err);
    if (rc == PF_OK) rc = pf_lora_check_base(w, base, path, err);
    if (rc != PF_OK) return rc;
    const char *arch = "phi3";
    if (base) pf_gguf_get_str(pf_model_gguf(base), "general.architecture", &arch, NULL);
    /* llama.cpp scales by alpha / r; rsLoRA wants alpha / sqrt(r) = (alpha·sqrt(r)) / r. */
    const float alpha = w->rslora ? w->alpha * sqrtf((float)w->pairs[0].r) : w->alpha;
    pf_gguf_writer *g = NULL;
    rc = pf_gguf_writer_create(&g, err);
    if (rc == PF_OK) rc = pf_gguf_writer_set_str(g, "general.architecture", arch, err);
    if (rc == PF_OK) rc = pf_gguf_writer_set_str(g, "general.type", "adapter", err);
    if (rc == PF_OK) rc = pf_gguf_writer_set_str(g, "adapter.type", "lora", err);
    if (rc == PF_OK) rc = pf_gguf_writer_set_f32(g, "adapter.lora.alpha", alpha, err);
    for (int64_t i = 0; rc == PF_OK && i < w->n; i++) {
        const pf_lora_pair *p = &w->pairs[i];
        char name[128];
        const int64_t ne_a[2] = {p->n_in, p->r}, ne_b[2] = {p->r, p->n_out};
        snprintf(name, sizeof name, "%s.lora_a", p->base);
        rc = pf_gguf_writer_add_tensor(g, name, t, 2, ne_a, t == PF_TYPE_F32 ? p->a : NULL, err);
        snprintf(name, sizeof name, "%s.lora_b", p->base);
        if (rc == PF_OK) rc = pf_gguf_writer_add_tensor(g, name, t, 2, ne_b, t == PF_TYPE_F32 ? p->b : NULL, err);
    }
    save_ctx s = {w, t};
    if (rc == PF_OK) rc = pf_gguf_writer_write(g, path, fill, &s, err);
    pf_gguf_writer_free(g);
    return rc;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Dequantizes a GGUF tensor into a new f32 array. */
static int to_f32(const char *path, const pf_tensor_info *t, float **out, pf_error *err) {
    const pf_type_traits *tr = pf_type_get(t->type);
    const int64_t n = pf_tensor_nelements(t);
    if (!tr || !tr->to_float || !tr->is_weight)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: tensor %s: type %s cannot be read", path, t->name,
                            pf_type_name(t->type));
    if (t->ne[0] % tr->block_size)
        return pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: ne[0] %lld is not whole %s blocks", path, t->name,
                            (long long)t->ne[0], tr->name);
    if (!(*out = malloc((size_t)n * sizeof **out))) return pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
    tr->to_float(t->data, *out, n);
    return PF_OK;
}


int pf_lora_read_gguf(const char *path, pf_lora_weights *w, pf_error *err) {
    pf_gguf *g = NULL;
    int rc = pf_gguf_open(path, &g, err);
    if (rc != PF_OK) return rc;
    const char *s = NULL;
    double alpha = 0;
    if (pf_gguf_get_str(g, "general.type", &s, NULL) != PF_OK || strcmp(s, "adapter") != 0)
        rc = pf_error_set(err, PF_ERR_FORMAT, "%s: general.type is '%s', expected 'adapter'", path, s ? s : "(absent)");
    else if (s = NULL, pf_gguf_get_str(g, "adapter.type", &s, NULL) != PF_OK || strcmp(s, "lora") != 0)
        rc = pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: adapter.type is '%s', expected 'lora'", path, s ? s : "(absent)");
    else if ((rc = pf_gguf_get_float(g, "adapter.lora.alpha", &alpha, err)) == PF_ERR_NOT_FOUND)
        rc = PF_OK, alpha = 0;
    w->alpha = (float)alpha;
    if (rc == PF_OK && pf_gguf_get_str(g, "general.name", &s, NULL) == PF_OK)
        snprintf(w->base_model, sizeof w->base_model, "%s", s);
    for (int64_t i = 0; rc == PF_OK && i < pf_gguf_n_tensors(g); i++) {
        const pf_tensor_info *t = pf_gguf_tensor(g, i);
        if (ends_with(t->name, "_norm.weight")) continue;
        const bool is_a = ends_with(t->name, ".lora_a");
        if (!is_a && !ends_with(t->name, ".lora_b")) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: name ends neither in .lora_a nor .lora_b", path, t->name);
            break;
        }
        const size_t len = strlen(t->name) - 7;
        char base[96], other[128];
        if (len >= sizeof base) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: name too long", path, t->name);
            break;
        }
        memcpy(base, t->name, len), base[len] = 0;
        snprintf(other, sizeof other, "%s.lora_%c", base, is_a ? 'b' : 'a');
        const int64_t oi = pf_gguf_find_tensor(g, other);
        if (oi < 0) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: its %s is missing", path, t->name, other);
            break;
        }
        if (!is_a) continue; /* pairs are formed from the lora_a side */
        const pf_tensor_info *tb = pf_gguf_tensor(g, oi);
        if (t->n_dims > 2 || tb->n_dims > 2 || t->ne[1] != tb->ne[0] || t->ne[1] < 1) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: lora_a ne [%lld, %lld] and lora_b ne [%lld, %lld] do not pair",
                              path, t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)tb->ne[0],
                              (long long)tb->ne[1]);
            break;
        }
        for (int64_t j = 0; j < w->n && rc == PF_OK; j++)
            if (!strcmp(w->pairs[j].base, base)) rc = pf_error_set(err, PF_ERR_FORMAT, "%s: tensor %s: duplicate", path, t->name);
        pf_lora_pair *p = rc == PF_OK ? pf_lora_weights_add(w) : NULL;
        if (rc == PF_OK && !p) rc = pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
        if (rc != PF_OK) break;
        memcpy(p->base, base, len + 1);
        p->n_in = t->ne[0], p->r = t->ne[1], p->n_out = tb->ne[1];
        rc = to_f32(path, t, &p->a, err);
        if (rc == PF_OK) rc = to_f32(path, tb, &p->b, err);
        if (p->r > w->rank) w->rank = (int32_t)p->r;
    }
    if (rc == PF_OK && w->n == 0) rc = pf_error_set(err, PF_ERR_FORMAT, "%s: the adapter holds no lora_a/lora_b pairs", path);
    pf_gguf_close(g);
    return rc;
}
