/* Information-retrieval toolkit used by retrieval and its evaluation (internal):
 *   - a tokenizer that mirrors SQLite FTS5's "unicode61 remove_diacritics 2" (so queries we build
 *     and the baseline we compute see the same terms as the chunks_fts index),
 *   - Porter's stemmer (the 1980 algorithm as published, like FTS5's "porter" wrapper),
 *   - English stopwords (Lucene's 33-word list, the one Anserini and GPT4All use),
 *   - TREC parsing (<DOC>/<DOCNO> collections, <top>/<num>/<title> topics, qrels),
 *   - metrics (nDCG@k with trec_eval's gain/discount, recall@k),
 *   - a textbook in-memory Okapi BM25, the yardstick for the FTS5 ranking. */
#ifndef PF_IR_H
#define PF_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "phiforge.h"

/* ---- tokenization ------------------------------------------------------------------------ */

#define PF_IR_MAX_TOKEN 256 /* longer tokens are cut (bytes); FTS5 keeps them, none occur in text */

/* Called for every token: `tok` is the folded token (lower case, diacritics removed, UTF-8,
 * NUL-terminated, len bytes); start/end are byte offsets of the token in the input. Return
 * non-zero to stop (that value is returned by pf_ir_tokenize). */
typedef int (*pf_ir_token_fn)(void *ctx, const char *tok, size_t len, size_t start, size_t end);

/* Splits UTF-8 `text` into tokens: maximal runs of letters, numbers and private-use characters
 * (Unicode categories L*, N*, Co — unicode61's default), combining marks dropped. Invalid UTF-8
 * bytes separate tokens. Returns 0 or the callback's non-zero value. */
int pf_ir_tokenize(const char *text, size_t len, pf_ir_token_fn fn, void *ctx);

/* Stems the lower-case word w[0..len) in place (the result is never longer; no NUL is written);
 * returns the new length. Words shorter than 3 or longer than 64 bytes are kept (as FTS5). */
size_t pf_ir_porter(char *w, size_t len);

/* True when the folded token is one of Lucene's 33 English stopwords. */
bool pf_ir_is_stopword(const char *tok, size_t len);

/* ---- TREC collections -------------------------------------------------------------------- */

typedef struct pf_ir_doc {
    char *id;    /* DOCNO (or topic number)             */
    char *text;  /* the body (topic: the title text)    */
} pf_ir_doc;

typedef struct pf_ir_docs {
    pf_ir_doc *v;
    size_t n, cap;
} pf_ir_docs;

/* <DOC><DOCNO>id</DOCNO> text </DOC> records. PF_ERR_FORMAT names the file and line. */
int pf_ir_read_trec_docs(const char *path, pf_ir_docs *out, pf_error *err);
/* <top><num>id</num><title> text </title></top> topics (an optional "Number:" prefix is dropped). */
int pf_ir_read_trec_topics(const char *path, pf_ir_docs *out, pf_error *err);
void pf_ir_docs_free(pf_ir_docs *d);

/* Relevance judgments "qid iter docid rel" (rel > 0 counts as relevant, graded). */
typedef struct pf_ir_judgment {
    char *qid, *docid;
    int rel;
} pf_ir_judgment;

typedef struct pf_ir_qrels {
    pf_ir_judgment *v; /* sorted by (qid, docid) after reading */
    size_t n, cap;
} pf_ir_qrels;

int pf_ir_read_qrels(const char *path, pf_ir_qrels *out, pf_error *err);
void pf_ir_qrels_free(pf_ir_qrels *q);
/* Grade of (qid, docid); 0 when unjudged. */
int pf_ir_qrels_grade(const pf_ir_qrels *q, const char *qid, const char *docid);
/* Number of judged documents with grade > 0 for qid. */
size_t pf_ir_qrels_n_relevant(const pf_ir_qrels *q, const char *qid);
/* Grades > 0 of qid, best first, in a malloc'd array of *n (NULL when out of memory). */
int *pf_ir_qrels_grades_sorted(const pf_ir_qrels *q, const char *qid, size_t *n);

/* ---- metrics ----------------------------------------------------------------------------- */

/* nDCG@k as trec_eval computes it: gain = grade, discount 1/log2(rank + 1), the ideal DCG from
 * the qrels' grades for qid. `ranked` holds document ids best first (duplicates count once, at
 * their first rank). 0 when qid has no relevant document. */
double pf_ir_ndcg(const pf_ir_qrels *q, const char *qid, const char *const *ranked, size_t n, size_t k);
/* |relevant ∩ top k| / |relevant|; 0 when qid has no relevant document. */
double pf_ir_recall(const pf_ir_qrels *q, const char *qid, const char *const *ranked, size_t n, size_t k);

/* ---- textbook Okapi BM25 ----------------------------------------------------------------- */

typedef enum pf_ir_idf {
    PF_IR_IDF_RSJ,    /* ln((N - n + 0.5) / (n + 0.5)), Robertson/Spärck Jones (can go < 0)  */
    PF_IR_IDF_LUCENE, /* ln(1 + (N - n + 0.5) / (n + 0.5)), always > 0                       */
} pf_ir_idf;

typedef struct pf_ir_bm25_params {
    double k1, b;        /* 1.2, 0.75                                                       */
    pf_ir_idf idf;
    bool stem;           /* Porter                                                          */
    bool stopwords;      /* drop stopwords from queries and documents                       */
} pf_ir_bm25_params;

typedef struct pf_ir_bm25 pf_ir_bm25;

pf_ir_bm25_params pf_ir_bm25_defaults(void); /* k1 1.2, b 0.75, RSJ, stem, no stopwords */
/* An empty index; add documents, then search. */
int pf_ir_bm25_new(const pf_ir_bm25_params *p, pf_ir_bm25 **out, pf_error *err);
void pf_ir_bm25_free(pf_ir_bm25 *ix);
/* Adds document number `doc` (0, 1, 2, ... in order) with its text. */
int pf_ir_bm25_add(pf_ir_bm25 *ix, const char *text, pf_error *err);
/* Scores every document holding a query term (each distinct query term counts once) and writes
 * the best n_max document numbers, best first (ties: lower number first), into docs and their
 * scores into scores (may be NULL); *n = how many. Not thread-safe (reuses a scratch buffer). */
int pf_ir_bm25_search(pf_ir_bm25 *ix, const char *query, size_t n_max, uint32_t *docs, double *scores,
                      size_t *n, pf_error *err);

#endif
