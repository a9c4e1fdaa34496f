/* Internal interface of `init` (random-weight models): the metadata builder shared by the
 * writer and its tests. */
#ifndef PF_INIT_INTERNAL_H
#define PF_INIT_INTERNAL_H

#include "phiforge.h"

/* Checks that a preset describes a loadable Phi-3 model (PF_ERR_ARG naming the field). */
int pf_init_check_preset(const pf_init_preset *p, pf_error *err);

/* Adds every metadata key of the model to w, in the order llama.cpp's Phi-3 converter writes
 * them (general.*, phi3.*, general.file_type, tokenizer.* copied from `vocab` with the
 * preset's add_bos_token / chat_template, general.quantization_version, attn_factor last). */
int pf_init_add_metadata(pf_gguf_writer *w, const pf_init_preset *p, const pf_quant_recipe *r, const pf_gguf *vocab,
                         pf_error *err);

/* Rows of token_embd / output: the length of tokenizer.ggml.tokens in `vocab`. */
int pf_init_vocab_size(const pf_gguf *vocab, int64_t *n_vocab, pf_error *err);

#endif
