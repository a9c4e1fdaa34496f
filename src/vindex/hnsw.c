/* HNSW index: creation, storage growth, insertion (with the paper's neighbour-selection
 * heuristic, Malkov & Yashunin 2018, algorithm 4), removal and slot reuse.
 *
 * Layout (see vindex_internal.h): vectors, level-0 lists and labels are flat per-slot arrays,
 * so a saved file can be mapped and used in place. Level-0 lists hold 2M ids and end at the
 * first PF_NO_ID (no count field: a list is exactly two cache lines at M = 16). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vindex/vindex_internal.h"

pf_hnsw_params pf_hnsw_default_params(int32_t dim, pf_metric metric) {
    pf_hnsw_params p = {0};
    p.dim = dim;
    p.metric = metric;
    p.storage = PF_VEC_F32;
    p.M = 16;
    p.ef_construction = 200;
    p.seed = 0x5eed;
    p.exact_below = 2000;
    p.isa = PF_ISA_AUTO;
    return p;
}

int pf_hnsw_check_params(const pf_hnsw_params *p, pf_error *err) {
    if (p->dim < 1 || p->dim > 65536)
        return pf_error_set(err, PF_ERR_ARG, "hnsw: dim %d out of range 1..65536", (int)p->dim);
    if ((unsigned)p->metric > PF_METRIC_L2)
        return pf_error_set(err, PF_ERR_ARG, "hnsw: unknown metric %d", (int)p->metric);
    if ((unsigned)p->storage > PF_VEC_I8)
        return pf_error_set(err, PF_ERR_ARG, "hnsw: unknown storage %d", (int)p->storage);
    if (p->M < 2 || p->M > 255) return pf_error_set(err, PF_ERR_ARG, "hnsw: M %d out of range 2..255", (int)p->M);
    if (p->ef_construction < 1 || p->ef_construction > 65536)
        return pf_error_set(err, PF_ERR_ARG, "hnsw: ef_construction %d out of range 1..65536", (int)p->ef_construction);
    if (p->exact_below < 0) return pf_error_set(err, PF_ERR_ARG, "hnsw: exact_below must be >= 0");
    if ((unsigned)p->isa > PF_ISA_AVX2) return pf_error_set(err, PF_ERR_ARG, "hnsw: unknown isa %d", (int)p->isa);
    return PF_OK;
}

int pf_hnsw_init_kernels(pf_hnsw *h, pf_error *err) {
    const pf_vdist_table *t = pf_vdist_get(h->p.isa);
    if (!t) return pf_error_set(err, PF_ERR_UNSUPPORTED, "hnsw: this CPU lacks AVX2/FMA/F16C");
    h->dim = (size_t)h->p.dim;
    h->dist = t->fn[h->p.storage][h->p.metric == PF_METRIC_L2 ? PF_VK_L2 : PF_VK_IP];
    h->f16_decode = t->f16_decode;
    h->vec_bytes = pf_vec_bytes(h->p.storage, h->dim);
    h->prep_bytes = h->p.storage == PF_VEC_I8 ? h->vec_bytes : 4 * h->dim;
    h->M = (uint32_t)h->p.M;
    h->M0 = 2 * h->M;
    if (h->p.ef_construction < h->p.M) h->p.ef_construction = h->p.M;
    h->level_mult = 1.0 / log((double)h->M);
    return PF_OK;
}

int pf_hnsw_create(const pf_hnsw_params *p, pf_hnsw **out, pf_error *err) {
    if (!p || !out) return pf_error_set(err, PF_ERR_ARG, "hnsw create: NULL argument");
    *out = NULL;
    int rc = pf_hnsw_check_params(p, err);
    if (rc) return rc;
    pf_hnsw *h = calloc(1, sizeof *h);
    if (!h) return pf_error_set(err, PF_ERR_NOMEM, "hnsw create: out of memory");
    h->p = *p;
    if ((rc = pf_hnsw_init_kernels(h, err))) { free(h); return rc; }
    h->ep = PF_NO_ID;
    h->max_level = -1;
    h->rng = p->seed;
    pthread_mutex_init(&h->scratch_lock, NULL);
    *out = h;
    return PF_OK;
}

static void unmap_if_unused(pf_hnsw *h) {
    if (h->map && !h->slots_mapped && !h->upper_mapped) {
        munmap(h->map, h->map_size);
        h->map = NULL;
        h->map_size = 0;
    }
}

/* Bytes per slot of the four per-slot arrays: vectors, level-0 lists, labels, levels. */
static void slot_sizes(const pf_hnsw *h, size_t sz[4]) {
    sz[0] = h->vec_bytes;
    sz[1] = sizeof(uint32_t) * h->M0;
    sz[2] = sizeof(int64_t);
    sz[3] = 1;
}

void pf_hnsw_free(pf_hnsw *h) {
    if (!h) return;
    size_t sz[4];
    slot_sizes(h, sz);
    if (!h->slots_mapped) {
        pf_vbig_free(h->vecs, sz[0] * h->cap);
        pf_vbig_free(h->links0, sz[1] * h->cap);
        pf_vbig_free(h->labels, sz[2] * h->cap);
        pf_vbig_free(h->levels, sz[3] * h->cap);
    }
    if (!h->upper_mapped) pf_vbig_free(h->upper, sizeof(uint32_t) * h->upper_cap);
    if (h->map) munmap(h->map, h->map_size);
    pf_vbig_free(h->upper_off, sizeof(uint32_t) * h->cap);
    free(h->free_slots);
    pf_labelmap_free(&h->lmap);
    pf_hnsw_scratch_free_all(h);
    pthread_mutex_destroy(&h->scratch_lock);
    free(h);
}

/* ---- storage growth ---- */

static int grow_slots(pf_hnsw *h, uint64_t need, pf_error *err) {
    if (need <= h->cap) return PF_OK;
    if (need > PF_HNSW_MAX_SLOTS) return pf_error_set(err, PF_ERR_ARG, "hnsw: more than %u slots", PF_HNSW_MAX_SLOTS);
    uint64_t cap = h->cap < 64 ? 64 : 2 * (uint64_t)h->cap;
    if (cap < need) cap = need;
    if (cap > PF_HNSW_MAX_SLOTS) cap = PF_HNSW_MAX_SLOTS;
    /* All five arrays share one capacity (it is how their sizes are known when freed), so
     * allocate them all before committing: a failure changes nothing. Arrays that were views
     * of a file mapping are copied and the mapping left; upper_off is always heap. */
    size_t sz[5];
    slot_sizes(h, sz);
    sz[4] = sizeof(uint32_t);
    void **arr[5] = {(void **)&h->vecs, (void **)&h->links0, (void **)&h->labels, (void **)&h->levels,
                     (void **)&h->upper_off};
    void *fresh[5];
    for (int i = 0; i < 5; i++) {
        if (!(fresh[i] = pf_vbig_alloc(sz[i] * cap))) {
            for (int j = 0; j < i; j++) pf_vbig_free(fresh[j], sz[j] * cap);
            return pf_error_set(err, PF_ERR_NOMEM, "hnsw: out of memory growing to %llu slots", (unsigned long long)cap);
        }
    }
    for (int i = 0; i < 5; i++) {
        if (h->n) memcpy(fresh[i], *arr[i], sz[i] * h->n);
        if (i == 4 || !h->slots_mapped) pf_vbig_free(*arr[i], sz[i] * h->cap);
        *arr[i] = fresh[i];
    }
    h->slots_mapped = false;
    unmap_if_unused(h);
    h->cap = (uint32_t)cap;
    return PF_OK;
}

static int grow_upper(pf_hnsw *h, uint64_t need, pf_error *err) {
    if (need <= h->upper_cap) return PF_OK;
    if (need > UINT32_MAX) return pf_error_set(err, PF_ERR_ARG, "hnsw: upper-level lists exceed 2^32 entries");
    uint64_t cap = h->upper_cap < 1024 ? 1024 : 2 * h->upper_cap;
    if (cap < need) cap = need;
    if (cap > UINT32_MAX) cap = UINT32_MAX;
    uint32_t *p;
    if (h->upper_mapped) {
        if (!(p = pf_vbig_alloc(sizeof *p * cap))) return pf_error_set(err, PF_ERR_NOMEM, "hnsw: out of memory");
        if (h->upper_n) memcpy(p, h->upper, sizeof *p * h->upper_n);
        h->upper_mapped = false;
        h->upper = p;
        unmap_if_unused(h);
    } else {
        if (!(p = pf_vbig_realloc(h->upper, sizeof *p * h->upper_cap, sizeof *p * cap)))
            return pf_error_set(err, PF_ERR_NOMEM, "hnsw: out of memory");
        h->upper = p;
    }
    h->upper_cap = cap;
    return PF_OK;
}

int pf_hnsw_reserve(pf_hnsw *h, int64_t n, pf_error *err) {
    if (!h || n < 0) return pf_error_set(err, PF_ERR_ARG, "hnsw reserve: bad argument");
    int rc = grow_slots(h, (uint64_t)n, err);
    if (rc) return rc;
    if (pf_labelmap_reserve(&h->lmap, h->labels, (size_t)n)) return pf_error_set(err, PF_ERR_NOMEM, "hnsw: out of memory");
    return PF_OK;
}

/* ---- neighbour selection ---- */

/* c[0..nc) sorted by distance to the base node. Keeps a candidate only when it is closer to
 * the base than to every neighbour kept so far, so the links spread over directions instead of
 * all pointing into the nearest cluster (what keeps clustered data navigable). */
static uint32_t select_heuristic(const pf_hnsw *h, const pf_cand *c, uint32_t nc, uint32_t m, uint32_t *out,
                                 float *buf) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < nc && k < m; i++) {
        uint32_t id = PF_CAND_ID(c[i].id);
        const void *pc = pf_hnsw_prep_stored(h, id, buf);
        bool good = true;
        for (uint32_t j = 0; j < k && good; j++) good = !(h->dist(pc, pf_hnsw_vec(h, out[j]), h->dim) < c[i].d);
        if (good) out[k++] = id;
    }
    return k;
}

/* Links x to sel[0..ns) on `level` and each of them back to x; a full list is re-selected
 * with the heuristic among its old members and x. */
static void connect(pf_hnsw *h, pf_hnsw_scratch *s, uint32_t x, int level, const uint32_t *sel, uint32_t ns) {
    const uint32_t cap = level ? h->M : h->M0;
    uint32_t *lx = pf_hnsw_links(h, x, level);
    for (uint32_t i = 0; i < cap; i++) lx[i] = i < ns ? sel[i] : PF_NO_ID;
    for (uint32_t i = 0; i < ns; i++) {
        uint32_t e = sel[i], cnt = 0;
        uint32_t *le = pf_hnsw_links(h, e, level);
        bool has = false;
        for (; cnt < cap && le[cnt] != PF_NO_ID; cnt++) has |= le[cnt] == x;
        if (has) continue; /* a link left over from the slot's previous vector */
        if (cnt < cap) { le[cnt] = x; continue; }
        const void *pe = pf_hnsw_prep_stored(h, e, s->tmp2);
        pf_cand *c = s->cands;
        for (uint32_t j = 0; j <= cap; j++) {
            uint32_t y = j < cap ? le[j] : x;
            pf_cand v = {h->dist(pe, pf_hnsw_vec(h, y), h->dim), y};
            uint32_t k = j;
            for (; k > 0 && c[k - 1].d > v.d; k--) c[k] = c[k - 1]; /* insertion sort, <= 511 */
            c[k] = v;
        }
        uint32_t k = select_heuristic(h, c, cap + 1, cap, s->ids, s->tmp);
        for (uint32_t j = 0; j < cap; j++) le[j] = j < k ? s->ids[j] : PF_NO_ID;
    }
}

/* Inserts slot x (vector already stored, lists cleared) of level `level`; s->prep holds it. */
static void insert_node(pf_hnsw *h, pf_hnsw_scratch *s, uint32_t x, int level) {
    if (h->ep == PF_NO_ID) {
        h->ep = x;
        h->max_level = level;
        return;
    }
    uint32_t cur = h->ep;
    float cur_d = h->dist(s->prep, pf_hnsw_vec(h, cur), h->dim);
    for (int lc = h->max_level; lc > level; lc--) pf_hnsw_greedy(h, s->prep, lc, x, &cur, &cur_d);
    const uint32_t *eps = &cur;
    uint32_t n_eps = 1;
    for (int lc = level < h->max_level ? level : h->max_level; lc >= 0; lc--) {
        uint32_t n = pf_hnsw_search_level(h, s, s->prep, eps, n_eps, (uint32_t)h->p.ef_construction, lc, false, x);
        uint32_t ns = select_heuristic(h, s->pool, n, h->M, s->sel, s->tmp);
        connect(h, s, x, lc, s->sel, ns);
        if (ns) { eps = s->sel; n_eps = ns; } /* the new neighbours seed the next level down */
    }
    if (level > h->max_level) {
        h->max_level = level;
        h->ep = x;
    }
}

static int draw_level(pf_hnsw *h) {
    uint64_t z = (h->rng += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    double u = (double)(z >> 11) * 0x1p-53; /* [0, 1) */
    double l = -log(1.0 - u) * h->level_mult;
    return l >= PF_HNSW_MAX_LEVEL ? PF_HNSW_MAX_LEVEL : (int)l;
}

/* ---- add / remove ---- */

static void mark_deleted(pf_hnsw *h, uint32_t slot) { /* free list has room (reserved by caller) */
    pf_labelmap_erase(&h->lmap, h->labels, h->labels[slot]);
    h->levels[slot] |= PF_HNSW_DELETED;
    h->n_deleted++;
    h->free_slots[h->n_free++] = slot;
}

static int reserve_free(pf_hnsw *h, pf_error *err) {
    if (h->n_free < h->free_cap) return PF_OK;
    uint32_t cap = h->free_cap ? 2 * h->free_cap : 64;
    uint32_t *p = realloc(h->free_slots, sizeof *p * cap);
    if (!p) return pf_error_set(err, PF_ERR_NOMEM, "hnsw: out of memory");
    h->free_slots = p;
    h->free_cap = cap;
    return PF_OK;
}

int pf_hnsw_remove(pf_hnsw *h, int64_t label, pf_error *err) {
    if (!h) return pf_error_set(err, PF_ERR_ARG, "hnsw remove: NULL index");
    uint32_t slot = pf_labelmap_find(&h->lmap, h->labels, label);
    if (slot == PF_NO_ID) return pf_error_set(err, PF_ERR_NOT_FOUND, "hnsw remove: label %lld not in the index", (long long)label);
    int rc = reserve_free(h, err);
    if (rc) return rc;
    mark_deleted(h, slot);
    return PF_OK;
}

int pf_hnsw_add(pf_hnsw *h, int64_t label, const float *v, int32_t dim, pf_error *err) {
    if (!h || !v) return pf_error_set(err, PF_ERR_ARG, "hnsw add: NULL argument");
    if (dim != h->p.dim)
        return pf_error_set(err, PF_ERR_ARG, "hnsw add: vector has %d dimensions, the index %d", (int)dim, (int)h->p.dim);
    for (int32_t i = 0; i < dim; i++)
        if (!isfinite(v[i])) return pf_error_set(err, PF_ERR_ARG, "hnsw add: label %lld: v[%d] is not finite", (long long)label, (int)i);

    /* Every allocation happens before the index changes, so a failure leaves it intact. */
    uint32_t old = pf_labelmap_find(&h->lmap, h->labels, label);
    bool reuse = (old != PF_NO_ID && old != h->ep) || h->n_free > 1 ||
                 (h->n_free == 1 && (h->free_slots[0] != h->ep || old != PF_NO_ID));
    int level = 0, rc;
    if (!reuse) {
        if ((rc = grow_slots(h, (uint64_t)h->n + 1, err))) return rc;
        level = draw_level(h);
        if ((rc = grow_upper(h, h->upper_n + (uint64_t)level * h->M, err))) return rc;
    }
    if ((rc = reserve_free(h, err))) return rc;
    if (pf_labelmap_reserve(&h->lmap, h->labels, h->lmap.n + 1))
        return pf_error_set(err, PF_ERR_NOMEM, "hnsw add: out of memory");
    pf_hnsw_scratch *s = pf_hnsw_scratch_get(h);
    if (!s || !pf_hnsw_scratch_fit(h, s, (uint32_t)h->p.ef_construction)) {
        pf_hnsw_scratch_put(h, s);
        return pf_error_set(err, PF_ERR_NOMEM, "hnsw add: out of memory");
    }

    if (old != PF_NO_ID) mark_deleted(h, old);
    uint32_t x;
    if (reuse) { /* the most recently freed slot that is not the entry point */
        uint32_t i = h->n_free - 1;
        if (h->free_slots[i] == h->ep) i--;
        x = h->free_slots[i];
        h->free_slots[i] = h->free_slots[--h->n_free];
        level = pf_hnsw_level(h, x); /* keep the level: its upper lists already exist */
        h->n_deleted--;
    } else {
        x = h->n++;
        h->upper_off[x] = (uint32_t)h->upper_n;
        h->upper_n += (uint64_t)level * h->M;
    }
    h->levels[x] = (uint8_t)level;
    h->labels[x] = label;
    pf_labelmap_insert(&h->lmap, h->labels, x); /* cannot fail: reserved */
    for (int lc = 0; lc <= level; lc++) {
        uint32_t *l = pf_hnsw_links(h, x, lc);
        for (uint32_t i = 0; i < (lc ? h->M : h->M0); i++) l[i] = PF_NO_ID;
    }
    pf_hnsw_prepare(h, s, v);
    pf_vec_encode(h->p.storage, s->qf, h->dim, h->vecs + (size_t)x * h->vec_bytes);
    insert_node(h, s, x, level);
    pf_hnsw_scratch_put(h, s);
    return PF_OK;
}

/* ---- queries on the index itself ---- */

bool pf_hnsw_contains(const pf_hnsw *h, int64_t label) {
    return h && pf_labelmap_find(&h->lmap, h->labels, label) != PF_NO_ID;
}

int64_t pf_hnsw_count(const pf_hnsw *h) { return h ? (int64_t)h->n - h->n_deleted : 0; }

pf_hnsw_params pf_hnsw_get_params(const pf_hnsw *h) { return h->p; }

void pf_hnsw_get_stats(const pf_hnsw *h, pf_hnsw_stats *out) {
    memset(out, 0, sizeof *out);
    out->count = pf_hnsw_count(h);
    out->slots = h->n;
    out->deleted = h->n_deleted;
    out->max_level = h->max_level;
    size_t heap = sizeof *h + sizeof(uint32_t) * (h->cap + h->lmap.cap + h->free_cap);
    if (!h->slots_mapped) heap += (h->vec_bytes + sizeof(uint32_t) * h->M0 + sizeof(int64_t) + 1) * h->cap;
    if (!h->upper_mapped) heap += sizeof(uint32_t) * h->upper_cap;
    pf_hnsw *m = (pf_hnsw *)h;
    pthread_mutex_lock(&m->scratch_lock);
    for (const pf_hnsw_scratch *s = h->scratch_free; s; s = s->next)
        heap += sizeof *s + sizeof(uint16_t) * s->vcap + sizeof(pf_cand) * s->pool_cap + 4 * h->dim * 3 +
                h->prep_bytes + (sizeof(uint32_t) * 2 + sizeof(pf_cand)) * (h->M0 + 1);
    pthread_mutex_unlock(&m->scratch_lock);
    out->heap_bytes = heap;
    out->mapped_bytes = h->map ? h->map_size : 0;
}
