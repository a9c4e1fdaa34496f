/* Lexical side of retrieval: the MATCH expression built from free text, and pf_bm25, an FTS5
 * auxiliary function that ranks with a BM25 we control.
 *
 * Why not FTS5's bm25(): its k1 = 1.2 and b = 0.75 are fixed and its IDF,
 * ln((N - n + 0.5) / (n + 0.5)), is clamped to 1e-6 for a term in half the chunks or more, so in
 * a small KB (a few documents) the words that matter score nothing. pf_bm25 uses Lucene's
 * always-positive IDF ln(1 + (N - n + 0.5) / (n + 0.5)) and takes k1, b and column weights as
 * arguments. Defaults k1 = 0.9, b = 0.4 are Anserini's (the BEIR regressions' BM25): RAG chunks
 * are of similar length by construction, so a weaker length normalization fits them; on
 * Vaswani they beat the textbook 1.2 / 0.75 (figures in tests/test_vaswani.c). */
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ir/ir.h"
#include "kb/retrieve.h"

#define FTS_MAX_TERMS 64 /* a pasted page must not become a 2,000-way OR */

typedef struct qterm { char tok[PF_IR_MAX_TOKEN + 1], stem[PF_IR_MAX_TOKEN + 1]; bool stop; } qterm;

typedef struct qcollect {
    qterm *v;
    size_t n, cap;
    bool oom;
} qcollect;

static int on_query_token(void *ctx, const char *tok, size_t len, size_t start, size_t end) {
    (void)start, (void)end;
    qcollect *c = ctx;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        qterm *nv = realloc(c->v, nc * sizeof *nv);
        if (!nv) { c->oom = true; return 1; }
        c->v = nv; c->cap = nc;
    }
    qterm *t = &c->v[c->n];
    memcpy(t->tok, tok, len + 1);
    memcpy(t->stem, tok, len + 1);
    t->stem[pf_ir_porter(t->stem, len)] = '\0';
    t->stop = pf_ir_is_stopword(tok, len);
    /* words sharing a stem are one index term: keep the first, so each term counts once */
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->v[i].stem, t->stem)) return 0;
    c->n++;
    return 0;
}

char *pf_fts_query(const char *text, bool stopwords) {
    qcollect c = {0};
    if (text) pf_ir_tokenize(text, strlen(text), on_query_token, &c);
    if (c.oom) { free(c.v); return NULL; }
    bool any_content = false;
    for (size_t i = 0; i < c.n; i++) any_content |= !c.v[i].stop;
    bool drop_stop = stopwords && any_content; /* "to be or not to be" still searches */
    size_t cap = 1, used = 0;
    for (size_t i = 0; i < c.n; i++) cap += 2 * strlen(c.v[i].tok) + 6;
    char *q = malloc(cap);
    if (!q) { free(c.v); return NULL; }
    q[0] = '\0';
    size_t kept = 0;
    for (size_t i = 0; i < c.n && kept < FTS_MAX_TERMS; i++) {
        if (drop_stop && c.v[i].stop) continue;
        if (kept++) { memcpy(q + used, " OR ", 4); used += 4; }
        q[used++] = '"';
        for (const char *s = c.v[i].tok; *s; s++) { /* a quote inside a phrase is written twice */
            if (*s == '"') q[used++] = '"';
            q[used++] = *s;
        }
        q[used++] = '"';
        q[used] = '\0';
    }
    free(c.v);
    return q;
}

/* ---- pf_bm25(chunks_fts, k1, b, w_col0, w_col1, ...) ------------------------------------- */

typedef struct bm25_query {
    int n_phrase;
    double avgdl;
    double *idf, *freq; /* per phrase; freq is per-row scratch */
} bm25_query;

static int count_row(const Fts5ExtensionApi *api, Fts5Context *fts, void *ud) {
    (void)api, (void)fts;
    (*(sqlite3_int64 *)ud)++;
    return SQLITE_OK;
}

/* Per-query statistics, computed at the first row and kept as the query's auxdata. */
static bm25_query *bm25_stats(const Fts5ExtensionApi *api, Fts5Context *fts, int *rc) {
    bm25_query *d = api->xGetAuxdata(fts, 0);
    if (d) return d;
    int np = api->xPhraseCount(fts);
    d = sqlite3_malloc64(sizeof *d + (size_t)np * 2 * sizeof(double));
    if (!d) { *rc = SQLITE_NOMEM; return NULL; }
    d->n_phrase = np;
    d->idf = (double *)(d + 1);
    d->freq = d->idf + np;
    sqlite3_int64 n_rows = 0, n_tokens = 0;
    *rc = api->xRowCount(fts, &n_rows);
    if (*rc == SQLITE_OK) *rc = api->xColumnTotalSize(fts, -1, &n_tokens);
    d->avgdl = n_rows > 0 ? (double)n_tokens / (double)n_rows : 1.0;
    if (d->avgdl <= 0) d->avgdl = 1.0;
    for (int i = 0; i < np && *rc == SQLITE_OK; i++) {
        sqlite3_int64 n_hit = 0;
        *rc = api->xQueryPhrase(fts, i, &n_hit, count_row);
        double N = (double)n_rows, n = (double)n_hit;
        d->idf[i] = log(1.0 + (N - n + 0.5) / (n + 0.5));
    }
    if (*rc == SQLITE_OK) *rc = api->xSetAuxdata(fts, d, sqlite3_free); /* frees d on failure */
    else sqlite3_free(d);
    return *rc == SQLITE_OK ? d : NULL;
}

static void pf_bm25_fn(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx, int n_val,
                       sqlite3_value **val) {
    enum { FIRST_WEIGHT = 3 };
    double k1 = n_val > 0 ? sqlite3_value_double(val[0]) : 0.9;
    double b = n_val > 1 ? sqlite3_value_double(val[1]) : 0.4;
    const pf_doclen *cache = n_val > 2 ? sqlite3_value_pointer(val[2], PF_DOCLEN_TYPE) : NULL;
    int rc = SQLITE_OK;
    bm25_query *d = bm25_stats(api, fts, &rc);
    if (!d) { sqlite3_result_error_code(ctx, rc); return; }
    for (int i = 0; i < d->n_phrase; i++) d->freq[i] = 0.0;
    double w[8];
    int n_w = n_val - FIRST_WEIGHT < 8 ? n_val - FIRST_WEIGHT : 8;
    for (int i = 0; i < 8; i++) w[i] = i < n_w ? sqlite3_value_double(val[FIRST_WEIGHT + i]) : 1.0;
    int n_inst = 0;
    rc = api->xInstCount(fts, &n_inst);
    for (int i = 0; i < n_inst && rc == SQLITE_OK; i++) {
        int ip, ic, io;
        rc = api->xInst(fts, i, &ip, &ic, &io);
        if (rc == SQLITE_OK && ip >= 0 && ip < d->n_phrase)
            d->freq[ip] += (ic >= 0 && ic < 8) ? w[ic] : 1.0; /* column weight */
    }
    int dl = 0;
    sqlite3_int64 row = api->xRowid(fts);
    if (cache && row >= 0 && row < cache->n && cache->len[row] != UINT32_MAX) dl = (int)cache->len[row];
    else if (rc == SQLITE_OK) rc = api->xColumnSize(fts, -1, &dl);
    if (rc != SQLITE_OK) { sqlite3_result_error_code(ctx, rc); return; }
    double norm = k1 * (1.0 - b + b * (double)dl / d->avgdl), score = 0.0;
    for (int i = 0; i < d->n_phrase; i++) {
        double f = d->freq[i];
        if (f > 0) score += d->idf[i] * f * (k1 + 1.0) / (f + norm);
    }
    sqlite3_result_double(ctx, score);
}

/* ---- document lengths ----------------------------------------------------------------------- */

void pf_doclen_free(pf_doclen *dl) {
    free(dl->len);
    memset(dl, 0, sizeof *dl);
}

static int64_t read_varint(const unsigned char **p, const unsigned char *end) {
    int64_t v = 0;
    for (int i = 0; i < 9 && *p < end; i++) {
        unsigned char c = *(*p)++;
        if (i == 8) return (v << 8) | c;
        v = (v << 7) | (c & 0x7f);
        if (!(c & 0x80)) break;
    }
    return v;
}

int pf_doclen_refresh(sqlite3 *db, pf_doclen *dl, pf_error *err) {
    sqlite3_stmt *st = NULL;
    int64_t dv = -1, tc = sqlite3_total_changes64(db);
    if (sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        dv = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (dl->loaded && dv == dl->data_version && tc == dl->total_changes) return PF_OK;
    pf_doclen_free(dl);
    /* sizes are FTS5 varints, one per column (text, heading); their sum is xColumnSize(-1) */
    int64_t max_id = 0, n_rows = 0;
    dl->data_version = dv;
    dl->total_changes = tc;
    dl->loaded = true;
    /* no docsize table (an FTS5 table made with columnsize=0): FTS5 answers, more slowly */
    if (sqlite3_prepare_v2(db, "SELECT max(id), count(*) FROM chunks_fts_docsize", -1, &st, NULL) != SQLITE_OK)
        return PF_OK;
    if (sqlite3_step(st) == SQLITE_ROW) { max_id = sqlite3_column_int64(st, 0); n_rows = sqlite3_column_int64(st, 1); }
    sqlite3_finalize(st);
    if (max_id < 0 || max_id > 4 * n_rows + (1 << 20)) return PF_OK; /* too sparse: FTS5 answers */
    dl->len = malloc((size_t)(max_id + 1) * sizeof *dl->len);
    if (!dl->len) return pf_error_set(err, PF_ERR_NOMEM, "search: out of memory");
    memset(dl->len, 0xff, (size_t)(max_id + 1) * sizeof *dl->len);
    dl->n = max_id + 1;
    if (sqlite3_prepare_v2(db, "SELECT id, sz FROM chunks_fts_docsize", -1, &st, NULL) != SQLITE_OK) {
        free(dl->len);
        dl->len = NULL;
        dl->n = 0;
        return PF_OK;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        const unsigned char *p = sqlite3_column_blob(st, 1);
        const unsigned char *end = p ? p + sqlite3_column_bytes(st, 1) : NULL;
        int64_t total = 0;
        while (p && p < end) total += read_varint(&p, end);
        if (id >= 0 && id < dl->n && total >= 0 && total < UINT32_MAX) dl->len[id] = (uint32_t)total;
    }
    sqlite3_finalize(st);
    return PF_OK;
}

/* ---- pf_fnmatch(pattern, string) ---------------------------------------------------------- */

/* fnmatch without flags; a relative pattern (docs/x*.pdf) also matches at any directory
 * boundary of the stored path, which is absolute for files ("/home/me/docs/a.pdf"). */
static bool glob_match(const char *pat, const char *s) {
    if (!pat || !s) return false;
    if (fnmatch(pat, s, 0) == 0) return true;
    if (pat[0] == '/' || pat[0] == '*') return false;
    for (const char *p = strchr(s, '/'); p; p = strchr(p + 1, '/'))
        if (fnmatch(pat, p + 1, 0) == 0) return true;
    return false;
}

static void pf_fnmatch_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    (void)argc;
    sqlite3_result_int(ctx, glob_match((const char *)sqlite3_value_text(argv[0]), (const char *)sqlite3_value_text(argv[1])));
}

bool pf_search_filter_ok(const pf_search_params *p, const char *source, const char *doc_type) {
    if (p->source_glob && !glob_match(p->source_glob, source)) return false;
    if (p->doc_types && *p->doc_types) {
        if (!doc_type || !*doc_type) return false;
        size_t tl = strlen(doc_type);
        for (const char *s = p->doc_types; *s;) {
            while (*s == ',' || *s == ' ') s++;
            const char *e = s;
            while (*e && *e != ',' && *e != ' ') e++;
            if ((size_t)(e - s) == tl && !strncasecmp(s, doc_type, tl)) return true;
            s = e;
        }
        return false;
    }
    return true;
}

static fts5_api *fts5_api_of(sqlite3 *db) {
    fts5_api *api = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return api;
}

int pf_search_register(sqlite3 *db, pf_error *err) {
    fts5_api *api = fts5_api_of(db);
    if (!api || api->iVersion < 2)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "this SQLite has no FTS5 (needed for BM25 search)");
    int rc = api->xCreateFunction(api, "pf_bm25", NULL, pf_bm25_fn, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function_v2(db, "pf_fnmatch", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                        pf_fnmatch_fn, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return pf_error_set(err, PF_ERR_IO, "registering search functions: %s", sqlite3_errmsg(db));
    return PF_OK;
}
