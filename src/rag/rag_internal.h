/* Internal to src/rag: the question's content terms with their IDF weights, shared by the
 * relevance gate and the extractive answer. */
#ifndef PF_RAG_INTERNAL_H
#define PF_RAG_INTERNAL_H

#include "ir/ir.h"
#include "phiforge.h"

#define RAG_MAX_TERMS 64 /* one bit each in a uint64_t mask */

typedef struct rag_term {
    char word[PF_IR_MAX_TOKEN + 1]; /* folded word as written (what FTS5 is asked about)   */
    char stem[PF_IR_MAX_TOKEN + 1]; /* its Porter stem (what passages are compared on)      */
    double idf;
} rag_term;

typedef struct rag_terms {
    rag_term *v;
    int n;
    double total; /* sum of the idfs */
} rag_terms;

/* Content terms of `question` (stopwords and question words dropped, one per stem, at most
 * RAG_MAX_TERMS), weighted by the KB's document frequencies (kb NULL: all 1). */
int rag_terms_build(pf_kb *kb, const char *question, rag_terms *out, pf_error *err);
void rag_terms_free(rag_terms *t);
/* Bit i set when term i occurs in text[0..len). */
uint64_t rag_terms_match(const rag_terms *t, const char *text, size_t len);
/* Sum of the idfs of the terms in mask, divided by the total (0 when there are no terms). */
double rag_terms_share(const rag_terms *t, uint64_t mask);
/* Terms found in a hit: its text, heading path and title. */
uint64_t rag_terms_match_hit(const rag_terms *t, const pf_search_hit *h);
/* Number of tokens (any words) in text[0..len). */
int rag_count_words(const char *text, size_t len);

#endif
