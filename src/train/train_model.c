/* Forward and backward of the whole Phi-3 model for one training row, LoRA on the linears:
 *   x⁰ = E[ids]
 *   per layer l:  x_mid = x + Wo·Attn(RoPE(Wqkv·N1(x)))        (each W·v also + s·B(A·drop(v)))
 *                 x'    = x_mid + Wdown·SwiGLU(Wgu·N2(x_mid))
 *   loss = Σ_{t: y_t ≥ 0} CE(Wout·Nf(x^L)_t, y_t) / norm
 * Backward walks the same ops in reverse with their *_bwd pairs; the residual gradient dx is
 * carried through each block and the norms' gradients are added into it. With gradient
 * checkpointing a layer's activations are recomputed from its stored input just before its
 * backward (same dropout masks: they are a function of (seed, row counter, layer, module)). */
#include <math.h>
#include <string.h>

#include "train/trainer.h"

/* Dropout key of (row counter, layer, module): mixed once, then hashed with (t, i). */
static uint64_t drop_key(const pf_trainer *t, int64_t il, int k) {
    return t->p.seed * 0xA24BAED4963EE407ull ^ (uint64_t)t->n_micro * 0x9FB21C651E98DF25ull ^
           (uint64_t)(il * N_MOD + k + 1) * 0xC2B2AE3D27D4EB4Full;
}

/* dst = drop(x) = x·mask/(1 − p) (mask from the key). */
static void dropout(const pf_trainer *t, uint64_t key, const float *x, int64_t n, int64_t dim, float *dst) {
    for (int64_t r = 0; r < n; r++)
        for (int64_t i = 0; i < dim; i++)
            dst[r * dim + i] = pf_train_keep(key, r, i, t->drop_threshold) ? x[r * dim + i] * t->drop_scale : 0.0f;
}

/* y = x·Wᵀ + s·(A·drop(x))ᵀ·Bᵀ; u = drop(x)·Aᵀ kept for backward. `train` enables dropout. */
static int lin_fwd(pf_trainer *t, int64_t il, int k, const float *x, int64_t n, float *y, float *u, bool train,
                   pf_error *err) {
    const pf_linear *l = t->lin[il * N_MOD + k];
    int rc = t->nf4 ? pf_nf4_matmul(t->c, &t->nf4[il * N_MOD + k], x, n, y, err)
                    : pf_matmul(t->c, l->w, l->type, l->n_out, l->n_in, x, n, y, err);
    const int64_t ao = t->a_off[il * N_MOD + k];
    if (rc != PF_OK || ao < 0) return rc;
    const float *xin = x;
    if (train && t->p.dropout > 0.0f) {
        dropout(t, drop_key(t, il, k), x, n, l->n_in, t->tmp);
        xin = t->tmp;
    }
    const int64_t r = t->p.rank;
    if ((rc = pf_matmul(t->c, t->params + ao, PF_TYPE_F32, r, l->n_in, xin, n, u, err)) != PF_OK) return rc;
    if ((rc = pf_matmul(t->c, t->params + t->b_off[il * N_MOD + k], PF_TYPE_F32, l->n_out, r, u, n, t->tmp, err)))
        return rc;
    const int64_t len = n * l->n_out;
    for (int64_t i = 0; i < len; i++) y[i] += t->scale * t->tmp[i];
    return PF_OK;
}

/* dx = dy·W (+ the adapter's path), and the adapter's gradients:
 *   dB += s·dyᵀu,  du = s·dy·B,  dA += duᵀ·drop(x),  dx += drop'(du·A).
 * dx NULL: only the adapter's gradients (the first layer's input needs no gradient). */
static void lin_bwd(pf_trainer *t, int64_t il, int k, const float *x, const float *u, const float *dy, int64_t n,
                    float *dx) {
    const pf_linear *l = t->lin[il * N_MOD + k];
    if (dx && t->nf4) pf_nf4_matmul_t(t->c, &t->nf4[il * N_MOD + k], dy, n, dx, NULL); /* shapes checked at creation */
    else if (dx) pf_train_matmul_gw(t->c, l->w, l->type, l->n_out, l->n_in, dy, n, dx, false, t->gw_work);
    if (t->p.full) pf_train_matmul_gtx(t->c, dy, l->n_out, x, l->n_in, n, 1.0f, pf_train_grad_of(t, l->w));
    const int64_t ao = t->a_off[il * N_MOD + k], bo = t->b_off[il * N_MOD + k], r = t->p.rank;
    if (ao < 0) return;
    pf_train_matmul_gtx(t->c, dy, l->n_out, u, r, n, t->scale, t->grads + bo);
    pf_train_matmul_gw(t->c, t->params + bo, PF_TYPE_F32, l->n_out, r, dy, n, t->du, false, t->gw_work);
    for (int64_t i = 0; i < n * r; i++) t->du[i] *= t->scale;
    const bool drop = t->p.dropout > 0.0f;
    const uint64_t key = drop_key(t, il, k);
    const float *xin = x;
    if (drop) {
        dropout(t, key, x, n, l->n_in, t->tmp);
        xin = t->tmp;
    }
    pf_train_matmul_gtx(t->c, t->du, r, xin, l->n_in, n, 1.0f, t->grads + ao);
    if (!dx) return;
    pf_train_matmul_gw(t->c, t->params + ao, PF_TYPE_F32, r, l->n_in, t->du, n, t->tmp, false, t->gw_work);
    for (int64_t row = 0; row < n; row++)
        for (int64_t i = 0; i < l->n_in; i++) {
            const float v = t->tmp[row * l->n_in + i];
            if (!drop) dx[row * l->n_in + i] += v;
            else if (pf_train_keep(key, row, i, t->drop_threshold)) dx[row * l->n_in + i] += v * t->drop_scale;
        }
}

static void add(float *y, const float *a, const float *b, int64_t len) {
    for (int64_t i = 0; i < len; i++) y[i] = a[i] + b[i];
}

/* One decoder layer: xout = layer(xin); activations into A. */
static int layer_fwd(pf_trainer *t, int64_t il, train_acts *A, const float *xin, float *xout, const pf_train_row *row,
                     bool train, pf_error *err) {
    const pf_layer *L = &t->m->layers[il];
    const int64_t n = row->n, E = t->E;
    pf_train_rmsnorm_fwd(t->c, xin, L->attn_norm.v, n, E, t->hp.rms_eps, A->xn1, A->r1);
    int rc = lin_fwd(t, il, MOD_QKV, A->xn1, n, A->qkv, A->u[MOD_QKV], train, err);
    if (rc != PF_OK) return rc;
    pf_train_rope(t->c, &t->hp, t->rope, row->pos, n, A->qkv, t->Q, false);
    pf_train_attn_fwd(t->c, &t->hp, A->qkv, row->seg, n, A->att, A->lse);
    if ((rc = lin_fwd(t, il, MOD_O, A->att, n, xout, A->u[MOD_O], train, err)) != PF_OK) return rc;
    add(A->x_mid, xin, xout, n * E);
    pf_train_rmsnorm_fwd(t->c, A->x_mid, L->ffn_norm.v, n, E, t->hp.rms_eps, A->xn2, A->r2);
    if ((rc = lin_fwd(t, il, MOD_UP, A->xn2, n, A->gu, A->u[MOD_UP], train, err)) != PF_OK) return rc;
    pf_train_swiglu_fwd(t->c, A->gu, n, t->F, A->act);
    if ((rc = lin_fwd(t, il, MOD_DOWN, A->act, n, xout, A->u[MOD_DOWN], train, err)) != PF_OK) return rc;
    add(xout, xout, A->x_mid, n * E);
    return PF_OK;
}

/* dx: gradient w.r.t. the layer's output on entry, w.r.t. its input on return. */
static void layer_bwd(pf_trainer *t, int64_t il, const train_acts *A, const float *xin, const pf_train_row *row,
                      float *dx) {
    const pf_layer *L = &t->m->layers[il];
    const int64_t n = row->n, E = t->E;
    lin_bwd(t, il, MOD_DOWN, A->act, A->u[MOD_DOWN], dx, n, t->dact);
    pf_train_swiglu_bwd(t->c, A->gu, t->dact, n, t->F, t->dgu);
    lin_bwd(t, il, MOD_UP, A->xn2, A->u[MOD_UP], t->dgu, n, t->dxn);
    pf_train_rmsnorm_bwd(t->c, A->x_mid, L->ffn_norm.v, A->r2, t->dxn, n, E, dx,
                         pf_train_grad_of(t, L->ffn_norm.v));
    lin_bwd(t, il, MOD_O, A->att, A->u[MOD_O], dx, n, t->datt);
    pf_train_attn_bwd(t->c, &t->hp, A->qkv, row->seg, A->att, A->lse, t->datt, n, t->dqkv);
    pf_train_rope(t->c, &t->hp, t->rope, row->pos, n, t->dqkv, t->Q, true);
    /* below layer 0 is the embedding: its input gradient is needed only when it trains (full) */
    const bool need_dx = il > 0 || t->p.full;
    lin_bwd(t, il, MOD_QKV, A->xn1, A->u[MOD_QKV], t->dqkv, n, need_dx ? t->dxn : NULL);
    if (need_dx)
        pf_train_rmsnorm_bwd(t->c, xin, L->attn_norm.v, A->r1, t->dxn, n, E, dx, pf_train_grad_of(t, L->attn_norm.v));
}

static int check_row(const pf_trainer *t, const pf_train_row *row, pf_error *err) {
    if (row == NULL || row->ids == NULL || row->targets == NULL || row->pos == NULL || row->seg == NULL)
        return pf_error_set(err, PF_ERR_ARG, "trainer: row or one of its arrays is NULL");
    if (row->n < 1 || row->n > t->S)
        return pf_error_set(err, PF_ERR_ARG, "trainer: row of %lld tokens (1..%lld allowed by seq_len)",
                            (long long)row->n, (long long)t->S);
    for (int64_t i = 0; i < row->n; i++) {
        if (row->ids[i] < 0 || row->ids[i] >= t->V)
            return pf_error_set(err, PF_ERR_ARG, "trainer: ids[%lld] = %d outside [0, %lld)", (long long)i, row->ids[i],
                                (long long)t->V);
        if (row->targets[i] < -1 || row->targets[i] >= t->V)
            return pf_error_set(err, PF_ERR_ARG, "trainer: targets[%lld] = %d outside [-1, %lld)", (long long)i,
                                row->targets[i], (long long)t->V);
        if (row->pos[i] < 0 || row->pos[i] >= t->S)
            return pf_error_set(err, PF_ERR_ARG, "trainer: pos[%lld] = %d outside [0, %lld)", (long long)i, row->pos[i],
                                (long long)t->S);
    }
    return PF_OK;
}

int pf_train_run_row(pf_trainer *t, const pf_train_row *row, bool backward, double norm, double *loss_sum,
                     int64_t *n_tok, pf_error *err) {
    int rc = check_row(t, row, err);
    if (rc != PF_OK) return rc;
    const int64_t n = row->n, E = t->E, L = t->hp.n_layer;
    const bool ckpt = t->p.grad_checkpoint;
    pf_train_embed_fwd(t->c, t->m->tok_embd, row->ids, n, E, t->x_in);
    for (int64_t il = 0; il < L; il++) {
        train_acts *A = &t->acts[ckpt ? 0 : il];
        rc = layer_fwd(t, il, A, t->x_in + il * t->S * E, t->x_in + (il + 1) * t->S * E, row, backward, err);
        if (rc != PF_OK) return rc;
    }
    /* output head on the rows that have a target only */
    const float *xl = t->x_in + L * t->S * E;
    pf_train_rmsnorm_fwd(t->c, xl, t->m->output_norm.v, n, E, t->hp.rms_eps, t->xnf, t->rf);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (row->targets[i] >= 0) {
            memcpy(t->xc + m * E, t->xnf + i * E, (size_t)E * sizeof(float));
            t->rows[m] = i, t->tg[m] = row->targets[i], m++;
        }
    *n_tok = m;
    *loss_sum = 0.0;
    if (m == 0) return PF_OK;
    const pf_linear *out = &t->m->output;
    if ((rc = pf_matmul(t->c, out->w, out->type, t->V, E, t->xc, m, t->logits, err)) != PF_OK) return rc;
    *loss_sum = pf_train_xent(t->c, t->logits, t->tg, m, t->V, (float)(1.0 / norm));
    if (!backward) return PF_OK;

    if (t->p.full) /* dWout += dlogitsᵀ · xc, before xc is overwritten by dxc */
        pf_train_matmul_gtx(t->c, t->logits, t->V, t->xc, E, m, 1.0f, pf_train_grad_of(t, out->w));
    pf_train_matmul_gw(t->c, out->w, out->type, t->V, E, t->logits, m, t->xc, false, t->gw_work);
    memset(t->dxn, 0, (size_t)(n * E) * sizeof(float));
    for (int64_t i = 0; i < m; i++) memcpy(t->dxn + t->rows[i] * E, t->xc + i * E, (size_t)E * sizeof(float));
    memset(t->dx, 0, (size_t)(n * E) * sizeof(float));
    pf_train_rmsnorm_bwd(t->c, xl, t->m->output_norm.v, t->rf, t->dxn, n, E, t->dx,
                         pf_train_grad_of(t, t->m->output_norm.v));
    for (int64_t il = L - 1; il >= 0; il--) {
        train_acts *A = &t->acts[ckpt ? 0 : il];
        const float *xin = t->x_in + il * t->S * E;
        if (ckpt && il < L - 1) { /* the last layer's activations are still in the shared set */
            rc = layer_fwd(t, il, A, xin, t->xc, row, true, err); /* output discarded (xc is free now) */
            if (rc != PF_OK) return rc;
        }
        layer_bwd(t, il, A, xin, row, t->dx);
    }
    if (t->p.full) pf_train_full_embed_bwd(t, row, t->dx);
    return PF_OK;
}

int pf_trainer_accumulate(pf_trainer *t, const pf_train_row *row, double norm, double *loss_sum, pf_error *err) {
    if (t == NULL || loss_sum == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_trainer_accumulate: NULL argument");
    if (!(norm > 0.0)) return pf_error_set(err, PF_ERR_ARG, "pf_trainer_accumulate: norm %g must be > 0", norm);
    int64_t n_tok = 0;
    int rc = pf_train_run_row(t, row, true, norm, loss_sum, &n_tok, err);
    t->n_micro++;
    return rc;
}

int pf_trainer_eval(pf_trainer *t, const pf_train_row *row, double *loss_sum, int64_t *n_tokens, pf_error *err) {
    if (t == NULL || loss_sum == NULL || n_tokens == NULL)
        return pf_error_set(err, PF_ERR_ARG, "pf_trainer_eval: NULL argument");
    return pf_train_run_row(t, row, false, 1.0, loss_sum, n_tokens, err);
}
