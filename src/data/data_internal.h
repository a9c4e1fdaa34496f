/* Fine-tuning data: samples (token sequences with a loss flag per token) built from JSONL/txt
 * records, then shuffled, split and packed into rows (see the "Fine-tuning data" section of
 * phiforge.h). */
#ifndef PF_DATA_INTERNAL_H
#define PF_DATA_INTERNAL_H

#include "phiforge.h"

/* Every sample's tokens back to back: sample i is tok[start[i] .. start[i+1]); loss[k] = 1 when
 * token k is a target (predicted from the token before it). */
typedef struct pf_samples {
    int32_t *tok;
    uint8_t *loss;
    int64_t n_tok, cap_tok;
    int64_t *start;      /* n + 1 entries once finished */
    int64_t n, cap;
} pf_samples;

void pf_samples_free(pf_samples *s);
/* Appends tokens of text[0..len) (parse_special on, no BOS/EOS) to the open sample, each with
 * loss flag `loss`; *n_added (may be NULL) gets the count. */
int pf_samples_text(pf_samples *s, const pf_tokenizer *tok, const char *text, size_t len, uint8_t loss,
                    int64_t *n_added, pf_error *err);
int pf_samples_token(pf_samples *s, int32_t id, uint8_t loss, pf_error *err);
/* Closes the open sample (tokens appended since the last close). */
int pf_samples_close(pf_samples *s, pf_error *err);
/* Drops the tokens of the open sample (after a record failed). */
void pf_samples_rollback(pf_samples *s);

/* What one record is rendered with. */
typedef struct pf_data_ctx {
    const char *name;            /* file name for messages */
    const pf_tokenizer *tok;
    pf_chat_format fmt;
    const pf_data_params *p;
    int32_t assistant_id;        /* <|assistant|> */
} pf_data_ctx;

/* Parses one JSONL line (line number ln) into one closed sample. */
int pf_data_record(const pf_data_ctx *c, const char *line, size_t len, int64_t ln, pf_samples *s, pf_error *err);
/* Parses every non-blank line of a JSONL buffer on n_threads threads (<= 0: all CPUs). */
int pf_data_read_lines(const pf_data_ctx *c, const char *data, size_t size, int n_threads, pf_samples *s,
                       pf_error *err);
/* Tokenizes a whole .txt file into windows of seq_len + 1 tokens overlapping by one. */
int pf_data_text_file(const pf_data_ctx *c, const char *text, size_t len, pf_samples *s, pf_error *err);

/* splitmix64: the generator behind shuffling (a seed fixes every order). */
static inline uint64_t pf_data_rand(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Fisher-Yates shuffle of perm[0..n) (filled with 0..n-1 first). */
void pf_data_permutation(int64_t *perm, int64_t n, uint64_t seed);

#endif
