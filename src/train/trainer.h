/* The trainer object (shared by trainer.c, train_model.c, train_optim.c, train_ckpt.c). */
#ifndef PF_TRAINER_H
#define PF_TRAINER_H

#include "train/train_internal.h"

enum { MOD_QKV = 0, MOD_O = 1, MOD_UP = 2, MOD_DOWN = 3, N_MOD = 4 };

/* Activations of one layer for one row (S = seq_len rows each). With gradient checkpointing
 * all layers share one set and backward recomputes it from the layer's input. */
typedef struct train_acts {
    float *xn1, *r1;   /* attention RMSNorm output and 1/rms        S×E, S        */
    float *qkv;        /* fused Q|K|V after RoPE                    S×(E+2·kv·d)  */
    float *lse;        /* log-sum-exp of each head's scores         n_head×S      */
    float *att;        /* attention output (input of o)             S×E           */
    float *x_mid;      /* residual after attention                  S×E           */
    float *xn2, *r2;   /* FFN RMSNorm output and 1/rms              S×E, S        */
    float *gu;         /* gate|up                                   S×2F          */
    float *act;        /* silu(gate)·up (input of down)             S×F           */
    float *u[N_MOD];   /* A·drop(x) of each adapted module          S×r           */
} train_acts;

/* One trained weight tensor of full fine-tuning and its offset in params (train_full.c). */
typedef struct pf_train_full_tensor {
    const pf_tensor_info *ti;
    int64_t off;
} pf_train_full_tensor;

struct pf_trainer {
    const pf_model *m;      /* the model trained (with full: the shadow below)               */
    pf_model_hparams hp;
    pf_train_params p;
    pf_compute *c;
    int64_t S, E, F, Q, V;  /* seq_len, n_embd, n_ff, qkv width, n_vocab */
    float scale;            /* LoRA s                                    */
    uint32_t drop_threshold;/* keep a value iff hash >= this (p · 2^32)  */
    float drop_scale;       /* 1 / (1 − p)                               */

    int64_t n_params;
    float *params, *grads, *adam_m, *adam_v;
    int64_t *a_off, *b_off; /* n_layer × N_MOD offsets into params; -1: not adapted */
    const pf_linear **lin;  /* n_layer × N_MOD base weights                          */
    pf_nf4_tensor *nf4;     /* QLoRA: the same in NF4 (train_qlora.c); NULL for LoRA  */
    pf_qlora_info qinfo;

    float *rope;            /* S × n_rot: cos|sin per position                       */
    float *x_in;            /* (n_layer + 1) × S×E: each layer's input, final x last  */
    train_acts *acts;       /* n_layer sets, or 1 with gradient checkpointing          */
    float *xnf, *rf;        /* final norm                                             */
    float *xc;              /* rows with a target, gathered        S×E               */
    int64_t *rows;          /* their indices                       S                 */
    int32_t *tg;            /* their targets                       S                 */
    float *logits;          /* logits, then their gradient         S×V               */
    float *dx, *dxn, *dqkv, *datt, *dgu, *dact, *du; /* backward buffers            */
    float *tmp;             /* S × max(n_in, n_out): dropped input, B·u, A-side dx    */
    float *gw_work;         /* n_threads panels of the dx = g·W kernel               */

    void *arena;            /* the one block all buffers above live in                */
    size_t arena_bytes;

    /* full fine-tuning (train_full.c): f32 weights in params, a shadow model pointing at them */
    const pf_model *base;   /* the loaded model (full) */
    pf_model full_m;
    pf_layer *full_layers;
    pf_tensor_info full_embd;
    pf_train_full_tensor *full_t;
    int64_t n_full_t;
    int64_t n_nodecay;      /* params [0, n_nodecay) are norm weights: no weight decay         */

    int64_t step;           /* optimizer steps done                                   */
    int64_t n_micro;        /* rows run through accumulate (salts the dropout stream) */
};

/* forward + (optionally) backward of one row (train_model.c) */
int pf_train_run_row(pf_trainer *t, const pf_train_row *row, bool backward, double norm, double *loss_sum,
                     int64_t *n_tok, pf_error *err);

/* full fine-tuning (train_full.c) */
int pf_train_full_plan(pf_trainer *t, const pf_model *m, pf_error *err); /* sizes params, checks types */
int pf_train_full_bind(pf_trainer *t, const pf_model *m, pf_error *err); /* fills params, the shadow   */
void pf_train_full_embed_bwd(pf_trainer *t, const pf_train_row *row, const float *dx);
/* Gradient of the parameter that w points into (full fine-tuning), NULL otherwise (frozen). */
static inline float *pf_train_grad_of(pf_trainer *t, const void *w) {
    return t->p.full ? t->grads + ((const float *)w - t->params) : NULL;
}
/* QLoRA base (train_qlora.c): quantize every lin[] to nf4[], dropping the mapped pages. */
int pf_train_qlora_build(pf_trainer *t, pf_error *err);
void pf_train_qlora_free(pf_trainer *t);

#endif
