/* The writer side of ingestion. A file's old documents are deleted and its new ones inserted,
 * with its sources row (what the next run compares against), inside one transaction, so a
 * killed process leaves either the file's old state or its new one, never a mix. Consecutive
 * files share a transaction while the workers keep the writer busy (group commit: at most 256
 * files or 1 s per transaction): every commit costs WAL page writes and an FTS5 segment, and
 * batching makes small files ~3x faster to ingest; a kill loses at most the open batch, which
 * the re-run redoes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kb/kb_ingest.h"

int kb_writer_open(kb_writer *w, pf_kb *kb, const char *model_id, int64_t dim, const char *config, pf_error *err) {
    memset(w, 0, sizeof *w);
    w->kb = kb;
    w->model_id = model_id;
    w->dim = dim;
    w->config = config;
    int rc = kb_prepare(kb, "SELECT source FROM documents WHERE doc_key = ?1", &w->find_key, err);
    if (!rc)
        rc = kb_prepare(kb,
                        "INSERT INTO documents(doc_key, source, title, doc_type, sha256, mtime, size, text_len, metadata, "
                        "ingested_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        &w->ins_doc, err);
    if (!rc)
        rc = kb_prepare(kb,
                        "INSERT INTO chunks(doc_id, ordinal, text, start_char, end_char, page, heading, n_tokens) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        &w->ins_chunk, err);
    if (!rc)
        rc = kb_prepare(kb, "INSERT OR REPLACE INTO embeddings(chunk_id, model, dim, vector) VALUES (?1, ?2, ?3, ?4)",
                        &w->ins_emb, err);
    if (!rc)
        rc = kb_prepare(kb,
                        "INSERT OR REPLACE INTO sources(path, sha256, mtime, size, config, n_docs, ingested_at) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        &w->up_src, err);
    if (!rc)
        rc = kb_prepare(kb,
                        "SELECT e.chunk_id FROM embeddings e JOIN chunks c ON c.id = e.chunk_id "
                        "JOIN documents d ON d.id = c.doc_id WHERE d.source = ?1",
                        &w->sel_gone, err);
    if (!rc) rc = kb_prepare(kb, "DELETE FROM documents WHERE source = ?1", &w->del_docs, err);
    if (rc) kb_writer_close(w);
    return rc;
}

void kb_writer_close(kb_writer *w) {
    if (w->in_tx) kb_rollback(w->kb);
    kb_ids_free(&w->gone);
    free(w->nv_ids);
    free(w->nv_v);
    sqlite3_finalize(w->find_key);
    sqlite3_finalize(w->ins_doc);
    sqlite3_finalize(w->ins_chunk);
    sqlite3_finalize(w->ins_emb);
    sqlite3_finalize(w->up_src);
    sqlite3_finalize(w->sel_gone);
    sqlite3_finalize(w->del_docs);
    memset(w, 0, sizeof *w);
}

/* Steps a statement that returns no row, then resets it for the next use. */
static int step_done(kb_writer *w, sqlite3_stmt *st, const char *what, pf_error *err) {
    int s = sqlite3_step(st);
    int rc = s == SQLITE_DONE ? PF_OK : kb_sql_fail(w->kb, err, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* Source of the document already stored under key (malloc'd), NULL when none. */
static int key_owner(kb_writer *w, const char *key, char **owner, pf_error *err) {
    *owner = NULL;
    sqlite3_bind_text(w->find_key, 1, key, -1, SQLITE_STATIC);
    int s = sqlite3_step(w->find_key), rc = PF_OK;
    if (s == SQLITE_ROW) *owner = kb_strdup((const char *)sqlite3_column_text(w->find_key, 0));
    else if (s != SQLITE_DONE) rc = kb_sql_fail(w->kb, err, "looking up a document key");
    sqlite3_reset(w->find_key);
    return rc;
}

static int push_vec(kb_writer *w, int64_t id, const float *vec) {
    if (w->nv_n == w->nv_cap) {
        int64_t cap = w->nv_cap ? 2 * w->nv_cap : 256;
        int64_t *ids = realloc(w->nv_ids, (size_t)cap * sizeof *ids);
        if (ids) w->nv_ids = ids;
        float *v = realloc(w->nv_v, (size_t)(cap * w->dim) * sizeof *v);
        if (v) w->nv_v = v;
        if (!ids || !v) return PF_ERR_NOMEM;
        w->nv_cap = cap;
    }
    w->nv_ids[w->nv_n] = id;
    memcpy(w->nv_v + w->nv_n * w->dim, vec, (size_t)w->dim * sizeof(float));
    w->nv_n++;
    return PF_OK;
}

static int insert_doc(kb_writer *w, const kb_file *f, const kb_result *r, int64_t d, const char *key, int64_t vec0,
                      int64_t *n_chunks, pf_error *err) {
    const pf_xdoc *x = &r->xr.docs[d];
    char sha[65];
    if (x->key) { /* a record: its own identity, from what was extracted of it */
        kb_sha256 s;
        kb_sha256_init(&s);
        if (x->title) kb_sha256_update(&s, x->title, strlen(x->title) + 1);
        kb_sha256_update(&s, x->text, (size_t)x->len);
        kb_sha256_hex(&s, sha);
    } else {
        memcpy(sha, r->sha256, sizeof sha);
    }
    sqlite3_stmt *st = w->ins_doc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, f->path, -1, SQLITE_STATIC);
    if (x->title) sqlite3_bind_text(st, 3, x->title, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->xr.doc_type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, sha, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, f->mtime);
    sqlite3_bind_int64(st, 7, f->size);
    sqlite3_bind_int64(st, 8, x->len);
    sqlite3_bind_text(st, 9, x->metadata_json ? x->metadata_json : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, (int64_t)time(NULL));
    int rc = step_done(w, st, "inserting a document", err);
    int64_t doc_id = sqlite3_last_insert_rowid(w->kb->db);
    for (int64_t c = 0; c < r->n_chunks[d] && !rc; c++) {
        const pf_chunk *ch = &r->chunks[d][c];
        st = w->ins_chunk;
        sqlite3_bind_int64(st, 1, doc_id);
        sqlite3_bind_int64(st, 2, c);
        sqlite3_bind_text(st, 3, x->text + ch->start, (int)(ch->end - ch->start), SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, ch->start);
        sqlite3_bind_int64(st, 5, ch->end);
        if (ch->page > 0) sqlite3_bind_int(st, 6, ch->page);
        if (ch->heading) sqlite3_bind_text(st, 7, ch->heading, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 8, ch->n_tokens);
        if ((rc = step_done(w, st, "inserting a chunk", err))) break;
        int64_t chunk_id = sqlite3_last_insert_rowid(w->kb->db);
        (*n_chunks)++;
        if (!r->vecs) continue;
        const float *vec = r->vecs + (vec0 + c) * w->dim;
        st = w->ins_emb;
        sqlite3_bind_int64(st, 1, chunk_id);
        sqlite3_bind_text(st, 2, w->model_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, w->dim);
        sqlite3_bind_blob(st, 4, vec, (int)(w->dim * 4), SQLITE_STATIC);
        if ((rc = step_done(w, st, "inserting an embedding", err))) break;
        if (push_vec(w, chunk_id, vec)) rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    }
    return rc;
}

int kb_writer_commit(kb_writer *w, pf_error *err) {
    if (!w->in_tx) return PF_OK;
    pf_kb *kb = w->kb;
    uint64_t g1 = w->g0;
    int rc = w->gone.n || w->nv_n ? kb_bump_generation(kb, &g1, err) : PF_OK;
    if (!rc) rc = kb_commit(kb, err);
    if (rc) {
        kb_rollback(kb);
    } else if (w->gone.n || w->nv_n) {
        kb_index_apply(kb, w->g0, g1, &w->gone, w->nv_ids, w->nv_v, w->nv_n, w->dim);
    }
    w->in_tx = false;
    w->gone.n = w->nv_n = 0;
    w->tx_files = 0;
    return rc;
}

int kb_write_file(kb_writer *w, const kb_file *f, kb_result *r, const kb_report *rep, int64_t *n_docs,
                  int64_t *n_chunks, pf_error *err) {
    pf_kb *kb = w->kb;
    *n_docs = *n_chunks = 0;
    int rc = PF_OK;
    if (!w->in_tx) {
        if ((rc = kb_begin(kb, err))) return rc;
        w->in_tx = true;
        w->g0 = (uint64_t)kb_meta_int(kb, "vector_generation", 0);
    }
    w->tx_files++;
    /* The source's old documents go (chunks, FTS rows and vectors cascade); the ids of their
     * vectors are kept for the index. */
    if (w->model_id) {
        sqlite3_bind_text(w->sel_gone, 1, f->path, -1, SQLITE_STATIC);
        int s;
        while ((s = sqlite3_step(w->sel_gone)) == SQLITE_ROW && !rc)
            if (kb_ids_push(&w->gone, sqlite3_column_int64(w->sel_gone, 0))) rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
        if (!rc && s != SQLITE_DONE) rc = kb_sql_fail(kb, err, "listing old vectors");
        sqlite3_reset(w->sel_gone);
    }
    sqlite3_bind_text(w->del_docs, 1, f->path, -1, SQLITE_STATIC);
    if (!rc) rc = step_done(w, w->del_docs, "deleting old documents", err);
    int64_t old = rc ? 0 : sqlite3_changes(kb->db);
    int64_t vec0 = 0;
    for (int64_t d = 0; d < r->xr.n_docs && !rc; vec0 += r->n_chunks[d], d++) {
        const pf_xdoc *x = &r->xr.docs[d];
        char *key = x->key, *owner = NULL, *alloc = NULL;
        if (!key && r->xr.n_docs == 1) {
            key = f->path;
        } else if (!key) { /* several documents without ids: number them within the file */
            size_t cap = strlen(f->path) + 24;
            if (!(key = alloc = malloc(cap))) { rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory"); break; }
            snprintf(key, cap, "%s#%lld", f->path, (long long)d + 1);
        }
        if ((rc = key_owner(w, key, &owner, err))) { free(alloc); break; }
        if (owner) {
            char msg[1024];
            snprintf(msg, sizeof msg, "document key '%.200s' already comes from %.600s: this one is skipped", key, owner);
            kb_report_event(rep, PF_INGEST_WARNING, f->path, msg);
        } else {
            if (x->len == 0 && r->xr.n_warnings == 0) { /* (the extractor usually said why) */
                char msg[300];
                snprintf(msg, sizeof msg, "%s%.200s%sno text extracted (a scanned PDF has no text layer)",
                         x->key ? "record '" : "", x->key ? x->key : "", x->key ? "': " : "");
                kb_report_event(rep, PF_INGEST_WARNING, f->path, msg);
            }
            rc = insert_doc(w, f, r, d, key, vec0, n_chunks, err);
            (*n_docs)++;
        }
        free(owner);
        free(alloc);
    }
    if (!rc) {
        sqlite3_stmt *st = w->up_src;
        sqlite3_bind_text(st, 1, f->path, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, r->sha256, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, f->mtime);
        sqlite3_bind_int64(st, 4, f->size);
        sqlite3_bind_text(st, 5, w->config, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, *n_docs);
        sqlite3_bind_int64(st, 7, (int64_t)time(NULL));
        rc = step_done(w, st, "recording the source", err);
    }
    if (rc) { /* a KB-level failure: the whole open batch goes */
        kb_rollback(kb);
        w->in_tx = false;
        w->gone.n = w->nv_n = 0;
        return rc;
    }
    r->known = r->known || old > 0;
    return PF_OK;
}
