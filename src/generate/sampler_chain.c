/* The filter chain of the sampler, in llama.cpp's default order: penalties -> top-k -> top-p
 * -> min-p -> temperature. top-p and min-p look at the temperature-1 distribution, as there. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "generate/sampler_internal.h"

/* Total order: higher logit first, then lower id, so that ties never make results depend on
 * the sorting algorithm. */
static bool before(const pf_cand *a, const pf_cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static void swap(pf_cand *a, pf_cand *b) {
    pf_cand t = *a;
    *a = *b;
    *b = t;
}

/* Hoare partition of c[lo..hi] around a median-of-three pivot; returns the split (i, j):
 * c[lo..j] come before the pivot or equal it, c[i..hi] after or equal, i > j. */
static void partition(pf_cand *c, int64_t lo, int64_t hi, int64_t *pi, int64_t *pj) {
    int64_t mid = lo + (hi - lo) / 2;
    if (before(&c[mid], &c[lo])) swap(&c[mid], &c[lo]);
    if (before(&c[hi], &c[lo])) swap(&c[hi], &c[lo]);
    if (before(&c[hi], &c[mid])) swap(&c[hi], &c[mid]);
    pf_cand pivot = c[mid];
    int64_t i = lo, j = hi;
    while (i <= j) {
        while (before(&c[i], &pivot)) i++;
        while (before(&pivot, &c[j])) j--;
        if (i <= j) swap(&c[i++], &c[j--]);
    }
    *pi = i, *pj = j;
}

/* Quicksort written here rather than qsort(), which may allocate (glibc's merge sort does):
 * sampling must not. Recursing into the smaller side bounds the stack by log2(n) frames. */
void pf_sampler_sort(pf_cand *c, int64_t n) {
    int64_t lo = 0, hi = n - 1;
    while (hi - lo > 16) {
        int64_t i, j;
        partition(c, lo, hi, &i, &j);
        if (j - lo < hi - i) {
            pf_sampler_sort(c + lo, j - lo + 1);
            lo = i;
        } else {
            pf_sampler_sort(c + i, hi - i + 1);
            hi = j;
        }
    }
    for (int64_t i = lo + 1; i <= hi; i++) /* insertion sort of the short rest */
        for (int64_t k = i; k > lo && before(&c[k], &c[k - 1]); k--) swap(&c[k], &c[k - 1]);
}

/* Quickselect (Hoare partition, median-of-three pivot): afterwards c[0..k) holds the k first
 * candidates of the total order, in no particular order. O(n) on average, unlike a sort. */
static void select_top(pf_cand *c, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1, t = k - 1;
    while (lo < hi) {
        int64_t i, j;
        partition(c, lo, hi, &i, &j);
        if (t <= j) hi = j;
        else if (t >= i) lo = i;
        else break;
    }
}

/* Keeps the smallest most-likely prefix whose softmax mass reaches p; sorts what it keeps.
 * Unsorted input is not sorted whole (3.5 ms for 32k candidates): the top m are selected for
 * m = 64, 256, ... until they hold the mass, which gives the same prefix for a fraction. */
static int64_t top_p(pf_cand *c, int64_t n, float p, bool sorted, float max) {
    double total = 0, acc = 0;
    for (int64_t i = 0; i < n; i++) total += c[i].p = exp((double)c[i].logit - (double)max);
    const double want = (double)p * total;
    int64_t m = n;
    for (int64_t k = 64; !sorted && k < n; k *= 4) {
        select_top(c, n, k);
        double mass = 0;
        for (int64_t i = 0; i < k; i++) mass += c[i].p;
        if (mass >= want) {
            m = k;
            break;
        }
    }
    if (!sorted) pf_sampler_sort(c, m);
    for (int64_t i = 0; i < m; i++) {
        acc += c[i].p;
        if (acc >= want) return i + 1;
    }
    return m;
}

/* Keeps p_i >= min_p * p_max, i.e. logit_i >= max + ln(min_p); the order is preserved. */
static int64_t min_p(pf_cand *c, int64_t n, float mp, float max) {
    float thr = max + logf(mp);
    if (thr > max) thr = max; /* min_p > 1 still keeps the most likely token */
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (c[i].logit >= thr) c[m++] = c[i];
    return m;
}

int64_t pf_sampler_filter(pf_sampler *s, const float *logits) {
    const int32_t nv = s->n_vocab;
    float *l = s->logits;
    for (int32_t i = 0; i < nv; i++) { /* NaN -> -inf, +inf -> FLT_MAX keep the softmax finite */
        float x = logits[i];
        l[i] = isnan(x) ? -INFINITY : x > FLT_MAX ? FLT_MAX : x;
    }
    pf_sampler_apply_penalties(s, l);
    int32_t best = 0;
    for (int32_t i = 1; i < nv; i++)
        if (l[i] > l[best]) best = i;
    s->sorted = true;
    s->sum = 1;
    if (s->p.temperature <= 0 || l[best] == -INFINITY) { /* greedy, or nothing is possible */
        s->cand[0] = (pf_cand){.logit = l[best], .id = best, .p = 1};
        return 1;
    }
    pf_cand *c = s->cand;
    for (int32_t i = 0; i < nv; i++) c[i] = (pf_cand){.logit = l[i], .id = i};
    int64_t n = nv;
    s->sorted = false;
    if (s->p.top_k > 0 && s->p.top_k < n) {
        select_top(c, n, s->p.top_k);
        n = s->p.top_k;
        pf_sampler_sort(c, n);
        s->sorted = true;
    }
    if (s->p.top_p < 1.0f) {
        n = top_p(c, n, s->p.top_p, s->sorted, l[best]);
        s->sorted = true;
    }
    if (s->p.min_p > 0.0f) n = min_p(c, n, s->p.min_p, l[best]);
    /* The max survives every filter, so l[best] is the reference of the softmax. */
    const double inv_t = 1.0 / (double)s->p.temperature;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += c[i].p = exp(((double)c[i].logit - (double)l[best]) * inv_t);
    s->sum = sum;
    return n;
}
