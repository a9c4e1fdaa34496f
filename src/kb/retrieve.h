/* Retrieval internals shared by kb_search_*.c and kb_retrieve*.c. */
#ifndef PF_KB_RETRIEVE_H
#define PF_KB_RETRIEVE_H

#include <sqlite3.h>

#include "phiforge.h"

/* A candidate from one retriever or from fusion. */
typedef struct pf_cand {
    int64_t chunk_id;
    double score;           /* the list's own score (higher is better)                         */
    double bm25, dense;     /* per-retriever scores                                            */
    int32_t bm25_rank, dense_rank;
} pf_cand;

typedef struct pf_cand_list {
    pf_cand *v;
    int32_t n, cap;
} pf_cand_list;

int pf_cand_push(pf_cand_list *l, pf_cand c);

/* Builds the FTS5 MATCH expression for free text (see phiforge.h): a malloc'd string, "" when
 * the query has no searchable word. NULL when out of memory. */
char *pf_fts_query(const char *text, bool stopwords);

/* Registers pf_bm25(chunks_fts, k1, b, doclen, w_text, w_heading) (an FTS5 auxiliary function;
 * doclen: a pf_doclen bound with sqlite3_bind_pointer, or NULL) and pf_fnmatch(pattern, string). */
int pf_search_register(sqlite3 *db, pf_error *err);

/* Token count of every chunk (by rowid), read from chunks_fts_docsize. FTS5 answers
 * xColumnSize with one B-tree lookup per matching row, which was half the time of a query
 * matching tens of thousands of chunks; the cache is re-read whenever the database changed. */
#define PF_DOCLEN_TYPE "pf_doclen"
typedef struct pf_doclen {
    uint32_t *len;          /* len[rowid], UINT32_MAX where no row                      */
    int64_t n;
    int64_t data_version, total_changes; /* state it was read at                      */
    bool loaded;
} pf_doclen;

/* Reloads dl when the database changed since it was read (call inside a read transaction). */
int pf_doclen_refresh(sqlite3 *db, pf_doclen *dl, pf_error *err);
void pf_doclen_free(pf_doclen *dl);

/* Chunk details and filter check, with one prepared statement. */
typedef struct pf_chunk_row {
    int64_t doc_id;
    const char *text, *heading, *doc_key, *source, *title, *doc_type; /* valid until next step */
    int32_t page;
    int64_t start_char, end_char;
} pf_chunk_row;

struct pf_retriever {
    sqlite3 *db;
    pf_embedder *emb;
    const pf_hnsw *index;
    sqlite3_stmt *st_bm25, *st_bm25_filtered, *st_chunk, *st_allowed;
    float *qvec;
    int32_t dim;
    pf_doclen doclen;
};

/* Reads chunk `id` with its document's fields into row (valid until the next call): 1 when
 * found, 0 when the chunk is gone, a negative pf_status on error. */
int pf_retriever_chunk_row(pf_retriever *r, int64_t id, pf_chunk_row *row, pf_error *err);
/* The dense candidate list (kb_search_dense.c): best first, `depth` long at most. */
int pf_dense_list(pf_retriever *r, const char *query, const pf_search_params *p, pf_cand_list *out, pf_error *err);

/* True when the document passes the filters (NULL filters pass everything). */
bool pf_search_filter_ok(const pf_search_params *p, const char *source, const char *doc_type);

/* Reciprocal rank fusion of the bm25 and dense lists (each best first) into out, best first. */
int pf_rrf_fuse(const pf_cand_list *bm25, const pf_cand_list *dense, const pf_search_params *p, pf_cand_list *out);

/* Near-duplicate detection: a signature per kept text, checked against new texts. */
typedef struct pf_dedup_sig {
    uint64_t exact;         /* hash of the normalized token sequence */
    uint64_t *shingles;     /* sorted, distinct 3-shingle hashes     */
    size_t n;
} pf_dedup_sig;

int pf_dedup_sig_make(const char *text, pf_dedup_sig *out);
void pf_dedup_sig_free(pf_dedup_sig *s);
/* Jaccard similarity of the shingle sets (1 when both are empty and the exact hashes agree). */
double pf_dedup_jaccard(const pf_dedup_sig *a, const pf_dedup_sig *b);
bool pf_dedup_same(const pf_dedup_sig *a, const pf_dedup_sig *b, double threshold);

#endif
