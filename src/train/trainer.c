/* Trainer creation: parameter layout (per layer and adapted module, A then B), PEFT-style
 * initialisation, and one allocation of every activation, gradient and optimizer buffer for
 * rows of up to seq_len tokens, so that accumulate/step never allocate. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/trainer.h"

pf_train_params pf_train_default_params(void) {
    return (pf_train_params){.rank = 16, .alpha = 32.0f, .rslora = false, .dropout = 0.0f, .targets = PF_LORA_ALL,
                             .seq_len = 512, .grad_checkpoint = false, .seed = 42, .n_threads = 0,
                             .isa = PF_ISA_AUTO, .lr = 2e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                             .weight_decay = 0.0f, .clip = 1.0f, .warmup = 0, .total_steps = 1,
                             .schedule = PF_LR_COSINE};
}

/* splitmix64: the seeded stream of A's initial values */
static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int check_params(const pf_model_hparams *hp, const pf_train_params *p, pf_error *err) {
    if (p->rank < 1 || p->rank > 4096) return pf_error_set(err, PF_ERR_ARG, "trainer: rank %d is outside 1..4096", p->rank);
    if (!(p->alpha > 0.0f)) return pf_error_set(err, PF_ERR_ARG, "trainer: alpha %g must be > 0", (double)p->alpha);
    if (!(p->dropout >= 0.0f && p->dropout < 1.0f))
        return pf_error_set(err, PF_ERR_ARG, "trainer: dropout %g is outside [0, 1)", (double)p->dropout);
    if (p->targets == 0 || (p->targets & ~(uint32_t)PF_LORA_ALL))
        return pf_error_set(err, PF_ERR_ARG, "trainer: targets 0x%x: pick among qkv, o, gate_up, down", p->targets);
    if (p->seq_len < 1 || p->seq_len > hp->n_ctx_train)
        return pf_error_set(err, PF_ERR_ARG, "trainer: seq_len %lld is outside 1..%lld (the model's context)",
                            (long long)p->seq_len, (long long)hp->n_ctx_train);
    if (!(p->lr >= 0.0f) || !(p->beta1 >= 0.0f && p->beta1 < 1.0f) || !(p->beta2 >= 0.0f && p->beta2 < 1.0f) ||
        !(p->eps > 0.0f) || !(p->weight_decay >= 0.0f))
        return pf_error_set(err, PF_ERR_ARG, "trainer: AdamW needs lr >= 0, 0 <= beta < 1, eps > 0, weight decay >= 0");
    if (p->warmup < 0 || p->total_steps < 1 || (unsigned)p->schedule > PF_LR_CONSTANT)
        return pf_error_set(err, PF_ERR_ARG, "trainer: warmup %lld / total steps %lld / schedule %d invalid",
                            (long long)p->warmup, (long long)p->total_steps, (int)p->schedule);
    if (hp->head_dim > 256 || hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "trainer: head_dim %lld / n_rot %lld unsupported",
                            (long long)hp->head_dim, (long long)hp->n_rot);
    return PF_OK;
}

/* Bump allocator over one calloc'd block: every buffer 64-byte aligned. */
typedef struct arena {
    uint8_t *base;
    size_t used, cap;
} arena;

static float *take(arena *a, int64_t n_floats) {
    const size_t bytes = ((size_t)n_floats * sizeof(float) + 63) & ~(size_t)63;
    if (a->base == NULL) { /* sizing pass */
        a->used += bytes;
        return NULL;
    }
    float *p = (float *)(a->base + a->used);
    a->used += bytes;
    return p;
}

/* Lays out (sizing pass when a->base is NULL) every buffer. */
static void layout(pf_trainer *t, arena *a) {
    const pf_model_hparams *hp = &t->hp;
    const int64_t S = t->S, E = t->E, r = t->p.rank, L = hp->n_layer;
    int64_t max_io = t->Q > 2 * t->F ? t->Q : 2 * t->F;
    if (max_io < t->F) max_io = t->F;
    t->params = take(a, t->n_params), t->grads = take(a, t->n_params);
    t->adam_m = take(a, t->n_params), t->adam_v = take(a, t->n_params);
    t->rope = take(a, S * hp->n_rot);
    t->x_in = take(a, (L + 1) * S * E);
    const int64_t n_sets = t->p.grad_checkpoint ? 1 : L;
    for (int64_t s = 0; s < n_sets; s++) {
        train_acts *x = a->base ? &t->acts[s] : &(train_acts){0};
        x->xn1 = take(a, S * E), x->r1 = take(a, S), x->qkv = take(a, S * t->Q), x->lse = take(a, hp->n_head * S);
        x->att = take(a, S * E), x->x_mid = take(a, S * E), x->xn2 = take(a, S * E), x->r2 = take(a, S);
        x->gu = take(a, S * 2 * t->F), x->act = take(a, S * t->F);
        for (int k = 0; k < N_MOD; k++) x->u[k] = take(a, S * r);
    }
    t->xnf = take(a, S * E), t->rf = take(a, S), t->xc = take(a, S * E);
    t->rows = (int64_t *)take(a, 2 * S), t->tg = (int32_t *)take(a, S);
    t->logits = take(a, S * t->V);
    t->dx = take(a, S * E), t->dxn = take(a, S * E), t->dqkv = take(a, S * t->Q), t->datt = take(a, S * E);
    t->dgu = take(a, S * 2 * t->F), t->dact = take(a, S * t->F), t->du = take(a, S * r);
    t->tmp = take(a, S * max_io);
    t->gw_work = take(a, (int64_t)pf_pool_n_threads(pf_compute_pool(t->c)) * PF_TRAIN_PANEL);
}

/* pf_matmul keeps an internal work buffer that grows on demand: run each shape once with S
 * tokens now, so it is at its final size before the first step. */
static int reserve_matmul(pf_trainer *t, pf_error *err) {
    for (int64_t il = 0; il < t->hp.n_layer; il++)
        for (int k = 0; k < N_MOD; k++) {
            const pf_linear *l = t->lin[il * N_MOD + k];
            int rc = t->nf4 ? PF_OK : pf_matmul(t->c, l->w, l->type, 1, l->n_in, t->tmp, t->S, t->dx, err);
            if (rc == PF_OK && t->a_off[il * N_MOD + k] >= 0) {
                rc = pf_matmul(t->c, t->params, PF_TYPE_F32, 1, l->n_in, t->tmp, t->S, t->dx, err);
                if (rc == PF_OK) rc = pf_matmul(t->c, t->params, PF_TYPE_F32, 1, t->p.rank, t->tmp, t->S, t->dx, err);
            }
            if (rc != PF_OK) return rc;
        }
    const pf_linear *o = &t->m->output;
    return pf_matmul(t->c, o->w, o->type, 1, o->n_in, t->tmp, t->S, t->dx, err);
}

int pf_trainer_create(const pf_model *m, const pf_train_params *p, pf_trainer **out, pf_error *err) {
    if (m == NULL || p == NULL || out == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_trainer_create: NULL argument");
    if (p->full && p->qlora)
        return pf_error_set(err, PF_ERR_ARG, "pf_trainer_create: --full and --qlora exclude each other (QLoRA trains adapters "
                                             "on a frozen 4-bit base)");
    *out = NULL;
    const pf_model_hparams *hp = pf_model_get_hparams(m);
    int rc = check_params(hp, p, err);
    if (rc != PF_OK) return rc;
    pf_trainer *t = calloc(1, sizeof *t);
    if (t == NULL) return pf_error_set(err, PF_ERR_NOMEM, "pf_trainer_create: out of memory");
    t->m = m, t->hp = *hp, t->p = *p;
    t->S = p->seq_len, t->E = hp->n_embd, t->F = hp->n_ff, t->V = hp->n_vocab;
    t->Q = hp->n_embd + 2 * hp->n_head_kv * hp->head_dim;
    t->scale = p->rslora ? p->alpha / sqrtf((float)p->rank) : p->alpha / (float)p->rank;
    t->drop_threshold = (uint32_t)fmin(4294967295.0, (double)p->dropout * 4294967296.0);
    t->drop_scale = 1.0f / (1.0f - p->dropout);
    const int64_t L = hp->n_layer;
    t->a_off = malloc((size_t)(L * N_MOD) * sizeof *t->a_off);
    t->b_off = malloc((size_t)(L * N_MOD) * sizeof *t->b_off);
    t->lin = malloc((size_t)(L * N_MOD) * sizeof *t->lin);
    t->acts = calloc((size_t)(p->grad_checkpoint ? 1 : L), sizeof *t->acts);
    if (!t->a_off || !t->b_off || !t->lin || !t->acts) {
        pf_trainer_free(t);
        return pf_error_set(err, PF_ERR_NOMEM, "pf_trainer_create: out of memory");
    }
    for (int64_t il = 0; il < L; il++) {
        const pf_layer *ly = &m->layers[il];
        const pf_linear *ls[N_MOD] = {&ly->qkv, &ly->o, &ly->up, &ly->down};
        for (int k = 0; k < N_MOD; k++) {
            const int64_t i = il * N_MOD + k;
            t->lin[i] = ls[k];
            t->a_off[i] = t->b_off[i] = -1;
            if (p->full || !(p->targets & (1u << k))) continue;
            t->a_off[i] = t->n_params, t->n_params += p->rank * ls[k]->n_in;
            t->b_off[i] = t->n_params, t->n_params += ls[k]->n_out * p->rank;
        }
    }
    if ((p->full && (rc = pf_train_full_plan(t, m, err)) != PF_OK) ||
        (rc = pf_compute_create(p->n_threads, p->isa, &t->c, err)) != PF_OK) {
        pf_trainer_free(t);
        return rc;
    }
    arena a = {0};
    layout(t, &a);
    a.cap = a.used;
    a.base = aligned_alloc(64, a.cap);
    if (a.base == NULL) {
        pf_trainer_free(t);
        return pf_error_set(err, PF_ERR_NOMEM, "pf_trainer_create: out of memory for %.1f MiB of training buffers",
                            (double)a.cap / 1048576.0);
    }
    memset(a.base, 0, a.cap);
    a.used = 0;
    layout(t, &a);
    t->arena = a.base;
    t->arena_bytes = a.cap;
    /* LongRoPE: the long factors iff the training window exceeds the original context (the
     * inference context's rule, src/model/context.c) */
    const float *ff = !hp->has_rope_factors ? NULL : t->S > hp->n_ctx_orig ? m->rope_long.v : m->rope_short.v;
    pf_train_rope_table(hp, ff, t->S, t->rope);
    /* PEFT init: A ~ U(−1/√n_in, 1/√n_in) (kaiming_uniform with a = √5), B = 0 */
    uint64_t s = p->seed;
    for (int64_t i = 0; i < L * N_MOD; i++) {
        if (t->a_off[i] < 0) continue;
        const float bound = 1.0f / sqrtf((float)t->lin[i]->n_in);
        float *A = t->params + t->a_off[i];
        for (int64_t j = 0; j < p->rank * t->lin[i]->n_in; j++)
            A[j] = bound * (float)((double)(splitmix(&s) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
    }
    if (p->qlora && (rc = pf_train_qlora_build(t, err)) != PF_OK) {
        pf_trainer_free(t);
        return rc;
    }
    if ((p->full && (rc = pf_train_full_bind(t, m, err)) != PF_OK) || (rc = reserve_matmul(t, err)) != PF_OK) {
        pf_trainer_free(t);
        return rc;
    }
    *out = t;
    return PF_OK;
}

void pf_trainer_free(pf_trainer *t) {
    if (t == NULL) return;
    pf_train_qlora_free(t);
    pf_compute_free(t->c);
    free(t->arena);
    free(t->a_off), free(t->b_off), free(t->lin), free(t->acts);
    free(t->full_t), free(t->full_layers);
    free(t);
}

int64_t pf_trainer_n_params(const pf_trainer *t) { return t->n_params; }
int64_t pf_trainer_steps_done(const pf_trainer *t) { return t->step; }
float *pf_trainer_params_data(pf_trainer *t) { return t->params; }
float *pf_trainer_grads_data(pf_trainer *t) { return t->grads; }

int pf_trainer_export(const pf_trainer *t, pf_lora_weights *out, pf_error *err) {
    if (t == NULL || out == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_trainer_export: NULL argument");
    memset(out, 0, sizeof *out);
    if (t->p.full)
        return pf_error_set(err, PF_ERR_ARG, "pf_trainer_export: a full fine-tuning trainer has no adapters "
                                             "(pf_trainer_save_model writes the model)");
    int64_t n = 0;
    for (int64_t i = 0; i < t->hp.n_layer * N_MOD; i++) n += t->a_off[i] >= 0;
    out->pairs = calloc((size_t)n, sizeof *out->pairs);
    if (out->pairs == NULL) return pf_error_set(err, PF_ERR_NOMEM, "pf_trainer_export: out of memory");
    out->alpha = t->p.alpha, out->rank = t->p.rank, out->rslora = t->p.rslora, out->dropout = t->p.dropout;
    const char *name = NULL;
    pf_gguf_get_str(pf_model_gguf(t->m), "general.name", &name, NULL);
    snprintf(out->base_model, sizeof out->base_model, "%s", name ? name : "phi3");
    for (int64_t i = 0; i < t->hp.n_layer * N_MOD; i++) {
        if (t->a_off[i] < 0) continue;
        pf_lora_pair *pr = &out->pairs[out->n++];
        const pf_linear *l = t->lin[i];
        snprintf(pr->base, sizeof pr->base, "%s", l->t->name);
        pr->n_in = l->n_in, pr->n_out = l->n_out, pr->r = t->p.rank;
        const size_t na = (size_t)(pr->r * pr->n_in), nb = (size_t)(pr->n_out * pr->r);
        pr->a = malloc(na * sizeof(float));
        pr->b = malloc(nb * sizeof(float));
        if (pr->a == NULL || pr->b == NULL) {
            pf_lora_weights_clear(out);
            return pf_error_set(err, PF_ERR_NOMEM, "pf_trainer_export: out of memory");
        }
        memcpy(pr->a, t->params + t->a_off[i], na * sizeof(float));
        memcpy(pr->b, t->params + t->b_off[i], nb * sizeof(float));
    }
    return PF_OK;
}
