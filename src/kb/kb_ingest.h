/* Ingestion internals: the file walk, the per-file work (read, hash, extract, chunk, embed) done
 * by worker threads, and the per-file transaction done by the writer. */
#ifndef PF_KB_INGEST_H
#define PF_KB_INGEST_H

#include <pthread.h>

#include "kb/kb_internal.h"

typedef struct kb_file {
    char *path;        /* absolute, symlinks resolved: the source */
    const char *type;  /* pf_extract_type_of; NULL: unsupported   */
    int64_t size, mtime;
} kb_file;

typedef struct kb_files {
    kb_file *v;
    int64_t n, cap;
} kb_files;

/* What the caller hears about walk problems and skipped files. */
typedef struct kb_report {
    pf_ingest_fn fn;
    void *user;
    pf_ingest_stats *stats;
} kb_report;
void kb_report_event(const kb_report *r, pf_ingest_event_kind kind, const char *path, const char *msg);

/* Collects the files under paths (sorted by path, each once). Unreadable or missing paths and
 * explicitly named files of unsupported types are reported FAILED; unsupported files met while
 * walking a folder are counted as skipped. PF_ERR_NOMEM is the only error. */
int kb_walk(const char *const *paths, int64_t n, kb_files *out, const kb_report *rep, pf_error *err);
void kb_files_free(kb_files *f);

/* The state of ingestion shared by workers and writer. */
typedef struct kb_source_snap { /* sources rows at the start: what "unchanged" compares */
    char *path, *sha256, *config;
} kb_source_snap;

typedef enum { KB_R_PENDING = 0, KB_R_UNCHANGED, KB_R_NEW, KB_R_FAILED } kb_outcome;

typedef struct kb_result {
    kb_outcome outcome;
    char *reason;             /* FAILED                                                */
    char sha256[65];
    pf_xresult xr;            /* the extracted documents                               */
    pf_chunk **chunks;        /* per document                                          */
    int64_t *n_chunks;
    int64_t total_chunks;
    float *vecs;              /* total_chunks x dim, in document then chunk order      */
    bool known;               /* the source was in the KB before                       */
} kb_result;
void kb_result_free(kb_result *r);

typedef struct kb_job {
    const kb_files *files;
    kb_result *results;       /* one per file                                          */
    const kb_source_snap *snap;
    int64_t n_snap;
    const char *config;       /* the chunking configuration string                     */
    pf_chunk_params cp;
    pf_embedder *emb;         /* NULL: lexical only                                    */
    int64_t dim;
    pthread_mutex_t mu;       /* guards next, committed, results[].outcome; also pf_embed */
    pthread_mutex_t emb_mu;
    pthread_cond_t cv_work, cv_done;
    int64_t next, committed, window;
    bool stop;
    double embed_seconds;
} kb_job;

/* Worker thread body. */
void *kb_worker(void *arg);

/* The writer's transaction for one processed file. */
typedef struct kb_writer {
    pf_kb *kb;
    const char *model_id;     /* NULL: lexical only */
    int64_t dim;
    const char *config;
    sqlite3_stmt *find_key, *ins_doc, *ins_chunk, *ins_emb, *up_src, *sel_gone, *del_docs;
    /* the open transaction (group commit) */
    bool in_tx;
    uint64_t g0;              /* vector_generation when it began                       */
    int64_t tx_files;
    kb_ids gone;              /* embedded chunk ids deleted in it                      */
    int64_t *nv_ids, nv_n, nv_cap; /* vectors inserted in it                          */
    float *nv_v;
} kb_writer;
int kb_writer_open(kb_writer *w, pf_kb *kb, const char *model_id, int64_t dim, const char *config, pf_error *err);
void kb_writer_close(kb_writer *w);
/* Inside the open transaction (begun when none is): the source's old documents out, the new
 * ones in, the sources row upserted. Duplicate document keys are reported as warnings and
 * skipped. On failure the open transaction is rolled back. */
int kb_write_file(kb_writer *w, const kb_file *f, kb_result *r, const kb_report *rep, int64_t *n_docs,
                  int64_t *n_chunks, pf_error *err);
/* Commits the open transaction (if any) and brings the in-memory vector index along. */
int kb_writer_commit(kb_writer *w, pf_error *err);

/* Set-up and clean-up (kb_ingest_model.c). kb_ingest_model loads p->embed_model (recording it,
 * and dropping every vector when it differs from the KB's model) or the KB's own model. */
int kb_ingest_model(pf_kb *kb, const pf_ingest_params *p, int n_threads, const kb_report *rep, pf_error *err);
int kb_ingest_prune(pf_kb *kb, const kb_report *rep, pf_error *err);
int kb_ingest_fill(pf_kb *kb, const kb_report *rep, double *seconds, pf_error *err);

#endif
