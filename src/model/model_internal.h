/* Internal structures of the Phi-3 model: weights (views into the GGUF mapping), the context
 * (KV cache and work buffers) and the per-op functions shared by forward.c, attention.c and
 * rope.c. */
#ifndef PF_MODEL_INTERNAL_H
#define PF_MODEL_INTERNAL_H

#include "phiforge.h"

/* A linear layer y = W x, W of n_out rows × n_in columns (GGUF ne = [n_in, n_out]).
 * LoRA adapters attach here: y = W x + s·B(A x) (lora.c). */
typedef struct pf_linear {
    const pf_tensor_info *t;
    const void *w;
    pf_type type;
    int64_t n_in, n_out;
} pf_linear;

/* A 1-D f32 tensor (norm weights, rope factors). */
typedef struct pf_vec {
    const pf_tensor_info *t;
    const float *v;
    int64_t n;
} pf_vec;

typedef struct pf_layer {
    pf_vec attn_norm, ffn_norm;
    pf_linear qkv;    /* [n_embd] -> [n_head*d | n_head_kv*d | n_head_kv*d]  (Q | K | V) */
    pf_linear o;      /* [n_embd] -> [n_embd]                                          */
    pf_linear up;     /* [n_embd] -> [2*n_ff]  (gate | up)                              */
    pf_linear down;   /* [n_ff] -> [n_embd]                                            */
} pf_layer;

struct pf_model {
    pf_model_hparams hp;
    pf_gguf *owned;          /* non-NULL when pf_model_load opened the file  */
    const pf_gguf *g;
    const pf_tensor_info *tok_embd; /* [n_embd, n_vocab], any type (rows dequantized) */
    pf_vec output_norm;
    pf_linear output;        /* token_embd when output.weight is absent       */
    pf_vec rope_long, rope_short; /* n_rot/2 each; .v NULL without LongRoPE  */
    pf_layer *layers;        /* n_layer                                      */
};

struct pf_context {
    const pf_model *m;
    pf_compute *c;
    int n_threads;
    int64_t n_ctx, n_batch, n_past;
    bool long_rope;
    double *inv_freq;          /* n_rot/2: theta^(-2i/n_rot) / rope_factor[i] */

    /* KV cache, per layer and kv head: K as n_ctx rows of head_dim (position-major),
     * V transposed as head_dim rows of n_ctx (so attention's P·V is a dot product per row). */
    pf_type kv_type;
    size_t kv_elem;            /* bytes per element                   */
    void *k_cache, *v_cache;   /* n_layer * n_head_kv * n_ctx * d each */

    /* work buffers, n_batch rows each */
    float *x;      /* residual stream       n_batch × n_embd             */
    float *xb;     /* normed input          n_batch × n_embd             */
    float *qkv;    /* fused projections     n_batch × (n_embd + 2 n_kv)  */
    float *att;    /* attention output      n_batch × n_embd             */
    float *gu;     /* gate|up               n_batch × 2 n_ff             */
    float *act;    /* silu(gate) ⊙ up       n_batch × n_ff               */
    float *rope;   /* cos|sin per position  n_batch × n_rot              */
    float *scores; /* per thread: n_ctx scores + head_dim of scaled q    */
    int64_t scores_stride;

    /* LoRA adapters (pf_context_set_lora; lora.c): y = W x + Σ scale_i · B_i (A_i x) */
    int n_lora;
    const pf_lora **lora;      /* n_lora, owned by the caller                         */
    float *lora_scale;         /* n_lora user scales (alpha / r applied per tensor)   */
    float *lora_u;             /* A x:    n_batch × max r                             */
    float *lora_y;             /* B (A x): PF_LORA_ROWS × max n_out                   */
};

/* Rows of B (A x) computed per pf_matmul call (bounds ctx->lora_y). */
#define PF_LORA_ROWS 32

/* Element offset of layer il, kv head h in k_cache / v_cache. */
static inline size_t pf_kv_offset(const pf_context *ctx, int64_t il, int64_t h) {
    return ((size_t)il * (size_t)ctx->m->hp.n_head_kv + (size_t)h) * (size_t)ctx->n_ctx * (size_t)ctx->m->hp.head_dim;
}

/* ---- forward pieces (forward.c, attention.c, rope.c) ---- */

/* y[n × n_out] = x[n × n_in] · Wᵀ (the single place every linear layer goes through). */
int pf_model_linear(pf_context *ctx, const pf_linear *l, const float *x, int64_t n, float *y, pf_error *err);

/* y[n × n_out] += Σ_i scale_i · (x · A_iᵀ) · B_iᵀ over the adapters attached to ctx that
 * adapt l (lora.c; called by pf_model_linear when ctx->n_lora > 0). */
int pf_lora_apply(pf_context *ctx, const pf_linear *l, const float *x, int64_t n, float *y, pf_error *err);
/* The adapter's file (prefix_cache.c fingerprints it). */
const pf_gguf *pf_lora_gguf(const pf_lora *a);
/* Frees the context's adapter list and buffers (pf_context_free). */
void pf_lora_context_free(pf_context *ctx);

/* Fills ctx->rope with cos/sin rows for positions pos0..pos0+n-1. */
void pf_rope_table(const pf_context *ctx, int64_t pos0, int64_t n);
/* Rotates the Q and K heads of n rows of ctx->qkv in place (NeoX pairs (i, i + n_rot/2)). */
void pf_rope_apply(pf_context *ctx, int64_t n);

/* Stores K and V of n rows of ctx->qkv at positions pos0.. of layer il's cache. */
void pf_kv_store(pf_context *ctx, int64_t il, int64_t pos0, int64_t n);
/* Causal attention of n query rows (positions pos0..) over layer il's cache -> ctx->att. */
void pf_attention(pf_context *ctx, int64_t il, int64_t pos0, int64_t n);

/* Runs fn(arg, i0, i1) over [0, n) split into contiguous pieces across the pool when n is at
 * least `min_par` (else inline). */
void pf_model_parallel(pf_context *ctx, int64_t n, int64_t min_par, pf_range_fn fn, void *arg);

#endif
