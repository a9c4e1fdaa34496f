/* `phiforge eval`'s scoring: each question answered through pf_rag_answer_question, then
 * compared with its reference (SQuAD EM / F1), its gold document (cited? retrieved?) and, for
 * unanswerable questions, whether the answer is a refusal. Definitions in phiforge.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phiforge.h"

#define NOT_COVERED_ANSWER "not covered"

/* normalize(s) into a malloc'd string; NULL on no memory. */
static char *normalized(const char *s) {
    int64_t n = pf_answer_normalize(s, NULL, 0);
    if (n < 0) return NULL;
    char *out = malloc((size_t)n + 1);
    if (out) pf_answer_normalize(s, out, n + 1);
    return out;
}

/* A refusal: the gate's, or a model's answer that says the fixed sentence or "not covered". */
static int is_refusal(const pf_rag_answer *a, bool *refused) {
    *refused = a->refused;
    if (a->refused) return PF_OK;
    char *t = normalized(a->text ? a->text : ""), *fixed = normalized(PF_RAG_NOT_COVERED);
    int rc = t && fixed ? PF_OK : PF_ERR_NOMEM;
    if (!rc) *refused = strstr(t, fixed) != NULL || !strcmp(t, NOT_COVERED_ANSWER);
    free(t), free(fixed);
    return rc;
}

int pf_eval_score(const pf_qa_item *q, const pf_rag_answer *a, bool retrieve, pf_eval_item *out, pf_error *err) {
    memset(out, 0, sizeof *out);
    if (!q || !a) return pf_error_set(err, PF_ERR_ARG, "pf_eval_score: NULL argument");
    if (is_refusal(a, &out->refused)) return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    char *pred = out->refused ? strdup(NOT_COVERED_ANSWER) : pf_rag_strip_markers(a->text ? a->text : "", &a->cit);
    if (!pred) return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    const char *ref = q->unanswerable ? NOT_COVERED_ANSWER : q->answer;
    int rc = pf_answer_exact_match(pred, ref, &out->exact);
    if (!rc) rc = pf_answer_f1(pred, ref, &out->f1);
    free(pred);
    if (rc) return pf_error_set(err, rc, "answer metrics failed (%d)", rc);
    if (retrieve && q->source) {
        const pf_rag_retrieval *t = &a->retrieval;
        for (int32_t i = 0; i < t->res.n && !out->retrieved_gold; i++) out->retrieved_gold = pf_eval_doc_matches(t->ranked[i], q->source);
        for (int32_t i = 0; i < a->n_sources && !out->cited_gold; i++)
            out->cited_gold = a->sources[i].n_cited > 0 && pf_eval_doc_matches(a->sources[i].doc_key, q->source);
    }
    out->n_gen = a->n_gen;
    out->gen_ms = a->gen_ms;
    out->total_ms = a->total_ms;
    return PF_OK;
}

void pf_eval_scores_add(pf_eval_scores *s, const pf_qa_item *q, const pf_eval_item *it) {
    s->n++;
    s->s_exact += it->exact;
    s->s_f1 += it->f1;
    if (q->unanswerable) {
        s->n_unanswerable++;
        s->s_refused_unans += it->refused;
    } else {
        s->n_answerable++;
        s->s_refused_ans += it->refused;
        if (q->source) {
            s->n_sourced++;
            s->s_cited += it->cited_gold;
            s->s_retrieved += it->retrieved_gold;
        }
    }
    s->n_gen_tokens += it->n_gen;
    s->gen_ms += it->gen_ms;
    s->total_ms += it->total_ms;
}

static double ratio(double a, int64_t b) { return b > 0 ? a / (double)b : NAN; }

void pf_eval_scores_finish(pf_eval_scores *s, bool retrieve, bool generated) {
    s->exact_match = ratio((double)s->s_exact, s->n);
    s->f1 = ratio(s->s_f1, s->n);
    s->citation_acc = retrieve ? ratio((double)s->s_cited, s->n_sourced) : NAN;
    s->recall_at_k = retrieve ? ratio((double)s->s_retrieved, s->n_sourced) : NAN;
    s->refusal_acc = ratio((double)s->s_refused_unans, s->n_unanswerable);
    s->false_refusal = ratio((double)s->s_refused_ans, s->n_answerable);
    s->tokens_per_s = generated && s->gen_ms > 0 ? 1e3 * (double)s->n_gen_tokens / s->gen_ms : NAN;
}

int pf_eval_run(pf_kb *kb, pf_retriever *r, const pf_rag_model *model, const pf_qa_set *qa, int64_t n,
                const pf_rag_answer_params *p, pf_eval_item_fn on_item, void *user, pf_eval_scores *out, pf_error *err) {
    memset(out, 0, sizeof *out);
    if (!qa || !p) return pf_error_set(err, PF_ERR_ARG, "pf_eval_run: NULL argument");
    if (n < 0 || n > qa->n) n = qa->n;
    for (int64_t i = 0; i < n; i++) {
        const pf_qa_item *q = &qa->items[i];
        pf_rag_answer a;
        pf_eval_item it;
        int rc = pf_rag_answer_question(kb, r, model, q->question, p, &a, err);
        if (rc && err) {
            /* name the question at fault: its id and line */
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            pf_error_set(err, rc, "question %s (line %lld): %s", q->id, (long long)q->line, msg);
        }
        if (!rc) rc = pf_eval_score(q, &a, p->retrieve, &it, err);
        if (!rc) {
            pf_eval_scores_add(out, q, &it);
            if (on_item && on_item(user, i, n, q, &a, &it)) rc = pf_error_set(err, PF_ERR_ARG, "stopped");
        }
        pf_rag_answer_free(&a);
        if (rc) return rc;
    }
    pf_eval_scores_finish(out, p->retrieve, model != NULL);
    return PF_OK;
}
