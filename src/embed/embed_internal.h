/* Internal structures of the embedding models (BERT, nomic-bert): weights as views into the
 * GGUF mapping (embed_load.c), the per-op functions (embed_ops.c, embed_attn.c) and the batch
 * driver (embed.c). Not part of the public API. */
#ifndef PF_EMBED_INTERNAL_H
#define PF_EMBED_INTERNAL_H

#include "phiforge.h"

typedef enum pfe_arch { PFE_BERT = 0, PFE_NOMIC = 1 } pfe_arch;

/* y = W x (+ b): W has n_out rows of n_in (GGUF ne = [n_in, n_out]); b is NULL or n_out floats. */
typedef struct pfe_linear {
    const pf_tensor_info *t;
    const void *w;
    pf_type type;
    int64_t n_in, n_out;
    const float *b;
} pfe_linear;

/* LayerNorm weight and bias (n_embd floats each, in the embedder's arena). */
typedef struct pfe_norm {
    const float *w, *b;
} pfe_norm;

typedef struct pfe_layer {
    pfe_linear q, k, v;      /* bert: separate projections with biases                */
    pfe_linear qkv;          /* nomic-bert: fused [Q | K | V], 3 n_embd rows            */
    pfe_linear o;            /* attn_output                                            */
    pfe_norm attn_norm;      /* attn_output_norm: after the attention residual         */
    pfe_linear up, gate, down; /* ffn_up, ffn_gate (nomic only), ffn_down              */
    pfe_norm out_norm;       /* layer_output_norm: after the FFN residual              */
} pfe_layer;

typedef struct pfe_hparams {
    pfe_arch arch;
    int64_t n_vocab, n_ctx, n_embd, n_ff, n_layer, n_head, head_dim;
    float eps;               /* {arch}.attention.layer_norm_epsilon                     */
    float rope_theta;        /* nomic-bert.rope.freq_base                               */
    pf_pooling pooling;
} pfe_hparams;

/* Work buffers for `rows` token rows (batch × padded length), grown on demand. */
typedef struct pfe_work {
    int64_t rows, len;       /* capacity: token rows, padded sequence length            */
    float *x;                /* hidden state           rows × n_embd                    */
    float *y;                /* sublayer output        rows × n_embd                    */
    float *qkv;              /* projections            rows × 3 n_embd                  */
    float *att;              /* attention output       rows × n_embd                    */
    float *kt, *vt;          /* K, V per (sequence, head) transposed: rows × n_embd     */
    float *ff, *ff2;         /* FFN activations        rows × n_ff each                 */
    float *mask;             /* 0 or -inf per row (as a key)                            */
    float *rope;             /* cos | sin per position len × head_dim                   */
    float *scores;           /* per thread: len                                         */
} pfe_work;

/* One forward batch: n_seq sequences padded to len rows each. */
typedef struct pfe_batch {
    int64_t n_seq, len;
    const int32_t *const *ids; /* ids[s][0..n_tok[s])                                   */
    const int64_t *n_tok;
} pfe_batch;

struct pf_embedder {
    pfe_hparams hp;
    pf_gguf *g;
    pf_tokenizer *tok;
    char name[128];
    const pf_tensor_info *tok_embd;  /* [n_embd, n_vocab], rows dequantized on use      */
    const pf_tensor_info *pos_embd;  /* bert: [n_embd, n_ctx]; NULL for nomic-bert      */
    const float *type0;              /* row 0 of token_types, NULL when absent          */
    pfe_norm tok_norm;               /* token_embd_norm                                 */
    pfe_layer *layers;
    float *arena;                    /* every 1-D tensor as f32                         */
    double *inv_freq;                /* nomic: theta^(-2i/head_dim), head_dim/2         */
    pf_compute *c;
    int n_threads;
    int64_t max_rows;                /* pf_embedder_set_batch                           */
    pfe_work w;
    /* pf_embed's tokenization arena; per sequence of a call (or pf_embed window): sort key,
     * length, ids, destination row, and the same in sorted (batch) order. Grown on demand. */
    int32_t *tok_ids;
    int64_t tok_cap;
    uint64_t *key;
    int64_t *len, *slen, order_cap;
    const int32_t **seq, **sseq;
    float **dst, **sdst;
};

/* ---- loading (embed_load.c) ---- */
int pfe_load_gguf(pf_embedder *e, pf_error *err);

/* ---- ops (embed_ops.c, embed_attn.c) ---- */
/* Work (about one multiply-add or one transcendental per unit) below which an op runs on the
 * calling thread: dispatching to the pool costs microseconds. */
#define PFE_PAR_WORK 65536
typedef pf_range_fn pfe_range_fn;
/* fn over [0, n) in contiguous pieces across the pool (inline when n < min_par). */
void pfe_parallel(pf_embedder *e, int64_t n, int64_t min_par, pfe_range_fn fn, void *arg);

int pfe_linear_fwd(pf_embedder *e, const pfe_linear *l, const float *x, int64_t rows, float *y, pf_error *err);
void pfe_embed_rows(pf_embedder *e, const pfe_batch *b);
void pfe_layernorm(pf_embedder *e, float *x, const float *res, const pfe_norm *nrm, int64_t rows);
void pfe_gelu(pf_embedder *e, float *x, int64_t n);
void pfe_swiglu(pf_embedder *e, float *up, const float *gate, int64_t n);
void pfe_rope(pf_embedder *e, const pfe_batch *b);
void pfe_attention(pf_embedder *e, const pfe_batch *b, const float *q, const float *k, const float *v, int64_t ld);
void pfe_pool(const pf_embedder *e, const pfe_batch *b, float *const *dst);
/* AVX2 (embed_attn_avx2.c): s[j] = scale · Σ_i q[i] kt[i·len + j] + mask[j], j < len. */
void pfe_avx2_scores(int64_t d, int64_t len, const float *q, const float *kt, float scale, const float *mask,
                     float *s);

#endif
