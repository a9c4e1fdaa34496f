/* The retriever: BM25 and dense candidate lists, fusion, duplicate collapsing, and the rows that
 * make each hit citable (document key, source, page, heading, offsets). */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kb/retrieve.h"


/* ?1 MATCH expression, ?2 ?3 k1 b, ?4 ?5 column weights, ?6 limit, ?7 source glob, ?8 doc types,
 * ?9 the document-length cache (a pointer). */
static const char SQL_BM25[] =
    "SELECT rowid, pf_bm25(chunks_fts, ?2, ?3, ?9, ?4, ?5) AS s FROM chunks_fts "
    "WHERE chunks_fts MATCH ?1 ORDER BY s DESC, rowid LIMIT ?6";
static const char SQL_BM25_FILTERED[] =
    "SELECT chunks_fts.rowid, pf_bm25(chunks_fts, ?2, ?3, ?9, ?4, ?5) AS s FROM chunks_fts "
    "JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.doc_id "
    "WHERE chunks_fts MATCH ?1 AND (?7 IS NULL OR pf_fnmatch(?7, d.source)) "
    "AND (?8 IS NULL OR instr(',' || lower(?8) || ',', ',' || lower(d.doc_type) || ',') > 0) "
    "ORDER BY s DESC, chunks_fts.rowid LIMIT ?6";
static const char SQL_ALLOWED[] =
    "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE (?1 IS NULL OR pf_fnmatch(?1, d.source)) "
    "AND (?2 IS NULL OR instr(',' || lower(?2) || ',', ',' || lower(d.doc_type) || ',') > 0) ORDER BY c.id";
static const char SQL_CHUNK[] =
    "SELECT c.doc_id, c.text, c.heading, c.page, c.start_char, c.end_char, d.doc_key, d.source, d.title, "
    "d.doc_type FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id = ?1";

pf_search_params pf_search_default_params(void) {
    return (pf_search_params){
        .mode = PF_SEARCH_HYBRID, .k = 10, .depth = 50, .rrf_k = 60.0, .w_bm25 = 1.0, .w_dense = 1.0,
        .bm25_k1 = 0.9, .bm25_b = 0.4, .w_text = 1.0, .w_heading = 1.0, .stopwords = true, .ef = 0,
        .query_prefix = NULL, .source_glob = NULL, .doc_types = NULL, .dedup = true, .dedup_jaccard = 0.9,
    };
}

/* "e5" as a word of a model name ("multilingual-e5-small"), not inside one ("...-v1.e5x"). */
static bool is_e5(const char *name) {
    for (const char *s = name; (s = strcasestr(s, "e5")) != NULL; s++) {
        bool start = s == name || !isalnum((unsigned char)s[-1]);
        bool end = !isalnum((unsigned char)s[2]);
        if (start && end) return true;
    }
    return false;
}

const char *pf_search_query_prefix(const char *name) {
    if (!name) return "";
    if (strcasestr(name, "bge")) return "Represent this sentence for searching relevant passages: ";
    if (strcasestr(name, "nomic")) return "search_query: ";
    if (is_e5(name)) return "query: ";
    return "";
}

const char *pf_search_document_prefix(const char *name) {
    if (!name) return "";
    if (strcasestr(name, "nomic")) return "search_document: ";
    if (is_e5(name)) return "passage: ";
    return "";
}

int pf_kb_retriever(pf_kb *kb, bool dense, int n_threads, pf_retriever **out, pf_error *err) {
    *out = NULL;
    if (!kb) return pf_error_set(err, PF_ERR_ARG, "pf_kb_retriever: no knowledge base");
    pf_embedder *emb = NULL;
    pf_hnsw *index = NULL;
    if (dense) {
        int rc = pf_kb_embedder(kb, n_threads, &emb, err);
        if (rc == PF_OK && emb) rc = pf_kb_vector_index(kb, &index, err);
        if (rc != PF_OK) return rc;
        if (!index) emb = NULL;
    }
    return pf_retriever_open(pf_kb_db(kb), emb, index, out, err);
}

const char *pf_search_mode_name(pf_search_mode m) {
    switch (m) {
    case PF_SEARCH_BM25: return "bm25";
    case PF_SEARCH_DENSE: return "dense";
    case PF_SEARCH_HYBRID: return "hybrid";
    }
    return "unknown";
}

int pf_search_mode_from_name(const char *name, pf_search_mode *out) {
    for (int m = PF_SEARCH_BM25; m <= PF_SEARCH_HYBRID; m++)
        if (name && !strcasecmp(name, pf_search_mode_name((pf_search_mode)m))) { *out = (pf_search_mode)m; return PF_OK; }
    return PF_ERR_ARG;
}

static int db_fail(pf_retriever *r, pf_error *err, const char *what) {
    return pf_error_set(err, PF_ERR_IO, "%s: %s", what, sqlite3_errmsg(r->db));
}

void pf_retriever_free(pf_retriever *r) {
    if (!r) return;
    sqlite3_finalize(r->st_bm25);
    sqlite3_finalize(r->st_bm25_filtered);
    sqlite3_finalize(r->st_chunk);
    sqlite3_finalize(r->st_allowed);
    free(r->qvec);
    pf_doclen_free(&r->doclen);
    free(r);
}

int pf_retriever_open(sqlite3 *db, pf_embedder *emb, const pf_hnsw *index, pf_retriever **out, pf_error *err) {
    *out = NULL;
    if (!db) return pf_error_set(err, PF_ERR_ARG, "retriever: no database");
    pf_retriever *r = calloc(1, sizeof *r);
    if (!r) return pf_error_set(err, PF_ERR_NOMEM, "retriever: out of memory");
    r->db = db;
    int rc = pf_search_register(db, err);
    if (rc) { free(r); return rc; }
    if (sqlite3_prepare_v3(db, SQL_BM25, -1, SQLITE_PREPARE_PERSISTENT, &r->st_bm25, NULL) ||
        sqlite3_prepare_v3(db, SQL_BM25_FILTERED, -1, SQLITE_PREPARE_PERSISTENT, &r->st_bm25_filtered, NULL) ||
        sqlite3_prepare_v3(db, SQL_CHUNK, -1, SQLITE_PREPARE_PERSISTENT, &r->st_chunk, NULL) ||
        sqlite3_prepare_v3(db, SQL_ALLOWED, -1, SQLITE_PREPARE_PERSISTENT, &r->st_allowed, NULL)) {
        rc = pf_error_set(err, PF_ERR_FORMAT, "not a knowledge base (schema): %s", sqlite3_errmsg(db));
        pf_retriever_free(r);
        return rc;
    }
    if (emb && index) {
        int64_t d = pf_embedder_dim(emb);
        pf_hnsw_params hp = pf_hnsw_get_params(index);
        if (d != hp.dim) {
            rc = pf_error_set(err, PF_ERR_ARG, "embedder dimension %lld differs from the vector index's %d",
                              (long long)d, (int)hp.dim);
            pf_retriever_free(r);
            return rc;
        }
        r->emb = emb;
        r->index = index;
        r->dim = (int32_t)d;
        r->qvec = malloc((size_t)d * sizeof *r->qvec);
        if (!r->qvec) { pf_retriever_free(r); return pf_error_set(err, PF_ERR_NOMEM, "retriever: out of memory"); }
    }
    *out = r;
    return PF_OK;
}

/* ---- BM25 list ---------------------------------------------------------------------------- */

static int bm25_list(pf_retriever *r, const char *match, const pf_search_params *p, pf_cand_list *out,
                     pf_error *err) {
    bool filtered = p->source_glob || (p->doc_types && *p->doc_types);
    sqlite3_stmt *st = filtered ? r->st_bm25_filtered : r->st_bm25;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 2, p->bm25_k1);
    sqlite3_bind_double(st, 3, p->bm25_b);
    sqlite3_bind_double(st, 4, p->w_text);
    sqlite3_bind_double(st, 5, p->w_heading);
    sqlite3_bind_int(st, 6, p->depth);
    int rc = pf_doclen_refresh(r->db, &r->doclen, err);
    if (rc) return rc;
    if (r->doclen.len) sqlite3_bind_pointer(st, 9, &r->doclen, PF_DOCLEN_TYPE, NULL);
    if (filtered) {
        if (p->source_glob) sqlite3_bind_text(st, 7, p->source_glob, -1, SQLITE_STATIC);
        if (p->doc_types && *p->doc_types) sqlite3_bind_text(st, 8, p->doc_types, -1, SQLITE_STATIC);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        pf_cand c = {.chunk_id = sqlite3_column_int64(st, 0), .score = sqlite3_column_double(st, 1)};
        if (pf_cand_push(out, c)) { sqlite3_reset(st); return pf_error_set(err, PF_ERR_NOMEM, "search: out of memory"); }
    }
    if (rc != SQLITE_DONE) {
        int e = db_fail(r, err, "bm25 search");
        sqlite3_reset(st);
        return e;
    }
    sqlite3_reset(st);
    return PF_OK;
}

/* ---- chunk rows ------------------------------------------------------------------------------ */

int pf_retriever_chunk_row(pf_retriever *r, int64_t id, pf_chunk_row *row, pf_error *err) {
    sqlite3_stmt *st = r->st_chunk;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) return 0;
    if (rc != SQLITE_ROW) return db_fail(r, err, "reading a chunk");
    row->doc_id = sqlite3_column_int64(st, 0);
    row->text = (const char *)sqlite3_column_text(st, 1);
    row->heading = (const char *)sqlite3_column_text(st, 2);
    row->page = sqlite3_column_type(st, 3) == SQLITE_NULL ? 0 : sqlite3_column_int(st, 3);
    row->start_char = sqlite3_column_int64(st, 4);
    row->end_char = sqlite3_column_int64(st, 5);
    row->doc_key = (const char *)sqlite3_column_text(st, 6);
    row->source = (const char *)sqlite3_column_text(st, 7);
    row->title = (const char *)sqlite3_column_text(st, 8);
    row->doc_type = (const char *)sqlite3_column_text(st, 9);
    if (!row->text) row->text = "";
    return 1;
}

/* ---- the whole query ------------------------------------------------------------------------ */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

void pf_search_results_free(pf_search_results *res) {
    if (!res) return;
    for (int32_t i = 0; i < res->n; i++) {
        pf_search_hit *h = &res->hits[i];
        free(h->doc_key); free(h->source); free(h->title); free(h->doc_type); free(h->heading); free(h->text);
    }
    free(res->hits);
    free(res->fts_query);
    memset(res, 0, sizeof *res);
}

/* Turns ranked candidates into hits: rows fetched, filters re-checked, duplicates collapsed. */
static int build_hits(pf_retriever *r, const pf_cand_list *cands, const pf_search_params *p, pf_search_results *res,
                      pf_error *err) {
    res->hits = calloc((size_t)p->k, sizeof *res->hits);
    pf_dedup_sig *sigs = calloc((size_t)p->k, sizeof *sigs);
    int rc = (!res->hits || !sigs) ? pf_error_set(err, PF_ERR_NOMEM, "search: out of memory") : PF_OK;
    for (int32_t i = 0; i < cands->n && res->n < p->k && rc == PF_OK; i++) {
        const pf_cand *c = &cands->v[i];
        pf_chunk_row row;
        int found = pf_retriever_chunk_row(r, c->chunk_id, &row, err);
        if (found < 0) { rc = found; break; }
        if (!found || !pf_search_filter_ok(p, row.source, row.doc_type)) continue; /* index ahead of db */
        pf_dedup_sig sig = {0};
        if (p->dedup) {
            if (pf_dedup_sig_make(row.text, &sig)) { rc = pf_error_set(err, PF_ERR_NOMEM, "search: out of memory"); break; }
            int32_t dup = -1;
            for (int32_t j = 0; j < res->n && dup < 0; j++)
                if (pf_dedup_same(&sigs[j], &sig, p->dedup_jaccard)) dup = j;
            if (dup >= 0) { res->hits[dup].n_collapsed++; pf_dedup_sig_free(&sig); continue; }
        }
        pf_search_hit *h = &res->hits[res->n];
        *h = (pf_search_hit){
            .doc_id = row.doc_id, .chunk_id = c->chunk_id, .score = c->score, .page = row.page,
            .start_char = row.start_char, .end_char = row.end_char, .bm25_rank = c->bm25_rank,
            .dense_rank = c->dense_rank, .bm25_score = c->bm25, .dense_score = c->dense,
        };
        h->doc_key = dup_or_null(row.doc_key); h->source = dup_or_null(row.source);
        h->title = dup_or_null(row.title); h->doc_type = dup_or_null(row.doc_type);
        h->heading = row.heading && *row.heading ? strdup(row.heading) : NULL;
        h->text = strdup(row.text);
        sigs[res->n++] = sig;
        if (!h->doc_key || !h->source || !h->doc_type || !h->text || (row.title && !h->title) ||
            (row.heading && *row.heading && !h->heading))
            rc = pf_error_set(err, PF_ERR_NOMEM, "search: out of memory");
    }
    sqlite3_reset(r->st_chunk);
    if (sigs) for (int32_t j = 0; j < res->n; j++) pf_dedup_sig_free(&sigs[j]);
    free(sigs);
    return rc;
}

/* A single list becomes the ranking as is (its own scores, its ranks recorded). */
static void as_ranking(pf_cand_list *l, bool dense) {
    for (int32_t i = 0; i < l->n; i++) {
        pf_cand *c = &l->v[i];
        if (dense) { c->dense = c->score; c->dense_rank = i + 1; }
        else { c->bm25 = c->score; c->bm25_rank = i + 1; }
    }
}

static int run_search(pf_retriever *r, const char *query, const pf_search_params *pp, pf_search_results *res,
                      pf_error *err) {
    pf_search_params p = *pp;
    bool can_dense = r->emb && r->index;
    if (p.mode == PF_SEARCH_DENSE && !can_dense)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "dense search needs an embedding model and a vector index; "
                                                     "this knowledge base has none (use --mode bm25)");
    res->mode = (p.mode == PF_SEARCH_HYBRID && !can_dense) ? PF_SEARCH_BM25 : p.mode;
    res->fts_query = pf_fts_query(query, p.stopwords);
    if (!res->fts_query) return pf_error_set(err, PF_ERR_NOMEM, "search: out of memory");

    pf_cand_list lb = {0}, ld = {0}, fused = {0};
    int rc = PF_OK;
    if (res->mode != PF_SEARCH_DENSE && *res->fts_query) rc = bm25_list(r, res->fts_query, &p, &lb, err);
    /* a query without a single letter or digit ("!!!") has nothing to embed either */
    if (rc == PF_OK && res->mode != PF_SEARCH_BM25 && *res->fts_query) rc = pf_dense_list(r, query, &p, &ld, err);
    if (rc == PF_OK) {
        if (res->mode == PF_SEARCH_HYBRID) {
            if (pf_rrf_fuse(&lb, &ld, &p, &fused)) rc = pf_error_set(err, PF_ERR_NOMEM, "search: out of memory");
        } else {
            fused = res->mode == PF_SEARCH_BM25 ? lb : ld;
            if (res->mode == PF_SEARCH_BM25) lb = (pf_cand_list){0}; else ld = (pf_cand_list){0};
            as_ranking(&fused, res->mode == PF_SEARCH_DENSE);
        }
    }
    if (rc == PF_OK) rc = build_hits(r, &fused, &p, res, err);
    free(lb.v); free(ld.v); free(fused.v);
    if (rc != PF_OK) {
        int mode = res->mode;
        pf_search_results_free(res);
        res->mode = (pf_search_mode)mode;
    }
    return rc;
}

int pf_retriever_search(pf_retriever *r, const char *query, const pf_search_params *prm, pf_search_results *res,
                        pf_error *err) {
    memset(res, 0, sizeof *res);
    pf_search_params p = prm ? *prm : pf_search_default_params();
    if (!r || !query) return pf_error_set(err, PF_ERR_ARG, "search: no retriever or no query");
    if (p.k <= 0) return pf_error_set(err, PF_ERR_ARG, "search: k must be > 0 (got %d)", (int)p.k);
    if (p.depth < p.k) p.depth = p.k;
    if (!(p.rrf_k >= 0 && p.bm25_k1 >= 0 && p.bm25_b >= 0 && p.bm25_b <= 1 && p.dedup_jaccard >= 0 &&
          p.dedup_jaccard <= 1 && isfinite(p.w_bm25) && isfinite(p.w_dense) && isfinite(p.w_text) &&
          isfinite(p.w_heading)))
        return pf_error_set(err, PF_ERR_ARG, "search: need rrf_k >= 0, k1 >= 0, b and dedup_jaccard in [0, 1], "
                                             "finite weights");
    /* "pdf, md" -> "pdf,md": the SQL filter compares whole comma-separated items */
    char *types = NULL;
    if (p.doc_types) {
        types = malloc(strlen(p.doc_types) + 1);
        if (!types) return pf_error_set(err, PF_ERR_NOMEM, "search: out of memory");
        size_t n = 0;
        for (const char *s = p.doc_types; *s; s++)
            if (*s != ' ' && *s != '\t') types[n++] = *s;
        types[n] = '\0';
        p.doc_types = n ? types : NULL;
    }
    /* One read transaction: the lists, the length cache and the rows all see one state of the KB
     * even while another process ingests (unless the caller already holds a transaction). */
    bool own_txn = sqlite3_get_autocommit(r->db) && sqlite3_exec(r->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    int rc = run_search(r, query, &p, res, err);
    if (own_txn) sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL);
    free(types);
    return rc;
}
