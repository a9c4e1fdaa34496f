/* Token sampler: llama.cpp's default chain (penalties -> top-k -> top-p -> min-p -> temperature
 * -> draw) over buffers sized once at creation, with a private xoshiro256** PRNG. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "generate/sampler_internal.h"

pf_sampler_params pf_sampler_default_params(void) {
    return (pf_sampler_params){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                               .repeat_penalty = 1.0f, .repeat_last_n = 64};
}

/* ---- PRNG: splitmix64 seeds xoshiro256** (a zero state is impossible from splitmix64) ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3];
    s[2] ^= t, s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static double next_unit(uint64_t s[4]) { return (double)(next_u64(s) >> 11) * 0x1.0p-53; }

/* ---- lifetime -------------------------------------------------------------------------------- */

int pf_sampler_create(const pf_sampler_params *p, int32_t n_vocab, pf_sampler **out, pf_error *err) {
    if (out) *out = NULL;
    if (!p || !out || n_vocab < 1) return pf_error_set(err, PF_ERR_ARG, "pf_sampler_create: invalid argument");
    if (isnan(p->temperature) || isnan(p->top_p) || isnan(p->min_p) || p->top_p < 0)
        return pf_error_set(err, PF_ERR_ARG, "sampler: top_p must be >= 0 and no parameter may be NaN");
    if (!(p->repeat_penalty > 0))
        return pf_error_set(err, PF_ERR_ARG, "sampler: repeat_penalty %g must be > 0", (double)p->repeat_penalty);
    if (!isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty) || p->repeat_last_n < 0)
        return pf_error_set(err, PF_ERR_ARG, "sampler: penalties must be finite and repeat_last_n >= 0");
    pf_sampler *s = calloc(1, sizeof *s);
    if (!s) return pf_error_set(err, PF_ERR_NOMEM, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->penalize = p->repeat_last_n > 0 &&
                  (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f);
    s->ring_cap = s->penalize ? p->repeat_last_n : 0;
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->logits = malloc((size_t)n_vocab * sizeof *s->logits);
    s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
    s->ring = malloc(((size_t)s->ring_cap + 1) * sizeof *s->ring);
    if (!s->cand || !s->logits || !s->counts || !s->ring) {
        pf_sampler_free(s);
        return pf_error_set(err, PF_ERR_NOMEM, "sampler: out of memory for %d candidates", n_vocab);
    }
    pf_sampler_reset(s);
    *out = s;
    return PF_OK;
}

void pf_sampler_free(pf_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s->logits);
    free(s->counts);
    free(s->ring);
    free(s);
}

const pf_sampler_params *pf_sampler_get_params(const pf_sampler *s) { return s ? &s->p : NULL; }

void pf_sampler_clear_history(pf_sampler *s) {
    if (!s) return;
    for (int32_t i = 0; i < s->ring_len; i++) s->counts[s->ring[i]] = 0;
    s->ring_len = s->ring_head = 0;
}

void pf_sampler_reset(pf_sampler *s) {
    if (!s) return;
    pf_sampler_clear_history(s);
    uint64_t x = s->p.seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

int pf_sampler_accept(pf_sampler *s, int32_t id) {
    if (!s || id < 0 || id >= s->n_vocab) return PF_ERR_ARG;
    if (!s->ring_cap) return PF_OK;
    if (s->ring_len == s->ring_cap) { /* full: the oldest entry leaves the window */
        s->counts[s->ring[s->ring_head]]--;
        s->ring[s->ring_head] = id;
        s->ring_head = (s->ring_head + 1) % s->ring_cap;
    } else {
        s->ring[(s->ring_head + s->ring_len++) % s->ring_cap] = id;
    }
    s->counts[id]++;
    return PF_OK;
}

/* Each distinct token of the window is penalized once: its count is negated while applied
 * and restored afterwards, which needs no extra memory. */
void pf_sampler_apply_penalties(pf_sampler *s, float *logits) {
    if (!s || !logits || !s->penalize) return;
    const float rep = s->p.repeat_penalty, freq = s->p.frequency_penalty, pres = s->p.presence_penalty;
    for (int32_t i = 0; i < s->ring_len; i++) {
        int32_t id = s->ring[i], c = s->counts[id];
        if (c <= 0) continue;
        float l = logits[id];
        l = l <= 0 ? l * rep : l / rep;
        logits[id] = l - (float)c * freq - pres;
        s->counts[id] = -c;
    }
    for (int32_t i = 0; i < s->ring_len; i++) {
        int32_t id = s->ring[i];
        if (s->counts[id] < 0) s->counts[id] = -s->counts[id];
    }
}

int32_t pf_sampler_sample(pf_sampler *s, const float *logits) {
    if (!s || !logits) return PF_ERR_ARG;
    int64_t n = pf_sampler_filter(s, logits);
    if (n == 1) return s->cand[0].id;
    double u = next_unit(s->rng) * s->sum;
    double acc = 0;
    for (int64_t i = 0; i < n; i++) {
        acc += s->cand[i].p;
        if (u < acc) return s->cand[i].id;
    }
    return s->cand[n - 1].id; /* u landed in the rounding slack of the sum */
}

int64_t pf_sampler_candidates(pf_sampler *s, const float *logits, int32_t *ids, float *probs) {
    if (!s || !logits || !ids || !probs) return PF_ERR_ARG;
    int64_t n = pf_sampler_filter(s, logits);
    if (!s->sorted) pf_sampler_sort(s->cand, n);
    for (int64_t i = 0; i < n; i++) {
        ids[i] = s->cand[i].id;
        probs[i] = (float)(s->cand[i].p / s->sum);
    }
    return n;
}

/* Speculative verification with a deterministic draft (q(x) = 1): the standard rule accepts x
 * with probability min(1, p(x) / q(x)) = p(x) and otherwise draws from max(0, p - q) normalized,
 * i.e. from p with x removed. One draw from p does both at once: it is x with probability p(x),
 * and given that it is not x it is distributed as p without x. Using the plain draw also keeps
 * the PRNG in step with plain decoding, so a seed gives the same tokens with or without drafts. */
int32_t pf_sampler_verify(pf_sampler *s, const float *logits, int32_t draft, bool *accepted) {
    int32_t id = pf_sampler_sample(s, logits);
    if (accepted) *accepted = id >= 0 && id == draft;
    return id;
}
