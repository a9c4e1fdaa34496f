/* The ask pipeline as one library call: retrieve -> gate -> (extract | pack + generate | closed
 * book) -> citations. `phiforge ask` prints what this returns; `phiforge eval` scores it. The one
 * pf_generate call of an answer and its pf_gen_params live here (generate_into). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "phiforge.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

const char *pf_rag_closed_book_instructions(void) {
    return "Answer the question briefly and precisely. If you do not know the answer, say: "
           "\"" PF_RAG_NOT_COVERED "\"";
}

pf_rag_answer_params pf_rag_answer_default_params(void) {
    pf_rag_answer_params p;
    memset(&p, 0, sizeof p);
    p.search = pf_search_default_params();
    p.gate = pf_rag_gate_default_params();
    p.extract = pf_rag_extract_default_params();
    p.retrieve = true;
    p.max_tokens = -1;
    p.n_draft = PF_LOOKUP_DEFAULT_N_DRAFT;
    return p;
}

pf_gen_params pf_rag_gen_params(int64_t max_tokens, const char *const *stop, int n_stop, int32_t n_draft, pf_text_fn on_text,
                                void *user) {
    pf_gen_params gp = pf_gen_default_params();
    gp.max_tokens = max_tokens;
    gp.stop = stop, gp.n_stop = n_stop;
    gp.on_text = on_text, gp.user = user;
    /* Answers quote their sources: drafts come from the prompt (the passages). */
    if (n_draft > 0) {
        pf_gen_params_lookup_defaults(&gp);
        gp.n_draft = n_draft;
    }
    return gp;
}

/* ---- retrieval ------------------------------------------------------------------------------ */

int pf_rag_retrieve(pf_kb *kb, pf_retriever *r, const char *query, const char *gate_query, const pf_search_params *sp,
                    const pf_rag_gate_params *gate, pf_rag_retrieval *t, pf_error *err) {
    memset(t, 0, sizeof *t);
    if (!kb || !r || !query || !gate_query || !sp || !gate) return pf_error_set(err, PF_ERR_ARG, "pf_rag_retrieve: NULL argument");
    double t0 = now_ms();
    int rc = pf_retriever_search(r, query, sp, &t->res, err);
    if (rc) return rc;
    t->retrieve_ms = now_ms() - t0;
    t->coverage = calloc((size_t)t->res.n + 1, sizeof *t->coverage);
    t->ranked = calloc((size_t)t->res.n + 1, sizeof *t->ranked);
    if (!t->coverage || !t->ranked) {
        pf_rag_retrieval_free(t);
        return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    }
    for (int32_t i = 0; i < t->res.n; i++) t->ranked[i] = t->res.hits[i].doc_key;
    rc = pf_rag_relevance_check(kb, gate_query, t->res.hits, t->res.n, gate, &t->rel, t->coverage, err);
    if (rc) {
        pf_rag_retrieval_free(t);
        return rc;
    }
    /* stable partition: useful hits first (rel.best is not used after this point) */
    for (int32_t i = 0; i < t->res.n; i++) {
        if (!(t->coverage[i] > 0 || t->res.hits[i].dense_rank > 0)) continue;
        pf_search_hit h = t->res.hits[i];
        double c = t->coverage[i];
        for (int32_t j = i; j > t->n_use; j--) t->res.hits[j] = t->res.hits[j - 1], t->coverage[j] = t->coverage[j - 1];
        t->res.hits[t->n_use] = h, t->coverage[t->n_use++] = c;
    }
    return PF_OK;
}

void pf_rag_retrieval_free(pf_rag_retrieval *t) {
    if (!t) return;
    pf_search_results_free(&t->res);
    free(t->coverage);
    free(t->ranked);
    memset(t, 0, sizeof *t);
}

/* ---- answers -------------------------------------------------------------------------------- */

/* Answer text buffer: sized for the whole context up front so the token loop does not allocate. */
typedef struct answer_buf {
    char *s;
    size_t n, cap;
    pf_text_fn echo;
    void *user;
} answer_buf;

static int answer_append(void *user, const char *text, size_t len) {
    answer_buf *a = user;
    if (a->n + len + 1 > a->cap) { /* rare: the buffer holds n_ctx tokens of 8 bytes up front */
        size_t cap = a->cap * 2;
        while (cap < a->n + len + 1) cap *= 2;
        char *s = realloc(a->s, cap);
        if (!s) return 1;
        a->s = s, a->cap = cap;
    }
    memcpy(a->s + a->n, text, len);
    a->n += len;
    a->s[a->n] = '\0';
    return a->echo ? a->echo(a->user, text, len) : 0;
}

static int set_text(pf_rag_answer *a, const char *s, pf_error *err) {
    free(a->text);
    a->text = strdup(s);
    return a->text ? PF_OK : pf_error_set(err, PF_ERR_NOMEM, "out of memory");
}

static int refuse(pf_rag_answer *a, pf_error *err) {
    a->kind = PF_RAG_ANSWER_NOT_COVERED;
    a->refused = true;
    return set_text(a, PF_RAG_NOT_COVERED, err);
}

static int extractive(pf_kb *kb, const char *question, const pf_rag_answer_params *p, pf_rag_answer *a, pf_error *err) {
    pf_rag_retrieval *t = &a->retrieval;
    int rc = pf_rag_extract_answer(kb, question, t->res.hits, t->n_use, &p->extract, &a->extract, err);
    if (rc) return rc;
    if (a->extract.n_sentences == 0) return refuse(a, err); /* the words matched only headings or titles */
    a->kind = PF_RAG_ANSWER_EXTRACTIVE;
    if ((rc = set_text(a, a->extract.text, err))) return rc;
    a->sources = calloc((size_t)t->n_use + 1, sizeof *a->sources);
    if (!a->sources) return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    a->n_sources = t->n_use;
    for (int32_t i = 0; i < t->n_use; i++) a->sources[i].hit = i;
    return PF_OK;
}

/* The one pf_generate call of an answer. */
static int generate_into(const pf_rag_model *m, const int32_t *ids, int64_t n_ids, const pf_rag_answer_params *p,
                         pf_rag_answer *a, pf_error *err) {
    int64_t n_ctx = pf_context_n_ctx(m->ctx);
    answer_buf buf = {.s = malloc((size_t)(n_ctx * 8 + 1)), .cap = (size_t)(n_ctx * 8 + 1), .echo = p->on_text, .user = p->user};
    if (!buf.s) return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    buf.s[0] = '\0';
    pf_gen_params gp = pf_rag_gen_params(p->max_tokens, p->stop, p->n_stop, p->n_draft, answer_append, &buf);
    /* The KV state of an earlier prompt over the same sources: a miss (no file, another model or
     * adapter set, a damaged file) only means decoding everything, so its error is dropped. */
    int64_t n_restored = 0;
    if (p->prefix_cache) {
        pf_error ce;
        if (pf_context_load_prefix(m->ctx, ids, n_ids, p->prefix_cache, &n_restored, &ce) != PF_OK) n_restored = 0;
        gp.n_cached = n_restored < n_ids - 1 ? n_restored : n_ids - 1;
    }
    pf_gen_result gr = {.stop = PF_STOP_NONE};
    int rc = pf_generate(m->ctx, m->tok, m->smp, ids, n_ids, &gp, &gr, err);
    /* Keep this prompt's KV rows for the next question when the file held less of it (the
     * prompt is [instructions][sources][question]: the next question over the same sources
     * restores everything before its own question). A failed write is not the answer's error. */
    a->n_prefix_restored = n_restored;
    if (rc == PF_OK && p->prefix_cache && n_restored < n_ids - 1 && pf_context_n_past(m->ctx) >= n_ids) {
        pf_error ce;
        (void)pf_context_save_prefix(m->ctx, ids, n_ids, p->prefix_cache, &ce);
    }
    free(a->text);
    a->text = buf.s;
    a->stop = gr.stop;
    a->n_prompt = gr.n_prompt, a->n_gen = gr.n_gen;
    a->n_drafted = gr.n_drafted, a->n_accepted = gr.n_accepted;
    a->prompt_ms = gr.prompt_ms, a->gen_ms = gr.gen_ms;
    return rc;
}

static int64_t answer_reserve(const pf_rag_model *m, const pf_rag_answer_params *p) {
    int64_t n_ctx = pf_context_n_ctx(m->ctx);
    return p->max_tokens > 0 ? p->max_tokens : (n_ctx / 4 < 512 ? n_ctx / 4 : 512);
}

static int generated(const pf_rag_model *m, const char *question, const pf_rag_answer_params *p, pf_rag_answer *a,
                     pf_error *err) {
    pf_rag_retrieval *t = &a->retrieval;
    pf_rag_prompt_params pp = pf_rag_prompt_default_params();
    pp.instructions = p->instructions;
    pp.max_tokens = pf_context_n_ctx(m->ctx) - answer_reserve(m, p);
    pf_rag_prompt pr;
    double tp = now_ms();
    int rc = pf_rag_build_prompt(m->tok, &m->fmt, question, t->res.hits, t->n_use, &pp, &pr, err);
    if (rc) return rc;
    a->pack_ms = now_ms() - tp;
    a->kind = PF_RAG_ANSWER_GENERATED;
    a->n_dropped = t->n_use - pr.n_sources;
    a->sources = calloc((size_t)pr.n_sources + 1, sizeof *a->sources);
    if (!a->sources) {
        pf_rag_prompt_free(&pr);
        return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    }
    a->n_sources = pr.n_sources;
    for (int32_t i = 0; i < pr.n_sources; i++) a->sources[i].hit = pr.sources[i].hit, a->sources[i].truncated = pr.sources[i].truncated;
    if (p->on_prompt) p->on_prompt(p->user, &pr);
    if (p->given_answer) {
        rc = set_text(a, p->given_answer, err);
        if (!rc && p->on_text) p->on_text(p->user, p->given_answer, strlen(p->given_answer));
    } else rc = generate_into(m, pr.ids, pr.n_ids, p, a, err);
    pf_rag_prompt_free(&pr);
    return rc;
}

/* Closed book: system instructions + the question in the chat template, nothing else. */
static int closed_book(const pf_rag_model *m, const char *question, const pf_rag_answer_params *p, pf_rag_answer *a,
                       pf_error *err) {
    a->kind = PF_RAG_ANSWER_CLOSED_BOOK;
    pf_chat_msg msgs[2] = {{PF_CHAT_SYSTEM, p->instructions ? p->instructions : pf_rag_closed_book_instructions()},
                           {PF_CHAT_USER, question}};
    int64_t len = pf_chat_render(&m->fmt, msgs, 2, true, NULL, 0, err);
    if (len < 0) return (int)len;
    char *text = malloc((size_t)len + 1);
    if (!text) return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    pf_chat_render(&m->fmt, msgs, 2, true, text, len + 1, err);
    int64_t cap = pf_context_n_ctx(m->ctx);
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    int rc = PF_OK;
    if (!ids) rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    int64_t n = rc ? 0 : pf_tokenize(m->tok, text, (size_t)len, true, true, ids, cap, err);
    if (!rc && n < 0) rc = (int)n;
    else if (!rc && n > cap - answer_reserve(m, p))
        rc = pf_error_set(err, PF_ERR_ARG, "the question takes %lld tokens: no room left in a context of %lld", (long long)n,
                          (long long)cap);
    if (!rc && p->given_answer) {
        rc = set_text(a, p->given_answer, err);
    } else if (!rc) rc = generate_into(m, ids, n, p, a, err);
    free(ids);
    free(text);
    return rc;
}

int pf_rag_answer_retrieved(pf_kb *kb, pf_rag_retrieval *t, const pf_rag_model *model, const char *question,
                            const pf_rag_answer_params *p, pf_rag_answer *out, pf_error *err) {
    memset(out, 0, sizeof *out);
    out->retrieval = *t;
    memset(t, 0, sizeof *t);
    if (!question || !p) return pf_error_set(err, PF_ERR_ARG, "pf_rag_answer_retrieved: NULL argument");
    double t0 = now_ms();
    int rc;
    if (!out->retrieval.rel.relevant) rc = refuse(out, err);
    else if (!model) rc = extractive(kb, question, p, out, err);
    else rc = generated(model, question, p, out, err);
    if (!rc && out->text) rc = pf_rag_parse_citations(out->text, strlen(out->text), out->n_sources, &out->cit, err);
    for (int32_t i = 0; !rc && i < out->n_sources; i++) {
        out->sources[i].doc_key = out->retrieval.res.hits[out->sources[i].hit].doc_key;
        out->sources[i].n_cited = out->cit.count[i];
    }
    out->total_ms = out->retrieval.retrieve_ms + (now_ms() - t0);
    return rc;
}

int pf_rag_answer_question(pf_kb *kb, pf_retriever *r, const pf_rag_model *model, const char *question,
                           const pf_rag_answer_params *p, pf_rag_answer *out, pf_error *err) {
    memset(out, 0, sizeof *out);
    if (!question || !p) return pf_error_set(err, PF_ERR_ARG, "pf_rag_answer_question: NULL argument");
    if (!p->retrieve) {
        if (!model) return pf_error_set(err, PF_ERR_ARG, "a closed-book answer needs a model");
        double t0 = now_ms();
        int rc = closed_book(model, question, p, out, err);
        if (!rc) rc = pf_rag_parse_citations(out->text, strlen(out->text), 0, &out->cit, err);
        out->total_ms = now_ms() - t0;
        return rc;
    }
    pf_rag_retrieval t;
    int rc = pf_rag_retrieve(kb, r, question, question, &p->search, &p->gate, &t, err);
    if (rc) return rc;
    return pf_rag_answer_retrieved(kb, &t, model, question, p, out, err);
}

void pf_rag_answer_free(pf_rag_answer *a) {
    if (!a) return;
    free(a->text);
    pf_rag_retrieval_free(&a->retrieval);
    free(a->sources);
    pf_rag_citations_free(&a->cit);
    pf_rag_extract_free(&a->extract);
    memset(a, 0, sizeof *a);
}

char *pf_rag_strip_markers(const char *text, const pf_rag_citations *cit) {
    size_t n = strlen(text);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    size_t o = 0, pos = 0;
    for (int64_t i = 0; cit && i < cit->n_markers; i++) {
        size_t st = (size_t)cit->markers[i].start, en = (size_t)cit->markers[i].end;
        if (st < pos) continue; /* numbers of one bracket group share its span */
        memcpy(s + o, text + pos, st - pos);
        o += st - pos;
        s[o++] = ' ';
        pos = en;
    }
    memcpy(s + o, text + pos, n - pos);
    o += n - pos;
    s[o] = '\0';
    return s;
}
