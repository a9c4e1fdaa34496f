/* Reading a KB: chunks and documents by id or key, the document list, and statistics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kb/kb_internal.h"

static char *col_dup(sqlite3_stmt *st, int i) {
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? kb_strdup((const char *)s) : NULL;
}

void pf_kb_chunk_clear(pf_kb_chunk *c) {
    if (!c) return;
    free(c->text);
    free(c->heading);
    free(c->doc_key);
    free(c->source);
    free(c->title);
    free(c->doc_type);
    memset(c, 0, sizeof *c);
}

void pf_kb_doc_clear(pf_kb_doc *d) {
    if (!d) return;
    free(d->key);
    free(d->source);
    free(d->title);
    free(d->doc_type);
    free(d->sha256);
    free(d->metadata);
    memset(d, 0, sizeof *d);
}

int pf_kb_chunk_get(pf_kb *kb, int64_t chunk_id, pf_kb_chunk *out, pf_error *err) {
    if (!kb || !out) return pf_error_set(err, PF_ERR_ARG, "pf_kb_chunk_get: invalid argument");
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = kb_prepare(kb,
                        "SELECT c.id, c.doc_id, c.ordinal, c.start_char, c.end_char, coalesce(c.page, 0), c.n_tokens, "
                        "c.text, c.heading, d.doc_key, d.source, d.title, d.doc_type "
                        "FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE c.id = ?1",
                        &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, chunk_id);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        *out = (pf_kb_chunk){sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
                             sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 4), sqlite3_column_int(st, 5),
                             sqlite3_column_int(st, 6), col_dup(st, 7), col_dup(st, 8), col_dup(st, 9),
                             col_dup(st, 10), col_dup(st, 11), col_dup(st, 12)};
        if (!out->text || !out->doc_key || !out->source || !out->doc_type) {
            pf_kb_chunk_clear(out);
            rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
        }
    } else if (s == SQLITE_DONE) {
        rc = pf_error_set(err, PF_ERR_NOT_FOUND, "%s: no chunk %lld", kb->db_path, (long long)chunk_id);
    } else {
        rc = kb_sql_fail(kb, err, "reading a chunk");
    }
    sqlite3_finalize(st);
    return rc;
}

#define DOC_COLS                                                                                                 \
    "SELECT d.id, d.doc_key, d.source, d.title, d.doc_type, d.sha256, d.metadata, d.mtime, d.size, d.text_len, " \
    "d.ingested_at, count(c.id), coalesce(sum(c.n_tokens), 0) FROM documents d LEFT JOIN chunks c ON c.doc_id = d.id "

static int doc_row(sqlite3_stmt *st, pf_kb_doc *d) {
    *d = (pf_kb_doc){sqlite3_column_int64(st, 0), col_dup(st, 1), col_dup(st, 2), col_dup(st, 3), col_dup(st, 4),
                     col_dup(st, 5), col_dup(st, 6), sqlite3_column_int64(st, 7), sqlite3_column_int64(st, 8),
                     sqlite3_column_int64(st, 9), sqlite3_column_int64(st, 10), sqlite3_column_int64(st, 11),
                     sqlite3_column_int64(st, 12)};
    if (d->key && d->source && d->doc_type && d->sha256 && d->metadata) return PF_OK;
    pf_kb_doc_clear(d);
    return PF_ERR_NOMEM;
}

static int doc_query(pf_kb *kb, const char *sql, int64_t id, const char *key, pf_kb_doc *out, pf_error *err) {
    if (!kb || !out) return pf_error_set(err, PF_ERR_ARG, "pf_kb_doc_get: invalid argument");
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = kb_prepare(kb, sql, &st, err);
    if (rc) return rc;
    if (key) sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    else sqlite3_bind_int64(st, 1, id);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        if (doc_row(st, out)) rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    } else if (s == SQLITE_ROW || s == SQLITE_DONE) {
        rc = key ? pf_error_set(err, PF_ERR_NOT_FOUND, "%s: no document '%s'", kb->db_path, key)
                 : pf_error_set(err, PF_ERR_NOT_FOUND, "%s: no document %lld", kb->db_path, (long long)id);
    } else {
        rc = kb_sql_fail(kb, err, "reading a document");
    }
    sqlite3_finalize(st);
    return rc;
}

int pf_kb_doc_get(pf_kb *kb, int64_t doc_id, pf_kb_doc *out, pf_error *err) {
    return doc_query(kb, DOC_COLS "WHERE d.id = ?1 GROUP BY d.id", doc_id, NULL, out, err);
}

int pf_kb_doc_find(pf_kb *kb, const char *key, pf_kb_doc *out, pf_error *err) {
    if (!key) return pf_error_set(err, PF_ERR_ARG, "pf_kb_doc_find: invalid argument");
    return doc_query(kb, DOC_COLS "WHERE d.doc_key = ?1 GROUP BY d.id", 0, key, out, err);
}

int pf_kb_list(pf_kb *kb, pf_kb_doc_fn fn, void *user, pf_error *err) {
    if (!kb || !fn) return pf_error_set(err, PF_ERR_ARG, "pf_kb_list: invalid argument");
    sqlite3_stmt *st;
    int rc = kb_prepare(kb, DOC_COLS "GROUP BY d.id ORDER BY d.doc_key", &st, err), s = SQLITE_DONE;
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
        pf_kb_doc d;
        if (doc_row(st, &d)) {
            rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
            break;
        }
        rc = fn(user, &d);
        pf_kb_doc_clear(&d);
    }
    if (!rc && s != SQLITE_DONE) rc = kb_sql_fail(kb, err, "listing documents");
    sqlite3_finalize(st);
    return rc;
}

const char *pf_kb_index_state_str(pf_kb_index_state s) {
    switch (s) {
    case PF_KB_INDEX_NONE: return "none (lexical only)";
    case PF_KB_INDEX_MISSING: return "missing (rebuilt on next use)";
    case PF_KB_INDEX_STALE: return "stale (rebuilt on next use)";
    case PF_KB_INDEX_FRESH: return "fresh";
    }
    return "unknown";
}

static int64_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

static int count_into(pf_kb *kb, const char *sql, const char *arg, int64_t *a, int64_t *b, pf_error *err) {
    sqlite3_stmt *st;
    int rc = kb_prepare(kb, sql, &st, err);
    if (rc) return rc;
    if (arg) sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) rc = kb_sql_fail(kb, err, "counting");
    else {
        *a = sqlite3_column_int64(st, 0);
        if (b) *b = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc;
}

static void meta_copy(pf_kb *kb, const char *key, char *buf, size_t cap) {
    char *v = NULL;
    kb_meta_str(kb, key, &v, NULL);
    snprintf(buf, cap, "%s", v ? v : "");
    free(v);
}

int pf_kb_get_stats(pf_kb *kb, pf_kb_stats *o, pf_error *err) {
    if (!kb || !o) return pf_error_set(err, PF_ERR_ARG, "pf_kb_get_stats: invalid argument");
    memset(o, 0, sizeof *o);
    int rc = kb_exec(kb, "BEGIN", err); /* one consistent snapshot */
    if (rc) return rc;
    char *model_id = NULL;
    o->schema_version = (int)kb_meta_int(kb, "schema_version", 0);
    rc = count_into(kb, "SELECT count(*) FROM documents", NULL, &o->documents, NULL, err);
    if (!rc) rc = count_into(kb, "SELECT count(*) FROM sources", NULL, &o->sources, NULL, err);
    if (!rc) rc = count_into(kb, "SELECT count(*), coalesce(sum(n_tokens), 0) FROM chunks", NULL, &o->chunks, &o->tokens, err);
    if (!rc) rc = kb_meta_str(kb, "embed_model_id", &model_id, err);
    if (!rc && model_id)
        rc = count_into(kb, "SELECT count(*) FROM embeddings WHERE model = ?1", model_id, &o->embedded, NULL, err);
    meta_copy(kb, "embed_model", o->embed_model, sizeof o->embed_model);
    meta_copy(kb, "embed_name", o->embed_name, sizeof o->embed_name);
    meta_copy(kb, "chunk_tokenizer", o->chunk_tokenizer, sizeof o->chunk_tokenizer);
    o->embed_dim = kb_meta_int(kb, "embed_dim", 0);
    o->chunk_tokens = (int32_t)kb_meta_int(kb, "chunk_tokens", 0);
    o->chunk_overlap = (int32_t)kb_meta_int(kb, "chunk_overlap", 0);
    o->vector_generation = (uint64_t)kb_meta_int(kb, "vector_generation", 0);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = kb_prepare(kb,
                        "SELECT d.doc_type, count(DISTINCT d.id), count(c.id) FROM documents d "
                        "LEFT JOIN chunks c ON c.doc_id = d.id GROUP BY d.doc_type ORDER BY 2 DESC, 1 LIMIT 16",
                        &st, err);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        pf_kb_type_stats *t = &o->types[o->n_types++];
        snprintf(t->type, sizeof t->type, "%s", (const char *)sqlite3_column_text(st, 0));
        t->docs = sqlite3_column_int64(st, 1);
        t->chunks = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    kb_commit(kb, NULL);
    free(model_id);
    if (rc) return rc;
    char *wal = kb_join(kb->dir, PF_KB_DB_NAME "-wal");
    o->db_bytes = file_size(kb->db_path) + (wal ? file_size(wal) : 0);
    free(wal);
    o->index_bytes = file_size(kb->index_path);
    o->index_state = PF_KB_INDEX_NONE;
    if (o->embed_model[0]) {
        pf_hnsw *h = NULL;
        uint64_t g = 0;
        o->index_state = PF_KB_INDEX_MISSING;
        if (pf_hnsw_open(kb->index_path, &h, &g, NULL) == PF_OK) {
            o->index_state = g == o->vector_generation ? PF_KB_INDEX_FRESH : PF_KB_INDEX_STALE;
            o->index_vectors = pf_hnsw_count(h);
            pf_hnsw_free(h);
        }
    }
    return PF_OK;
}
