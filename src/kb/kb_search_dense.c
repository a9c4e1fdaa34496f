/* Dense side of retrieval: embed the query (with the model's query prefix), then the HNSW index.
 *
 * Filters are applied to the index's answers, so a filtered search first asks for 8 × depth
 * neighbours and keeps those that pass. A filter so selective that this is not enough switches
 * to an exact scan: the ids of the chunks that pass come from SQL and every vector is ranked by
 * brute force (a few ms per 100k vectors), which is exact and bounded, unlike widening the
 * graph search until it visits everything anyway. */
#include <stdlib.h>
#include <string.h>

#include "kb/retrieve.h"

static double dist_to_score(pf_metric m, float d) {
    return m == PF_METRIC_L2 ? -(double)d : 1.0 - (double)d; /* cosine / ip: the similarity */
}

static int embed_query(pf_retriever *r, const char *query, const pf_search_params *p, pf_error *err) {
    const char *prefix = p->query_prefix ? p->query_prefix : pf_search_query_prefix(pf_embedder_name(r->emb));
    size_t lp = strlen(prefix), lq = strlen(query);
    char *text = malloc(lp + lq + 1);
    if (!text) return pf_error_set(err, PF_ERR_NOMEM, "search: out of memory");
    memcpy(text, prefix, lp);
    memcpy(text + lp, query, lq + 1);
    const char *texts[1] = {text};
    int64_t rc = pf_embed(r->emb, texts, 1, r->qvec, err);
    free(text);
    return rc < 0 ? (int)rc : PF_OK;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Sorted ids of the chunks whose document passes the filters. */
static int allowed_ids(pf_retriever *r, const pf_search_params *p, int64_t **ids, int64_t *n, pf_error *err) {
    sqlite3_stmt *st = r->st_allowed;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (p->source_glob) sqlite3_bind_text(st, 1, p->source_glob, -1, SQLITE_STATIC);
    if (p->doc_types && *p->doc_types) sqlite3_bind_text(st, 2, p->doc_types, -1, SQLITE_STATIC);
    int64_t cap = 1024;
    *n = 0;
    *ids = malloc((size_t)cap * sizeof **ids);
    int rc = *ids ? SQLITE_ROW : SQLITE_NOMEM;
    while (*ids && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            int64_t *nv = realloc(*ids, (size_t)(cap *= 2) * sizeof *nv);
            if (!nv) { rc = SQLITE_NOMEM; break; }
            *ids = nv;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) return PF_OK;
    free(*ids);
    *ids = NULL;
    return rc == SQLITE_NOMEM ? pf_error_set(err, PF_ERR_NOMEM, "search: out of memory")
                              : pf_error_set(err, PF_ERR_IO, "filtering chunks: %s", sqlite3_errmsg(r->db));
}

/* Exact ranking of every vector, keeping those in `allowed`. */
static int exact_filtered(pf_retriever *r, const pf_search_params *p, int64_t live, pf_cand_list *out, pf_error *err) {
    int64_t *allowed = NULL, n_allowed = 0;
    int rc = allowed_ids(r, p, &allowed, &n_allowed, err);
    if (rc) return rc;
    int64_t *labels = malloc((size_t)live * sizeof *labels);
    float *dists = malloc((size_t)live * sizeof *dists);
    int64_t n = 0;
    if (!labels || !dists) rc = pf_error_set(err, PF_ERR_NOMEM, "search: out of memory");
    else if ((n = pf_hnsw_search_exact(r->index, r->qvec, r->dim, live, labels, dists, err)) < 0) rc = (int)n;
    pf_metric metric = pf_hnsw_get_params(r->index).metric;
    out->n = 0;
    for (int64_t i = 0; rc == PF_OK && i < n && out->n < p->depth; i++) {
        if (!n_allowed || !bsearch(&labels[i], allowed, (size_t)n_allowed, sizeof *allowed, cmp_i64)) continue;
        pf_cand c = {.chunk_id = labels[i], .score = dist_to_score(metric, dists[i])};
        if (pf_cand_push(out, c)) rc = pf_error_set(err, PF_ERR_NOMEM, "search: out of memory");
    }
    free(labels);
    free(dists);
    free(allowed);
    return rc;
}

int pf_dense_list(pf_retriever *r, const char *query, const pf_search_params *p, pf_cand_list *out, pf_error *err) {
    int rc = embed_query(r, query, p, err);
    if (rc) return rc;
    pf_metric metric = pf_hnsw_get_params(r->index).metric;
    int64_t live = pf_hnsw_count(r->index);
    bool filtered = p->source_glob || (p->doc_types && *p->doc_types);
    int64_t want = filtered ? (int64_t)p->depth * 8 : p->depth;
    if (want > live) want = live;
    if (want <= 0) return PF_OK;
    int64_t ef = p->ef > 0 ? p->ef : 64;
    if (ef < want) ef = want;
    int64_t *labels = malloc((size_t)want * sizeof *labels);
    float *dists = malloc((size_t)want * sizeof *dists);
    if (!labels || !dists) { free(labels); free(dists); return pf_error_set(err, PF_ERR_NOMEM, "search: out of memory"); }
    int64_t n = pf_hnsw_search(r->index, r->qvec, r->dim, want, ef, labels, dists, err);
    if (n < 0) rc = (int)n;
    out->n = 0;
    for (int64_t i = 0; i < n && rc == PF_OK && out->n < p->depth; i++) {
        if (filtered) {
            pf_chunk_row row;
            int found = pf_retriever_chunk_row(r, labels[i], &row, err);
            if (found < 0) { rc = found; break; }
            if (!found || !pf_search_filter_ok(p, row.source, row.doc_type)) continue;
        }
        pf_cand c = {.chunk_id = labels[i], .score = dist_to_score(metric, dists[i])};
        if (pf_cand_push(out, c)) rc = pf_error_set(err, PF_ERR_NOMEM, "search: out of memory");
    }
    free(labels);
    free(dists);
    if (rc == PF_OK && filtered && out->n < p->depth && want < live) rc = exact_filtered(r, p, live, out, err);
    return rc;
}
