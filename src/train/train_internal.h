/* Internals of the LoRA trainer: the per-op forward/backward pairs (train_ops.c, train_attn.c),
 * the two weight kernels y = x·Wᵀ / dx = g·W (train_linear.c, train_gemm_avx2.c), the trainer
 * object (trainer.c: layout of parameters, activations and gradients, all allocated at creation)
 * and the optimizer (train_optim.c). Tensors are row-major f32: a batch of n rows of `dim`
 * values is x[t * dim + i]. Every backward function either overwrites or accumulates (+=) its
 * input gradient, as its comment says. */
#ifndef PF_TRAIN_INTERNAL_H
#define PF_TRAIN_INTERNAL_H

#include "model/model_internal.h"
#include "phiforge.h"

/* ---- ops (each a forward / backward pair; the math is in the comment of each) ------------- */

/* RMSNorm: r_t = 1/sqrt(mean_i x_ti² + eps), y_ti = x_ti · r_t · g_i. Stores r_t in rstd[t]. */
void pf_train_rmsnorm_fwd(pf_compute *c, const float *x, const float *g, int64_t n, int64_t dim, float eps, float *y,
                          float *rstd);
/* dx_ti += r_t g_i dy_ti − x_ti r_t³/dim · Σ_j dy_tj g_j x_tj ; dg_i += Σ_t dy_ti x_ti r_t (dg may be NULL). */
void pf_train_rmsnorm_bwd(pf_compute *c, const float *x, const float *g, const float *rstd, const float *dy, int64_t n,
                          int64_t dim, float *dx, float *dg);

/* RoPE table: cs/sn rows of n_rot/2 for positions 0..n_pos-1: m·cos(p·f_i), m·sin(p·f_i) with
 * f_i = theta^(-2i/n_rot) / ff[i] (ff = LongRoPE factors or NULL), m = attention magnitude. */
void pf_train_rope_table(const pf_model_hparams *hp, const float *ff, int64_t n_pos, float *table);
/* In place on the Q and K heads of n qkv rows (row stride `stride`), NeoX pairs (i, i+h):
 *   fwd: y_i = x_i c − x_{i+h} s,  y_{i+h} = x_{i+h} c + x_i s   (c, s from the row's position)
 *   bwd: the transpose, dx_i = dy_i c + dy_{i+h} s,  dx_{i+h} = dy_{i+h} c − dy_i s. */
void pf_train_rope(pf_compute *c, const pf_model_hparams *hp, const float *table, const int32_t *pos, int64_t n,
                   float *qkv, int64_t stride, bool backward);

/* Causal attention inside each packed sample: query t of head h sees keys j <= t with
 * seg[j] == seg[t]; kv head of h is h / (n_head / n_head_kv) (GQA).
 *   s_tj = q_t·k_j / sqrt(d),  P = softmax_j(s),  o_t = Σ_j P_tj v_j,  lse_t = log Σ_j e^{s_tj}
 * qkv rows are [Q | K | V] (stride n_embd + 2 n_kv d); out rows n_head·d; lse is n_head × n. */
void pf_train_attn_fwd(pf_compute *c, const pf_model_hparams *hp, const float *qkv, const int32_t *seg, int64_t n,
                       float *out, float *lse);
/* Backward with P recomputed from lse (nothing n² stored):
 *   dP_tj = do_t·v_j,  D_t = do_t·o_t,  dS_tj = P_tj (dP_tj − D_t)
 *   dq_t = Σ_j dS_tj k_j / sqrt(d),  dk_j = Σ_t dS_tj q_t / sqrt(d),  dv_j = Σ_t P_tj do_t
 * Overwrites dqkv (same layout as qkv). Threads split the kv heads (each owns its dk, dv and
 * the dq of its query heads), so no two threads write the same value. head_dim <= 256. */
void pf_train_attn_bwd(pf_compute *c, const pf_model_hparams *hp, const float *qkv, const int32_t *seg,
                       const float *out, const float *lse, const float *dout, int64_t n, float *dqkv);

/* One query row of attention (train_attn.c; AVX2 in train_attn_avx2.c, head_dim a multiple of 8). */
float pf_train_attn_fwd_row_scalar(const float *q, const float *kb, const float *vb, int64_t stride, const int32_t *seg,
                                   int64_t t, int64_t d, float scale, float *o);
float pf_train_attn_fwd_row_avx2(const float *q, const float *kb, const float *vb, int64_t stride, const int32_t *seg,
                                 int64_t t, int64_t d, float scale, float *o);
void pf_train_attn_bwd_row_scalar(const float *q, const float *kb, const float *vb, float *dkb, float *dvb,
                                  int64_t stride, const int32_t *seg, int64_t t, int64_t d, float scale, float lse,
                                  float D, const float *dout, float *dq);
void pf_train_attn_bwd_row_avx2(const float *q, const float *kb, const float *vb, float *dkb, float *dvb,
                                int64_t stride, const int32_t *seg, int64_t t, int64_t d, float scale, float lse,
                                float D, const float *dout, float *dq);

/* SwiGLU on the fused rows [gate | up] (2 n_ff): a = silu(g)·u, silu(g) = g σ(g).
 * bwd (overwrites dgu): dg = da · u · σ(g)(1 + g(1 − σ(g))),  du = da · silu(g). */
void pf_train_swiglu_fwd(pf_compute *c, const float *gu, int64_t n, int64_t n_ff, float *act);
void pf_train_swiglu_bwd(pf_compute *c, const float *gu, const float *dact, int64_t n, int64_t n_ff, float *dgu);

/* Cross-entropy of n logit rows against targets (all >= 0 here): returns Σ_t −log softmax(l_t)[y_t]
 * (in double) and replaces the logits by their gradient scaled by `scale`: (softmax − onehot)·scale. */
double pf_train_xent(pf_compute *c, float *logits, const int32_t *targets, int64_t n, int64_t n_vocab, float scale);

/* Embedding rows: x_t = E[ids_t] (any GGUF type, dequantized per row). */
void pf_train_embed_fwd(const pf_compute *c, const pf_tensor_info *e, const int32_t *ids, int64_t n, int64_t dim,
                        float *x);

/* ---- weight kernels ------------------------------------------------------------------------ */

/* dx[n × n_in] (=, or += when accumulate) g[n × n_out] · W, W of n_out rows × n_in in any
 * weight type: blocks of W rows are dequantized inside the kernel into a per-thread panel
 * (`work`, n_threads × PF_TRAIN_PANEL floats), never a copy of W. Threads split column chunks
 * of n_in (and token blocks when there are few chunks). */
#define PF_TRAIN_PANEL_ROWS 64
#define PF_TRAIN_PANEL_COLS 256
#define PF_TRAIN_PANEL (PF_TRAIN_PANEL_ROWS * PF_TRAIN_PANEL_COLS)
void pf_train_matmul_gw(pf_compute *c, const void *w, pf_type type, int64_t n_out, int64_t n_in, const float *g,
                        int64_t n, float *dx, bool accumulate, float *work);
/* dW[n_out × n_in] += alpha · gᵀ x over n rows (f32; LoRA gradients). */
void pf_train_matmul_gtx(pf_compute *c, const float *g, int64_t n_out, const float *x, int64_t n_in, int64_t n,
                         float alpha, float *dw);
/* One panel product: dx[t][0..cols) += Σ_o g[t][o] · P[o][0..cols) for t < n, o < rows (row
 * strides: P ldp, g ldg, dx ldx). Scalar reference + AVX2. */
void pf_train_panel_scalar(const float *g, int64_t ldg, const float *p, int64_t ldp, int64_t rows, int64_t cols,
                           int64_t n, float *dx, int64_t ldx);
void pf_train_panel_avx2(const float *g, int64_t ldg, const float *p, int64_t ldp, int64_t rows, int64_t cols,
                         int64_t n, float *dx, int64_t ldx);
/* One block of dW += α·gᵀx: dw[o][0..cols) += α Σ_{t<n} g[t][o] · x[t][0..cols) for o < rows (row
 * strides g ldg, x ldx, dw ldw). Scalar reference + AVX2 (sums over t in registers, then adds). */
void pf_train_gtx_block_scalar(const float *g, int64_t ldg, const float *x, int64_t ldx, int64_t rows, int64_t cols,
                               int64_t n, float alpha, float *dw, int64_t ldw);
void pf_train_gtx_block_avx2(const float *g, int64_t ldg, const float *x, int64_t ldx, int64_t rows, int64_t cols,
                             int64_t n, float alpha, float *dw, int64_t ldw);

/* ---- dropout mask (counter based: the same (seed, salt, t, i) always gives the same bit) ---- */
static inline bool pf_train_keep(uint64_t key, int64_t t, int64_t i, uint32_t threshold) {
    uint64_t z = key ^ ((uint64_t)t * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)i * 0xD1B54A32D192ED03ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint32_t)(z >> 32) >= threshold;
}

#endif
