/* Ranking metrics with trec_eval's definitions (ndcg_cut.k, recall.k). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

/* True when ranked[i] already appeared at a better rank (it then counts once, first). */
static bool seen_before(const char *const *ranked, size_t i) {
    for (size_t j = 0; j < i; j++)
        if (!strcmp(ranked[j], ranked[i])) return true;
    return false;
}

double pf_ir_ndcg(const pf_ir_qrels *q, const char *qid, const char *const *ranked, size_t n, size_t k) {
    size_t ng = 0;
    int *g = pf_ir_qrels_grades_sorted(q, qid, &ng);
    if (!g) return 0.0;
    double ideal = 0.0;
    for (size_t i = 0; i < ng && i < k; i++) ideal += g[i] / log2((double)i + 2.0);
    free(g);
    if (ideal <= 0.0) return 0.0;
    double dcg = 0.0;
    size_t rank = 0;
    for (size_t i = 0; i < n && rank < k; i++) {
        if (seen_before(ranked, i)) continue;
        int grade = pf_ir_qrels_grade(q, qid, ranked[i]);
        if (grade > 0) dcg += grade / log2((double)rank + 2.0);
        rank++;
    }
    return dcg / ideal;
}

double pf_ir_recall(const pf_ir_qrels *q, const char *qid, const char *const *ranked, size_t n, size_t k) {
    size_t nrel = pf_ir_qrels_n_relevant(q, qid);
    if (!nrel) return 0.0;
    size_t hit = 0, rank = 0;
    for (size_t i = 0; i < n && rank < k; i++) {
        if (seen_before(ranked, i)) continue;
        hit += pf_ir_qrels_grade(q, qid, ranked[i]) > 0;
        rank++;
    }
    return (double)hit / (double)nrel;
}
