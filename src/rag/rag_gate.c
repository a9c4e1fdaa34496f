/* The relevance gate: is there anything in the retrieved passages about this question?
 *
 * Fusion scores (RRF) are functions of ranks only: the top hit of an off-topic question gets
 * the same score as the top hit of a good one. The gate looks at evidence instead: the
 * IDF-weighted share of the question's content terms that the best passage contains (see
 * rag_terms.c for the weights), and, when dense retrieval ran, the best cosine similarity. */
#include <math.h>

#include "rag/rag_internal.h"

pf_rag_gate_params pf_rag_gate_default_params(void) {
    return (pf_rag_gate_params){.min_coverage = PF_RAG_DEFAULT_MIN_COVERAGE, .min_cosine = 0.0};
}

int pf_rag_relevance_check(pf_kb *kb, const char *question, const pf_search_hit *hits, int32_t n,
                           const pf_rag_gate_params *p, pf_rag_relevance *out, double *coverage, pf_error *err) {
    if (!question || !out || (n > 0 && !hits) || n < 0)
        return pf_error_set(err, PF_ERR_ARG, "pf_rag_relevance_check: invalid argument");
    pf_rag_gate_params def = pf_rag_gate_default_params();
    if (!p) p = &def;
    if (isnan(p->min_coverage) || isnan(p->min_cosine))
        return pf_error_set(err, PF_ERR_ARG, "pf_rag_relevance_check: threshold is NaN");
    *out = (pf_rag_relevance){.relevant = false, .coverage = 0.0, .best = -1, .cosine = NAN, .n_terms = 0};
    rag_terms t;
    int rc = rag_terms_build(kb, question, &t, err);
    if (rc) return rc;
    out->n_terms = t.n;
    for (int32_t i = 0; i < n; i++) {
        double c = rag_terms_share(&t, rag_terms_match_hit(&t, &hits[i]));
        if (coverage) coverage[i] = c;
        if (c > out->coverage || out->best < 0) out->coverage = c, out->best = i;
        if (hits[i].dense_rank > 0 && (isnan(out->cosine) || hits[i].dense_score > out->cosine))
            out->cosine = hits[i].dense_score;
    }
    bool lexical = n > 0 && (p->min_coverage <= 0 || (t.n > 0 && out->coverage >= p->min_coverage));
    bool dense = n > 0 && p->min_cosine > 0 && !isnan(out->cosine) && out->cosine >= p->min_cosine;
    out->relevant = lexical || dense;
    rag_terms_free(&t);
    return PF_OK;
}
