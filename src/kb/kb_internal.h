/* Knowledge-base internals shared by the store, ingestion and admin files. */
#ifndef PF_KB_INTERNAL_H
#define PF_KB_INTERNAL_H

#include <sqlite3.h>
#include <stdint.h>

#include "kb/kb_schema.h"
#include "phiforge.h"

/* ---- SHA-256 ---- */
typedef struct kb_sha256 {
    uint32_t h[8];
    uint64_t n;
    uint8_t buf[64];
    size_t fill;
} kb_sha256;
void kb_sha256_init(kb_sha256 *s);
void kb_sha256_update(kb_sha256 *s, const void *data, size_t len);
void kb_sha256_hex(kb_sha256 *s, char out[65]); /* finishes the hash */
void kb_sha256_buf(const void *data, size_t len, char out[65]);

struct pf_kb {
    char *dir, *db_path, *index_path;
    sqlite3 *db;
    pf_embedder *emb;        /* loaded on demand                                  */
    char *emb_id;            /* its embed_model_id                                */
    pf_hnsw *index;          /* loaded on demand; matches index_gen               */
    uint64_t index_gen;
    bool index_dirty;        /* in-memory index changed since it was saved        */
};

/* ---- SQL helpers (kb_store.c) ---- */
/* Fills err with "<db path>: <what>: <sqlite message>" and returns PF_ERR_IO. */
int kb_sql_fail(pf_kb *kb, pf_error *err, const char *what);
int kb_exec(pf_kb *kb, const char *sql, pf_error *err);
int kb_prepare(pf_kb *kb, const char *sql, sqlite3_stmt **st, pf_error *err);
int kb_begin(pf_kb *kb, pf_error *err); /* BEGIN IMMEDIATE: take the write lock up front */
int kb_commit(pf_kb *kb, pf_error *err);
void kb_rollback(pf_kb *kb);
/* meta: *out malloc'd, NULL when absent. */
int kb_meta_str(pf_kb *kb, const char *key, char **out, pf_error *err);
int64_t kb_meta_int(pf_kb *kb, const char *key, int64_t dflt);
int kb_meta_set(pf_kb *kb, const char *key, const char *value, pf_error *err); /* NULL deletes */
int kb_meta_set_int(pf_kb *kb, const char *key, int64_t value, pf_error *err);
/* Increments meta.vector_generation (inside the caller's transaction); *gen gets the new value. */
int kb_bump_generation(pf_kb *kb, uint64_t *gen, pf_error *err);

/* Migration steps: steps[v] upgrades a database at version v to v + 1. kb_migrate runs those
 * from the database's version to n_steps in one transaction (exposed for tests). */
typedef int (*kb_migrate_fn)(pf_kb *kb, pf_error *err);
int kb_migrate(pf_kb *kb, const kb_migrate_fn *steps, int n_steps, pf_error *err);
/* Version of the open database: 0 for an empty one, PF_ERR_FORMAT if not a KB. */
int kb_schema_version(pf_kb *kb, int *version, pf_error *err);

/* ---- writes (kb_write.c) ---- */
/* Chunk ids (with a vector of the current model) of the documents of `source`, or of doc_key. */
typedef struct kb_ids {
    int64_t *v;
    int64_t n, cap;
} kb_ids;
int kb_ids_push(kb_ids *ids, int64_t id);
void kb_ids_free(kb_ids *ids);
/* Deletes the documents of `source` (cascading to chunks, FTS, embeddings); their embedded
 * chunk ids are appended to `gone` when not NULL. */
int kb_delete_source_docs(pf_kb *kb, const char *source, kb_ids *gone, int64_t *n_docs, pf_error *err);
/* Removes the chunk ids from the in-memory index, or marks it for a rebuild. */
void kb_index_forget(pf_kb *kb, const kb_ids *gone);
/* Adds vectors to the in-memory index when it is loaded and current (generation gen_before),
 * else drops it so the next pf_kb_vector_index rebuilds; records gen_after. */
void kb_index_apply(pf_kb *kb, uint64_t gen_before, uint64_t gen_after, const kb_ids *gone, const int64_t *ids,
                    const float *vecs, int64_t n, int64_t dim);
/* Saves the in-memory index if it changed (atomic rename). */
int kb_index_flush(pf_kb *kb, pf_error *err);

/* ---- model identity (kb_vindex.c) ---- */
/* "NAME sha256:HEX16" of a model file. */
int kb_model_id(const char *path, const char *name, char **out, pf_error *err);
/* "SIZE:MTIME_NS" of a file ("" when it cannot be stat'ed): when it still equals
 * meta.embed_model_stat, the file is taken to be the recorded model without hashing it again. */
void kb_file_stamp(const char *path, char *buf, size_t cap);

/* ---- paths ---- */
/* Absolute path with symlinks resolved when the file exists, else made absolute lexically. */
char *kb_abs_path(const char *path);
char *kb_strdup(const char *s);
char *kb_join(const char *dir, const char *name);

#endif
