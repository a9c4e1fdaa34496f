/* HNSW search: per-search scratch, the greedy upper-level walk, the best-first level search
 * and the public (approximate and exhaustive) searches.
 *
 * Why it is fast at this size (100k x 384 f32 is 150 MB, far beyond the caches): a search is
 * bound by DRAM latency, one vector fetch per distance. The level search therefore first
 * collects every unvisited neighbour of the node it expands, then prefetches many cache lines
 * of the vectors a few neighbours ahead of the distance it computes, so several vectors are in
 * flight at once; a node admitted to the candidate list gets its neighbour list prefetched,
 * since it will probably be expanded next. The candidate list is one small sorted array
 * (insertion by binary search + memmove) instead of two heaps, the visited set an epoch array
 * never cleared between searches, and big arrays sit on huge pages (bigalloc.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vindex/vindex_internal.h"

/* Vectors prefetched ahead of the one whose distance is being computed, and how much of each:
 * up to 12 cache lines (all of a 384-d f16 or i8 vector, half of an f32 one, whose rest the
 * hardware stream prefetcher fetches once the kernel walks into it). Deeper or whole-vector
 * prefetching measured no better at 100k x 384: the line-fill queue is already full. */
#define PREFETCH_AHEAD 2
#define PREFETCH_MAX_BYTES 768

static inline void prefetch_bytes(const void *p, size_t n) {
    const char *c = p;
    for (size_t o = 0; o < n; o += 64) __builtin_prefetch(c + o, 0, 3);
}

/* ---- scratch ---- */

static void scratch_free(pf_hnsw_scratch *s) {
    if (!s) return;
    free(s->visited);
    free(s->pool);
    free(s->qf);
    free(s->prep);
    free(s->tmp);
    free(s->tmp2);
    free(s->ids);
    free(s->cands);
    free(s->sel);
    free(s);
}

static pf_hnsw_scratch *scratch_new(const pf_hnsw *h) {
    pf_hnsw_scratch *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    size_t d = h->dim;
    s->qf = malloc(4 * d);
    s->prep = malloc(h->prep_bytes > 4 * d ? h->prep_bytes : 4 * d);
    s->tmp = malloc(4 * d);
    s->tmp2 = malloc(4 * d);
    s->ids = malloc(sizeof *s->ids * (h->M0 + 1));
    s->cands = malloc(sizeof *s->cands * (h->M0 + 1));
    s->sel = malloc(sizeof *s->sel * (h->M0 + 1));
    if (!s->qf || !s->prep || !s->tmp || !s->tmp2 || !s->ids || !s->cands || !s->sel) {
        scratch_free(s);
        return NULL;
    }
    return s;
}

pf_hnsw_scratch *pf_hnsw_scratch_get(const pf_hnsw *h) {
    /* The list lives behind a mutex so that concurrent searches on a const index each get
     * their own scratch; the cast is confined to this bookkeeping. */
    pf_hnsw *m = (pf_hnsw *)h;
    pthread_mutex_lock(&m->scratch_lock);
    pf_hnsw_scratch *s = m->scratch_free;
    if (s) m->scratch_free = s->next;
    pthread_mutex_unlock(&m->scratch_lock);
    return s ? s : scratch_new(h);
}

void pf_hnsw_scratch_put(const pf_hnsw *h, pf_hnsw_scratch *s) {
    if (!s) return;
    pf_hnsw *m = (pf_hnsw *)h;
    pthread_mutex_lock(&m->scratch_lock);
    s->next = m->scratch_free;
    m->scratch_free = s;
    pthread_mutex_unlock(&m->scratch_lock);
}

void pf_hnsw_scratch_free_all(pf_hnsw *h) {
    while (h->scratch_free) {
        pf_hnsw_scratch *s = h->scratch_free;
        h->scratch_free = s->next;
        scratch_free(s);
    }
}

bool pf_hnsw_scratch_fit(const pf_hnsw *h, pf_hnsw_scratch *s, uint32_t ef) {
    if (s->vcap < h->cap) { /* sized to the capacity, so adds up to it need no regrowth */
        uint32_t cap = h->cap;
        uint16_t *v = calloc(cap, sizeof *v);
        if (!v) return false;
        free(s->visited);
        s->visited = v;
        s->vcap = cap;
        s->epoch = 0;
    }
    /* Room for ef live entries plus as many deleted ones walked through (search with filter). */
    uint32_t need = 2 * ef + 16;
    if (s->pool_cap < need) {
        pf_cand *p = malloc(sizeof *p * need);
        if (!p) return false;
        free(s->pool);
        s->pool = p;
        s->pool_cap = need;
    }
    return true;
}

static inline uint16_t next_epoch(pf_hnsw_scratch *s) {
    if (++s->epoch == 0) { /* wrapped: the only time the array is cleared */
        memset(s->visited, 0, sizeof *s->visited * s->vcap);
        s->epoch = 1;
    }
    return s->epoch;
}

void pf_hnsw_prepare(const pf_hnsw *h, pf_hnsw_scratch *s, const float *q) {
    size_t d = h->dim;
    memcpy(s->qf, q, 4 * d);
    if (h->p.metric == PF_METRIC_COSINE) {
        float n = 0.0f;
        for (size_t i = 0; i < d; i++) n += q[i] * q[i];
        if (n > 0.0f) {
            float inv = 1.0f / sqrtf(n);
            for (size_t i = 0; i < d; i++) s->qf[i] *= inv;
        }
    }
    if (h->p.storage == PF_VEC_I8) pf_vec_encode(PF_VEC_I8, s->qf, d, s->prep);
    else memcpy(s->prep, s->qf, 4 * d);
}

const void *pf_hnsw_prep_stored(const pf_hnsw *h, uint32_t id, float *buf) {
    if (h->p.storage != PF_VEC_F16) return pf_hnsw_vec(h, id);
    h->f16_decode(pf_hnsw_vec(h, id), buf, h->dim);
    return buf;
}

/* ---- upper levels: greedy walk ---- */

void pf_hnsw_greedy(const pf_hnsw *h, const void *q, int level, uint32_t exclude, uint32_t *cur, float *cur_d) {
    uint32_t deg = level ? h->M : h->M0;
    for (bool changed = true; changed;) {
        changed = false;
        const uint32_t *l = pf_hnsw_links(h, *cur, level);
        for (uint32_t j = 0; j < deg && l[j] != PF_NO_ID; j++)
            prefetch_bytes(pf_hnsw_vec(h, l[j]), h->vec_bytes < PREFETCH_MAX_BYTES ? h->vec_bytes : PREFETCH_MAX_BYTES);
        for (uint32_t j = 0; j < deg && l[j] != PF_NO_ID; j++) {
            if (l[j] == exclude) continue;
            float d = h->dist(q, pf_hnsw_vec(h, l[j]), h->dim);
            if (d < *cur_d) { *cur_d = d; *cur = l[j]; changed = true; }
        }
    }
}

/* ---- one level: best-first search over a sorted candidate array ----
 * pool[0..size) is sorted by distance; entries flagged EXPANDED have had their neighbours
 * looked at. `live` counts entries not flagged DELETED; it never exceeds ef, and when it
 * equals ef the last entry is live, so the admission bound is simply the last distance. */

typedef struct pool {
    pf_cand *a;
    uint32_t size, live, ef, cap;
} pool;

static inline uint32_t pool_insert(pool *p, float d, uint32_t id) {
    if (p->size == p->cap && !(p->a[--p->size].id & PF_CAND_DELETED)) p->live--; /* many deleted */
    uint32_t lo = 0, hi = p->size;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (p->a[mid].d <= d) lo = mid + 1;
        else hi = mid;
    }
    memmove(p->a + lo + 1, p->a + lo, sizeof *p->a * (p->size - lo));
    p->a[lo].d = d;
    p->a[lo].id = id;
    p->size++;
    if (!(id & PF_CAND_DELETED) && ++p->live > p->ef) {
        /* drop the worst live entry and any deleted ones behind the new worst live entry */
        do {
            if (!(p->a[--p->size].id & PF_CAND_DELETED)) p->live--;
        } while (p->live > p->ef || (p->size && (p->a[p->size - 1].id & PF_CAND_DELETED)));
    }
    return lo;
}

uint32_t pf_hnsw_search_level(const pf_hnsw *h, pf_hnsw_scratch *s, const void *q, const uint32_t *eps,
                              uint32_t n_eps, uint32_t ef, int level, bool filter, uint32_t exclude) {
    const uint16_t epoch = next_epoch(s);
    uint16_t *visited = s->visited;
    const uint32_t deg = level ? h->M : h->M0;
    const size_t vb = h->vec_bytes < PREFETCH_MAX_BYTES ? h->vec_bytes : PREFETCH_MAX_BYTES, dim = h->dim;
    const pf_vdist_fn dist = h->dist;
    const uint8_t *levels = h->levels;
    filter = filter && h->n_deleted > 0;
    pool p = {s->pool, 0, 0, ef, s->pool_cap};
    uint32_t *ids = s->ids;

    if (exclude != PF_NO_ID) visited[exclude] = epoch;
    for (uint32_t i = 0; i < n_eps; i++) {
        uint32_t e = eps[i];
        if (visited[e] == epoch) continue;
        visited[e] = epoch;
        float d = dist(q, pf_hnsw_vec(h, e), dim);
        uint32_t flag = filter && (levels[e] & PF_HNSW_DELETED) ? PF_CAND_DELETED : 0;
        if (p.live < ef || d < p.a[p.size - 1].d) pool_insert(&p, d, e | flag);
    }

    uint32_t cur = 0;
    while (cur < p.size) {
        uint32_t c = PF_CAND_ID(p.a[cur].id);
        p.a[cur].id |= PF_CAND_EXPANDED;
        /* the next node to expand is most likely the next entry: fetch its list early */
        if (cur + 1 < p.size) __builtin_prefetch(pf_hnsw_links(h, PF_CAND_ID(p.a[cur + 1].id), level), 0, 3);

        const uint32_t *l = pf_hnsw_links(h, c, level);
        uint32_t nn = 0;
        for (uint32_t j = 0; j < deg && l[j] != PF_NO_ID; j++) {
            uint32_t e = l[j];
            if (visited[e] == epoch) continue;
            visited[e] = epoch;
            ids[nn++] = e;
        }
        for (uint32_t j = 0; j < nn && j < PREFETCH_AHEAD; j++) prefetch_bytes(pf_hnsw_vec(h, ids[j]), vb);

        uint32_t lowest = PF_NO_ID; /* lowest position inserted at */
        for (uint32_t j = 0; j < nn; j++) {
            if (j + PREFETCH_AHEAD < nn) prefetch_bytes(pf_hnsw_vec(h, ids[j + PREFETCH_AHEAD]), vb);
            uint32_t e = ids[j];
            float d = dist(q, pf_hnsw_vec(h, e), dim);
            if (p.live >= ef && !(d < p.a[p.size - 1].d)) continue;
            uint32_t flag = filter && (levels[e] & PF_HNSW_DELETED) ? PF_CAND_DELETED : 0;
            uint32_t pos = pool_insert(&p, d, e | flag);
            if (pos < lowest) lowest = pos;
            prefetch_bytes(pf_hnsw_links(h, e, level), 4 * (size_t)deg); /* likely expanded soon */
        }
        /* everything before `cur` (and before `lowest`) has been expanded */
        if (lowest < cur) cur = lowest;
        while (cur < p.size && (p.a[cur].id & PF_CAND_EXPANDED)) cur++;
    }
    return p.size;
}

/* ---- public searches ---- */

static int check_query(const pf_hnsw *h, const float *q, int32_t dim, int64_t k, int64_t *labels,
                       pf_error *err) {
    if (!h || !q || !labels) return pf_error_set(err, PF_ERR_ARG, "hnsw search: NULL argument");
    if (dim != h->p.dim)
        return pf_error_set(err, PF_ERR_ARG, "hnsw search: query has %d dimensions, the index %d", (int)dim,
                            (int)h->p.dim);
    if (k < 1) return pf_error_set(err, PF_ERR_ARG, "hnsw search: k = %lld, must be >= 1", (long long)k);
    for (int32_t i = 0; i < dim; i++)
        if (!isfinite(q[i])) return pf_error_set(err, PF_ERR_ARG, "hnsw search: query[%d] is not finite", (int)i);
    return PF_OK;
}

static int64_t emit(const pf_hnsw *h, const pf_cand *a, uint32_t n, int64_t k, int64_t *labels, float *dists) {
    int64_t out = 0;
    for (uint32_t i = 0; i < n && out < k; i++) {
        uint32_t id = PF_CAND_ID(a[i].id);
        if (h->levels[id] & PF_HNSW_DELETED) continue;
        labels[out] = h->labels[id];
        if (dists) dists[out] = a[i].d;
        out++;
    }
    return out;
}

static int64_t exact_scan(const pf_hnsw *h, pf_hnsw_scratch *s, int64_t k, int64_t *labels, float *dists) {
    uint32_t kk = (uint32_t)(k < (int64_t)h->n ? k : (int64_t)h->n);
    if (kk == 0) return 0;
    pool p = {s->pool, 0, 0, kk, s->pool_cap};
    for (uint32_t i = 0; i < h->n; i++) {
        if (h->levels[i] & PF_HNSW_DELETED) continue;
        float d = h->dist(s->prep, pf_hnsw_vec(h, i), h->dim);
        if (p.live < kk || d < p.a[p.size - 1].d) pool_insert(&p, d, i);
    }
    return emit(h, p.a, p.size, k, labels, dists);
}

int64_t pf_hnsw_search_exact(const pf_hnsw *h, const float *q, int32_t dim, int64_t k, int64_t *labels,
                             float *dists, pf_error *err) {
    int rc = check_query(h, q, dim, k, labels, err);
    if (rc) return rc;
    if (pf_hnsw_count(h) == 0) return 0;
    pf_hnsw_scratch *s = pf_hnsw_scratch_get(h);
    uint32_t kk = (uint32_t)(k < (int64_t)h->n ? k : (int64_t)h->n);
    if (!s || !pf_hnsw_scratch_fit(h, s, kk)) {
        pf_hnsw_scratch_put(h, s);
        return pf_error_set(err, PF_ERR_NOMEM, "hnsw search: out of memory");
    }
    pf_hnsw_prepare(h, s, q);
    int64_t n = exact_scan(h, s, k, labels, dists);
    pf_hnsw_scratch_put(h, s);
    return n;
}

int64_t pf_hnsw_search(const pf_hnsw *h, const float *q, int32_t dim, int64_t k, int64_t ef, int64_t *labels,
                       float *dists, pf_error *err) {
    int rc = check_query(h, q, dim, k, labels, err);
    if (rc) return rc;
    int64_t live = pf_hnsw_count(h);
    if (live == 0) return 0;
    if (live < h->p.exact_below) return pf_hnsw_search_exact(h, q, dim, k, labels, dists, err);
    if (ef < k) ef = k;
    if (ef > (int64_t)h->n) ef = h->n; /* the list can never hold more */
    if (k > ef) k = ef;
    pf_hnsw_scratch *s = pf_hnsw_scratch_get(h);
    if (!s || !pf_hnsw_scratch_fit(h, s, (uint32_t)ef)) {
        pf_hnsw_scratch_put(h, s);
        return pf_error_set(err, PF_ERR_NOMEM, "hnsw search: out of memory");
    }
    pf_hnsw_prepare(h, s, q);
    uint32_t cur = h->ep;
    float cur_d = h->dist(s->prep, pf_hnsw_vec(h, cur), h->dim);
    for (int lc = h->max_level; lc > 0; lc--) pf_hnsw_greedy(h, s->prep, lc, PF_NO_ID, &cur, &cur_d);
    uint32_t n = pf_hnsw_search_level(h, s, s->prep, &cur, 1, (uint32_t)ef, 0, true, PF_NO_ID);
    int64_t out = emit(h, s->pool, n, k, labels, dists);
    pf_hnsw_scratch_put(h, s);
    return out;
}
