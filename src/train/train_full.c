/* Full fine-tuning (pf_train_params.full): every weight of the model is trainable.
 *
 * The trainer keeps an f32 copy of each weight tensor in its flat parameter vector (so grads,
 * AdamW's m and v have the same layout: 4 f32 copies of the model in all) and a shadow pf_model
 * whose linears, norm vectors and embedding point into that copy as F32 tensors. The forward and
 * backward of train_model.c then run unchanged on the shadow; they add the weight gradients
 *   dW += gᵀx          (every linear, pf_train_matmul_gtx)
 *   dg_i += Σ_t dy_ti x_ti r_t   (every RMSNorm, pf_train_rmsnorm_bwd)
 *   dE[id_t] += dx⁰_t  (the embedding rows used, pf_train_full_embed_bwd)
 * through pf_train_grad_of. Layout of the parameters (what tests and checkpoints see):
 *   [attn_norm, ffn_norm per layer, output_norm]   <- n_nodecay: no weight decay, as HF does
 *   [qkv, o, gate_up, down per layer, output (absent when tied to token_embd), token_embd]
 * Only F32/F16/BF16 weights are accepted: a quantized model would be written back rounded to its
 * grid, which loses most small updates (fine-tune those with LoRA/QLoRA). */
#include <stdlib.h>
#include <string.h>

#include "train/trainer.h"

static bool plain_type(pf_type ty) { return ty == PF_TYPE_F32 || ty == PF_TYPE_F16 || ty == PF_TYPE_BF16; }

static int add(pf_trainer *t, const pf_tensor_info *ti, pf_error *err) {
    if (ti == NULL) return pf_error_set(err, PF_ERR_FORMAT, "full fine-tuning: the model lacks a weight tensor");
    if (!plain_type(ti->type))
        return pf_error_set(err, PF_ERR_UNSUPPORTED,
                            "full fine-tuning: tensor %s is %s; only F32/F16/BF16 models can be fully fine-tuned "
                            "(use LoRA on quantized models, or convert the Hugging Face checkpoint with --type f16)",
                            ti->name, pf_type_name(ti->type));
    for (int64_t i = 0; i < t->n_full_t; i++)
        if (t->full_t[i].ti == ti) return PF_OK; /* tied output = token_embd: one parameter */
    t->full_t[t->n_full_t++] = (pf_train_full_tensor){ti, t->n_params};
    t->n_params += pf_tensor_nelements(ti);
    return PF_OK;
}

int pf_train_full_plan(pf_trainer *t, const pf_model *m, pf_error *err) {
    const int64_t L = t->hp.n_layer;
    t->full_t = calloc((size_t)(6 * L + 3), sizeof *t->full_t);
    t->full_layers = calloc((size_t)L, sizeof *t->full_layers);
    if (!t->full_t || !t->full_layers) return pf_error_set(err, PF_ERR_NOMEM, "full fine-tuning: out of memory");
    if (t->p.dropout > 0.0f)
        return pf_error_set(err, PF_ERR_ARG, "full fine-tuning: dropout %g applies to LoRA adapters only; use 0",
                            (double)t->p.dropout);
    int rc = PF_OK;
    for (int64_t il = 0; il < L && rc == PF_OK; il++) {
        rc = add(t, m->layers[il].attn_norm.t, err);
        if (rc == PF_OK) rc = add(t, m->layers[il].ffn_norm.t, err);
    }
    if (rc == PF_OK) rc = add(t, m->output_norm.t, err);
    t->n_nodecay = t->n_params;
    for (int64_t il = 0; il < L && rc == PF_OK; il++) {
        const pf_layer *ly = &m->layers[il];
        const pf_linear *ls[N_MOD] = {&ly->qkv, &ly->o, &ly->up, &ly->down};
        for (int k = 0; k < N_MOD && rc == PF_OK; k++) rc = add(t, ls[k]->t, err);
    }
    if (rc == PF_OK && m->output.t != m->tok_embd) rc = add(t, m->output.t, err);
    if (rc == PF_OK) rc = add(t, m->tok_embd, err);
    return rc;
}

static float *param_of(pf_trainer *t, const pf_tensor_info *ti) {
    for (int64_t i = 0; i < t->n_full_t; i++)
        if (t->full_t[i].ti == ti) return t->params + t->full_t[i].off;
    return NULL; /* unreachable: plan added every tensor the shadow uses */
}

static void bind_linear(pf_trainer *t, pf_linear *l) {
    l->w = param_of(t, l->t);
    l->type = PF_TYPE_F32;
}

int pf_train_full_bind(pf_trainer *t, const pf_model *m, pf_error *err) {
    for (int64_t i = 0; i < t->n_full_t; i++) { /* params = the weights in f32 */
        const pf_tensor_info *ti = t->full_t[i].ti;
        int rc = pf_dequantize(t->c, ti->data, ti->type, pf_tensor_nelements(ti) / ti->ne[0], ti->ne[0],
                               t->params + t->full_t[i].off, err);
        if (rc != PF_OK) return rc;
    }
    t->full_m = *m;
    t->full_m.owned = NULL; /* the shadow owns nothing: the base model stays the caller's */
    t->full_m.layers = t->full_layers;
    for (int64_t il = 0; il < t->hp.n_layer; il++) {
        pf_layer *ly = &t->full_layers[il];
        *ly = m->layers[il];
        ly->attn_norm.v = param_of(t, ly->attn_norm.t), ly->ffn_norm.v = param_of(t, ly->ffn_norm.t);
        bind_linear(t, &ly->qkv), bind_linear(t, &ly->o), bind_linear(t, &ly->up), bind_linear(t, &ly->down);
        pf_linear *ls[N_MOD] = {&ly->qkv, &ly->o, &ly->up, &ly->down};
        for (int k = 0; k < N_MOD; k++) t->lin[il * N_MOD + k] = ls[k];
    }
    t->full_m.output_norm.v = param_of(t, m->output_norm.t);
    bind_linear(t, &t->full_m.output);
    t->full_embd = *m->tok_embd;
    t->full_embd.type = PF_TYPE_F32;
    t->full_embd.data = param_of(t, m->tok_embd);
    t->full_embd.nbytes = (size_t)pf_tensor_nelements(m->tok_embd) * sizeof(float);
    t->full_m.tok_embd = &t->full_embd;
    t->base = m;
    t->m = &t->full_m;
    return PF_OK;
}

void pf_train_full_embed_bwd(pf_trainer *t, const pf_train_row *row, const float *dx) {
    float *de = pf_train_grad_of(t, t->full_embd.data);
    for (int64_t r = 0; r < row->n; r++) {
        float *d = de + (int64_t)row->ids[r] * t->E;
        const float *g = dx + r * t->E;
        for (int64_t i = 0; i < t->E; i++) d[i] += g[i];
    }
}

/* ---- the fine-tuned model as GGUF: the base file with the trained tensors replaced --------- */

typedef struct save_job {
    pf_trainer *t;
    const pf_gguf *g;
    const int64_t *off; /* per tensor of g: offset in params, -1: copied from the base */
} save_job;

static int fill(void *ctx, int64_t i, void *dst, size_t nbytes, pf_error *err) {
    const save_job *j = ctx;
    const pf_tensor_info *ti = pf_gguf_tensor(j->g, i);
    const int64_t rows = pf_tensor_nelements(ti) / ti->ne[0];
    if (pf_row_size(ti->type, ti->ne[0]) * (size_t)rows != nbytes)
        return pf_error_set(err, PF_ERR_ARG, "save model: size mismatch for %s", ti->name);
    return pf_quantize(j->t->c, j->t->params + j->off[i], ti->type, rows, ti->ne[0], dst, err);
}

int pf_trainer_save_model(pf_trainer *t, const char *path, pf_error *err) {
    if (t == NULL || path == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_trainer_save_model: NULL argument");
    if (!t->p.full)
        return pf_error_set(err, PF_ERR_ARG, "pf_trainer_save_model: this trainer trains LoRA adapters (export them)");
    const pf_gguf *g = pf_model_gguf(t->base);
    const int64_t nt = pf_gguf_n_tensors(g);
    int64_t *off = malloc((size_t)(nt + 1) * sizeof *off);
    pf_gguf_writer *w = NULL;
    if (off == NULL) return pf_error_set(err, PF_ERR_NOMEM, "pf_trainer_save_model: out of memory");
    int rc = pf_gguf_writer_create(&w, err);
    if (rc == PF_OK) rc = pf_gguf_writer_copy_kvs(w, g, err);
    for (int64_t i = 0; i < nt && rc == PF_OK; i++) {
        const pf_tensor_info *ti = pf_gguf_tensor(g, i);
        off[i] = -1;
        for (int64_t k = 0; k < t->n_full_t; k++)
            if (!strcmp(t->full_t[k].ti->name, ti->name)) off[i] = t->full_t[k].off;
        rc = pf_gguf_writer_add_tensor(w, ti->name, ti->type, ti->n_dims, ti->ne, off[i] >= 0 ? NULL : ti->data, err);
    }
    save_job j = {t, g, off};
    if (rc == PF_OK) rc = pf_gguf_writer_write(w, path, fill, &j, err);
    pf_gguf_writer_free(w);
    free(off);
    return rc;
}
