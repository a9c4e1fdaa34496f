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



/* ---- TEMPORARY: the dataset part of DATA's contract (minimal: chat / completion / text JSONL
 * and .txt lines; packing; loss on assistant / completion tokens; seeded split and order) ---- */
typedef enum pf_data_format { PF_DATA_AUTO = 0, PF_DATA_CHAT, PF_DATA_ALPACA, PF_DATA_COMPLETION,
                              PF_DATA_TEXT } pf_data_format;
typedef struct pf_data_params {
    pf_data_format format;
    int64_t seq_len;
    bool pack;
    bool train_on_prompt;
    const char *system;
    double val_fraction;
    uint64_t seed;
} pf_data_params;
typedef struct pf_dataset pf_dataset;
pf_data_params pf_data_default_params(void);
int pf_dataset_load(const char *path, const pf_tokenizer *tok, const pf_chat_format *fmt, const pf_data_params *p,
                    pf_dataset **train, pf_dataset **val, pf_error *err);
void pf_dataset_free(pf_dataset *d);
int64_t pf_dataset_n_rows(const pf_dataset *d);
int64_t pf_dataset_n_samples(const pf_dataset *d);
int64_t pf_dataset_n_target_tokens(const pf_dataset *d);
int pf_dataset_row(const pf_dataset *d, int64_t i, pf_train_row *out, pf_error *err);
void pf_dataset_epoch_order(const pf_dataset *d, uint64_t seed, int64_t epoch, int64_t *perm);

/* ---- TEMPORARY: the adapter-file part (GGUF written here; PEFT returns UNSUPPORTED) ---------- */
int pf_lora_save_gguf(const pf_lora_weights *w, const pf_model *base, const char *path, pf_type t, pf_error *err);
int pf_lora_save_peft(const pf_lora_weights *w, const pf_model *base, const char *dir, pf_error *err);

#endif
