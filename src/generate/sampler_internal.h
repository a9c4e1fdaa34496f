/* Sampler internals shared by sampler.c (API, PRNG, penalties) and sampler_chain.c (filters). */
#ifndef PF_SAMPLER_INTERNAL_H
#define PF_SAMPLER_INTERNAL_H

#include "phiforge.h"

typedef struct pf_cand {
    float logit;
    int32_t id;
    double p; /* unnormalized probability after temperature (exp((logit - max) / T)) */
} pf_cand;

struct pf_sampler {
    pf_sampler_params p;
    int32_t n_vocab;
    bool penalize;          /* some penalty is active and the window is not empty-sized   */
    uint64_t rng[4];        /* xoshiro256** state                                         */
    int32_t *ring;          /* last ring_cap accepted tokens, oldest at ring_head if full */
    int32_t ring_cap, ring_len, ring_head;
    int32_t *counts;        /* occurrences of each id in the ring                          */
    float *logits;          /* n_vocab: penalized copy of the input                        */
    pf_cand *cand;          /* n_vocab: the candidates of the current step                 */
    bool sorted;            /* cand[0..n) is in decreasing order                          */
    double sum;             /* sum of cand[0..n).p                                         */
};

/* Runs the chain on logits into s->cand; returns the number of candidates left (>= 1). */
int64_t pf_sampler_filter(pf_sampler *s, const float *logits);
/* Sorts candidates by logit, decreasing, ties by increasing id. */
void pf_sampler_sort(pf_cand *c, int64_t n);

#endif
