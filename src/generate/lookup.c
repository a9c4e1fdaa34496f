/* Prompt-lookup drafting: the tokens seen so far (prompt, then generated) are indexed by their
 * ngram_min-grams; a draft is what followed the most recent earlier occurrence of the longest
 * suffix (ngram_max down to ngram_min tokens) of the sequence. A RAG answer that quotes its
 * sources repeats runs of the prompt, so such drafts are often right, and a wrong one costs only
 * its share of one batched forward pass.
 *
 * Index: a hash table of chains. head[h] is the most recent start position of an ngram_min-gram
 * whose hash is h, prev[s] the previous start with the same hash; so the chain of the current
 * suffix lists candidate occurrences newest first. Adding a token and drafting are O(1) and
 * O(chain walked) (bounded by MAX_CHAIN), whatever the prompt length. Every buffer is sized at
 * creation: nothing is allocated per token. */
#include <stdlib.h>
#include <string.h>

#include "phiforge.h"

#define MAX_CHAIN 256 /* candidates looked at per draft: bounds the work on repetitive text */

struct pf_lookup {
    int32_t ngram_min, ngram_max;
    int64_t n, cap;
    int32_t *toks;  /* cap tokens seen                               */
    int64_t *prev;  /* cap: previous start of an n-gram of equal hash */
    int64_t *head;  /* n_buckets: newest start per hash, -1 if none   */
    uint64_t mask;  /* n_buckets - 1 (a power of two)                 */
};

/* Hash of toks[0..n) (FNV-1a over the ids, then a final avalanche). */
static uint64_t hash_ids(const int32_t *toks, int32_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int32_t i = 0; i < n; i++) h = (h ^ (uint32_t)toks[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

int pf_lookup_create(int64_t cap, int32_t ngram_min, int32_t ngram_max, pf_lookup **out, pf_error *err) {
    if (out) *out = NULL;
    if (!out || cap < 1 || ngram_min < 1 || ngram_max < ngram_min || ngram_max > 64)
        return pf_error_set(err, PF_ERR_ARG, "pf_lookup_create: need cap >= 1 and 1 <= ngram_min (%d) <= ngram_max (%d) <= 64",
                            (int)ngram_min, (int)ngram_max);
    pf_lookup *l = calloc(1, sizeof *l);
    uint64_t buckets = 1024;
    while (buckets < (uint64_t)cap * 2 && buckets < ((uint64_t)1 << 40)) buckets *= 2;
    if (l) {
        l->toks = malloc((size_t)cap * sizeof *l->toks);
        l->prev = malloc((size_t)cap * sizeof *l->prev);
        l->head = malloc((size_t)buckets * sizeof *l->head);
    }
    if (!l || !l->toks || !l->prev || !l->head) {
        pf_lookup_free(l);
        return pf_error_set(err, PF_ERR_NOMEM, "pf_lookup_create: out of memory for %lld tokens", (long long)cap);
    }
    l->ngram_min = ngram_min, l->ngram_max = ngram_max, l->cap = cap, l->mask = buckets - 1;
    pf_lookup_reset(l);
    *out = l;
    return PF_OK;
}

void pf_lookup_free(pf_lookup *l) {
    if (!l) return;
    free(l->toks);
    free(l->prev);
    free(l->head);
    free(l);
}

void pf_lookup_reset(pf_lookup *l) {
    if (!l) return;
    l->n = 0;
    memset(l->head, 0xff, (size_t)(l->mask + 1) * sizeof *l->head); /* all -1 */
}

int64_t pf_lookup_n_tokens(const pf_lookup *l) { return l ? l->n : 0; }

int pf_lookup_add(pf_lookup *l, const int32_t *ids, int64_t n, pf_error *err) {
    if (!l || (!ids && n > 0) || n < 0) return pf_error_set(err, PF_ERR_ARG, "pf_lookup_add: invalid argument");
    if (n > l->cap - l->n)
        return pf_error_set(err, PF_ERR_ARG, "pf_lookup_add: %lld more tokens exceed the capacity of %lld (holds %lld)",
                            (long long)n, (long long)l->cap, (long long)l->n);
    for (int64_t i = 0; i < n; i++) {
        l->toks[l->n++] = ids[i];
        if (l->n < l->ngram_min) continue;
        const int64_t s = l->n - l->ngram_min; /* the n-gram that this token completes */
        const uint64_t h = hash_ids(l->toks + s, l->ngram_min) & l->mask;
        l->prev[s] = l->head[h];
        l->head[h] = s;
    }
    return PF_OK;
}

int64_t pf_lookup_draft(const pf_lookup *l, int32_t *draft, int64_t max) {
    if (!l || !draft || max < 1 || l->n <= l->ngram_min) return 0;
    const int32_t *t = l->toks;
    const int64_t n = l->n, me = n - l->ngram_min; /* start of the suffix's ngram_min-gram */
    int64_t best = -1, best_len = 0;
    int walked = 0;
    /* The chain starts with the suffix itself (added last); earlier starts follow, newest first. */
    for (int64_t s = l->prev[me]; s >= 0 && walked < MAX_CHAIN; s = l->prev[s], walked++) {
        if (memcmp(t + s, t + me, (size_t)l->ngram_min * sizeof *t) != 0) continue; /* hash collision */
        int64_t len = l->ngram_min; /* extend the match backwards, up to ngram_max tokens */
        while (len < l->ngram_max && s - (len - l->ngram_min) - 1 >= 0 &&
               t[s - (len - l->ngram_min) - 1] == t[me - (len - l->ngram_min) - 1])
            len++;
        if (len > best_len) { /* newest first: a tie keeps the more recent occurrence */
            best = s, best_len = len;
            if (len == l->ngram_max) break;
        }
    }
    if (best < 0) return 0;
    int64_t k = 0;
    for (int64_t i = best + l->ngram_min; i < n && k < max; i++) draft[k++] = t[i];
    return k;
}
