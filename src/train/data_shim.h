/* TEMPORARY shim (delete after `git merge main` once DATA's branch has landed): the contract
 * types of the fine-tuning data section (pf_train_row) and of the LoRA adapter files section
 * (pf_lora_pair, pf_lora_weights), exactly as the lead fixed them, so the trainer compiles
 * before those sections exist in phiforge.h. */
#ifndef PF_TRAIN_DATA_SHIM_H
#define PF_TRAIN_DATA_SHIM_H

#include "phiforge.h"

typedef struct pf_train_row {  /* a view into the dataset, valid while it lives */
    int64_t n;                 /* tokens in the row, 1..seq_len                                */
    const int32_t *ids;        /* input token of each position                                 */
    const int32_t *targets;    /* token to predict at each position; -1: no loss there         */
    const int32_t *pos;        /* position of each token in its own sample (restarts at 0)     */
    const int32_t *seg;        /* sample number inside the row: attention only within equal seg */
} pf_train_row;

typedef struct pf_lora_pair {
    char base[96];
    int64_t n_in, n_out, r;
    float *a;
    float *b;
} pf_lora_pair;

typedef struct pf_lora_weights {
    int64_t n;
    pf_lora_pair *pairs;
    float alpha;
    int32_t rank;
    bool rslora;
    float dropout;
    char base_model[256];
} pf_lora_weights;

void pf_lora_weights_clear(pf_lora_weights *w);

#endif
