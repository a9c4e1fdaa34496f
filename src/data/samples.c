/* Growing storage of tokenized samples (one allocation per array, doubled when full). */
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"

void pf_samples_free(pf_samples *s) {
    free(s->tok), free(s->loss), free(s->start);
    memset(s, 0, sizeof *s);
}

static int reserve_tok(pf_samples *s, int64_t extra, pf_error *err) {
    if (s->n_tok + extra <= s->cap_tok) return PF_OK;
    int64_t cap = s->cap_tok ? s->cap_tok : 4096;
    while (cap < s->n_tok + extra) cap *= 2;
    int32_t *t = realloc(s->tok, (size_t)cap * sizeof *t);
    if (t) s->tok = t;
    uint8_t *l = t ? realloc(s->loss, (size_t)cap) : NULL;
    if (l) s->loss = l;
    if (!t || !l) return pf_error_set(err, PF_ERR_NOMEM, "dataset: out of memory (%lld tokens)", (long long)cap);
    s->cap_tok = cap;
    return PF_OK;
}

/* start[0] = 0 is kept from the first use on; start[n] is where the open sample begins. */
static int ensure_start(pf_samples *s, pf_error *err) {
    if (s->n + 2 <= s->cap) return PF_OK;
    int64_t cap = s->cap ? s->cap * 2 : 1024;
    int64_t *st = realloc(s->start, (size_t)cap * sizeof *st);
    if (!st) return pf_error_set(err, PF_ERR_NOMEM, "dataset: out of memory (%lld samples)", (long long)cap);
    if (s->cap == 0) st[0] = 0;
    s->start = st, s->cap = cap;
    return PF_OK;
}

int pf_samples_token(pf_samples *s, int32_t id, uint8_t loss, pf_error *err) {
    int rc = ensure_start(s, err);
    if (rc == PF_OK) rc = reserve_tok(s, 1, err);
    if (rc != PF_OK) return rc;
    s->tok[s->n_tok] = id, s->loss[s->n_tok++] = loss;
    return PF_OK;
}

int pf_samples_text(pf_samples *s, const pf_tokenizer *tok, const char *text, size_t len, uint8_t loss,
                    int64_t *n_added, pf_error *err) {
    int rc = ensure_start(s, err);
    if (rc != PF_OK) return rc;
    /* Most texts are shorter than one token per 2 bytes + 16; retry with the exact count. */
    int64_t guess = (int64_t)(len / 2) + 16;
    if ((rc = reserve_tok(s, guess, err)) != PF_OK) return rc;
    int64_t n = pf_tokenize(tok, text, len, false, true, s->tok + s->n_tok, s->cap_tok - s->n_tok, err);
    if (n < 0) return (int)n;
    if (n > s->cap_tok - s->n_tok) {
        if ((rc = reserve_tok(s, n, err)) != PF_OK) return rc;
        n = pf_tokenize(tok, text, len, false, true, s->tok + s->n_tok, s->cap_tok - s->n_tok, err);
        if (n < 0) return (int)n;
    }
    memset(s->loss + s->n_tok, loss, (size_t)n);
    s->n_tok += n;
    if (n_added) *n_added = n;
    return PF_OK;
}

int pf_samples_close(pf_samples *s, pf_error *err) {
    int rc = ensure_start(s, err);
    if (rc != PF_OK) return rc;
    s->start[++s->n] = s->n_tok;
    return PF_OK;
}

void pf_samples_rollback(pf_samples *s) {
    if (s->cap) s->n_tok = s->start[s->n];
}

void pf_data_permutation(int64_t *perm, int64_t n, uint64_t seed) {
    uint64_t st = seed;
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        /* multiply-shift maps 64 random bits onto [0, i] (bias < 2^-40 for any realistic n) */
        const int64_t j = (int64_t)(((unsigned __int128)pf_data_rand(&st) * (uint64_t)(i + 1)) >> 64);
        const int64_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
}
