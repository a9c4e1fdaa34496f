/* In-memory LoRA weights: clearing, per-pair scale, the Phi-3 GGUF <-> PEFT module names, and
 * checks against the base model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora/lora_internal.h"
#include "model/model_internal.h"

void pf_lora_weights_clear(pf_lora_weights *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n; i++) free(w->pairs[i].a), free(w->pairs[i].b);
    free(w->pairs);
    memset(w, 0, sizeof *w);
}

float pf_lora_pair_scale(const pf_lora_weights *w, const pf_lora_pair *p) {
    if (!w || !p || w->alpha == 0.0f || p->r <= 0) return 1.0f;
    return w->rslora ? w->alpha / sqrtf((float)p->r) : w->alpha / (float)p->r;
}

pf_lora_pair *pf_lora_weights_add(pf_lora_weights *w) {
    pf_lora_pair *p = realloc(w->pairs, (size_t)(w->n + 1) * sizeof *p);
    if (!p) return NULL;
    w->pairs = p;
    memset(&p[w->n], 0, sizeof *p);
    return &p[w->n++];
}

/* The four fused linears of a Phi-3 block: GGUF suffix and HF module suffix. */
static const char *const gguf_names[4] = {"attn_qkv.weight", "attn_output.weight", "ffn_up.weight", "ffn_down.weight"};
static const char *const hf_names[4] = {"self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"};

/* Parses "<prefix><layer>.<rest>"; returns rest or NULL. */
static const char *layer_of(const char *s, const char *prefix, long *layer) {
    const size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0) return NULL;
    char *end = NULL;
    if (s[n] < '0' || s[n] > '9') return NULL;
    *layer = strtol(s + n, &end, 10);
    if (*end != '.' || *layer < 0 || *layer > 100000) return NULL;
    return end + 1;
}

bool pf_lora_peft_module(const char *base, char *out, size_t cap) {
    if (!base || !out) return false;
    if (!strcmp(base, "output.weight")) return (size_t)snprintf(out, cap, "lm_head") < cap;
    long L;
    const char *rest = layer_of(base, "blk.", &L);
    for (int k = 0; rest && k < 4; k++)
        if (!strcmp(rest, gguf_names[k])) return (size_t)snprintf(out, cap, "model.layers.%ld.%s", L, hf_names[k]) < cap;
    return false;
}

bool pf_lora_gguf_base(const char *module, char *out, size_t cap) {
    if (!module || !out) return false;
    if (!strcmp(module, "lm_head")) return (size_t)snprintf(out, cap, "output.weight") < cap;
    long L;
    const char *rest = layer_of(module, "model.layers.", &L);
    for (int k = 0; rest && k < 4; k++)
        if (!strcmp(rest, hf_names[k])) return (size_t)snprintf(out, cap, "blk.%ld.%s", L, gguf_names[k]) < cap;
    return false;
}

/* Order key of a GGUF base name: layer * 4 + kind, output after every layer. */
static long order_key(const char *base) {
    if (!strcmp(base, "output.weight")) return 1L << 40;
    long L;
    const char *rest = layer_of(base, "blk.", &L);
    for (int k = 0; rest && k < 4; k++)
        if (!strcmp(rest, gguf_names[k])) return L * 4 + k;
    return (1L << 40) + 1;
}

static int cmp_pairs(const void *x, const void *y) {
    const pf_lora_pair *a = x, *b = y;
    const long ka = order_key(a->base), kb = order_key(b->base);
    if (ka != kb) return ka < kb ? -1 : 1;
    return strcmp(a->base, b->base);
}

void pf_lora_sort_pairs(pf_lora_weights *w) {
    if (w && w->n > 1) qsort(w->pairs, (size_t)w->n, sizeof *w->pairs, cmp_pairs);
}

bool pf_lora_base_shape(const pf_model *m, const char *name, int64_t *n_in, int64_t *n_out) {
    const pf_linear *l = NULL;
    if (!strcmp(name, "output.weight")) l = &m->output;
    for (int64_t i = 0; !l && i < m->hp.n_layer; i++) {
        const pf_layer *L = &m->layers[i];
        const pf_linear *c[4] = {&L->qkv, &L->o, &L->up, &L->down};
        for (int k = 0; k < 4 && !l; k++)
            if (c[k]->t && !strcmp(c[k]->t->name, name)) l = c[k];
    }
    if (!l || (l == &m->output && (!l->t || strcmp(l->t->name, "output.weight") != 0))) return false;
    *n_in = l->n_in, *n_out = l->n_out;
    return true;
}

int pf_lora_check_base(const pf_lora_weights *w, const pf_model *m, const char *what, pf_error *err) {
    for (int64_t i = 0; m && i < w->n; i++) {
        const pf_lora_pair *p = &w->pairs[i];
        int64_t n_in, n_out;
        if (!pf_lora_base_shape(m, p->base, &n_in, &n_out))
            return pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: pair %s: the model has no linear weight of that name", what,
                                p->base);
        if (p->n_in != n_in || p->n_out != n_out)
            return pf_error_set(err, PF_ERR_FORMAT,
                                "%s: pair %s: shape %lld -> %lld does not fit the base weight (%lld -> %lld)", what,
                                p->base, (long long)p->n_in, (long long)p->n_out, (long long)n_in, (long long)n_out);
    }
    return PF_OK;
}
