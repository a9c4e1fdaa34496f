/* Shared by `phiforge ask` and `phiforge chat --kb` (see rag_cli.h). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/rag_cli.h"

void rag_cli_init(rag_cli *r, const char *cmd) {
    memset(r, 0, sizeof *r);
    r->cmd = cmd;
    r->sp = pf_search_default_params();
    r->sp.k = 5; /* five 256-token chunks leave Phi-3-mini-4k room for instructions and answer */
    r->gate = pf_rag_gate_default_params();
}

void rag_cli_usage(FILE *f) {
    fprintf(f, "  knowledge base:\n"
               "      --kb DIR              the knowledge base (phiforge ingest)\n"
               "  -k, --top-n K             passages retrieved per question (5)\n"
               "      --mode M              hybrid (default; BM25 alone when the KB has no embedder),\n"
               "                            bm25 or dense\n"
               "      --embed-model E.gguf  embedder to use instead of the one the KB records (same model\n"
               "                            moved elsewhere)\n"
               "      --min-score X         relevance gate: the best passage must hold this IDF-weighted\n"
               "                            share of the question's content words (default %.2f; 0: off)\n"
               "      --min-cosine X        also pass when the best dense cosine reaches X (default off)\n"
               "      --show-prompt         print the packed prompt on stderr\n",
            PF_RAG_DEFAULT_MIN_COVERAGE);
}

static int parse_unit(const rag_cli *r, const char *name, const char *arg, double *out) {
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (end == arg || *end || errno || isnan(v) || v < 0 || v > 1)
        return cli_failf(r->cmd, "bad %s '%s' (a number from 0 to 1)", name, arg), -1;
    *out = v;
    return 1;
}

int rag_cli_option(rag_cli *r, int c, const char *arg) {
    switch (c) {
    case RAG_OPT_KB: r->kb_dir = arg; return 1;
    case RAG_OPT_EMBED: r->embed_model = arg; return 1;
    case RAG_OPT_SHOW_PROMPT: r->show_prompt = true; return 1;
    case RAG_OPT_MIN_SCORE: return parse_unit(r, "--min-score", arg, &r->gate.min_coverage);
    case RAG_OPT_MIN_COSINE: return parse_unit(r, "--min-cosine", arg, &r->gate.min_cosine);
    case RAG_OPT_MODE:
        if (pf_search_mode_from_name(arg, &r->sp.mode)) return cli_failf(r->cmd, "--mode: bm25, dense or hybrid, not '%s'", arg), -1;
        r->mode_given = true;
        return 1;
    case 'k': {
        char *end;
        errno = 0;
        long v = strtol(arg, &end, 10);
        if (end == arg || *end || errno || v <= 0 || v > 1000) return cli_failf(r->cmd, "bad -k '%s' (1..1000)", arg), -1;
        r->sp.k = (int32_t)v;
        if (r->sp.depth < r->sp.k) r->sp.depth = r->sp.k;
        return 1;
    }
    }
    return 0;
}

/* --embed-model: that file as the KB's embedder, if it is the model the KB was embedded with
 * (same general.name; the dimension is checked by the retriever). */
static int open_with_embedder(rag_cli *r, int n_threads, pf_error *err) {
    int rc = pf_embedder_load(r->embed_model, n_threads, &r->emb, err);
    if (rc) return rc;
    char name[256];
    pf_error e2 = {0};
    if (pf_kb_meta_get(r->kb, "embed_name", name, sizeof name, &e2) != PF_OK)
        return pf_error_set(err, PF_ERR_ARG, "--embed-model: %s has no embedding model (ingest with --embed-model first)",
                            r->kb_dir);
    if (strcmp(name, pf_embedder_name(r->emb)))
        return pf_error_set(err, PF_ERR_ARG, "--embed-model %s is '%s'; the knowledge base was embedded with '%s'",
                            r->embed_model, pf_embedder_name(r->emb), name);
    pf_hnsw *index = NULL;
    if ((rc = pf_kb_vector_index(r->kb, &index, err))) return rc;
    return pf_retriever_open(pf_kb_db(r->kb), r->emb, index, &r->r, err);
}

int rag_cli_open(rag_cli *r, int n_threads) {
    pf_error err = {0};
    if (pf_kb_open(r->kb_dir, false, &r->kb, &err)) return cli_fail(r->cmd, &err);
    if (r->embed_model) return open_with_embedder(r, n_threads, &err) ? cli_fail(r->cmd, &err) : 0;
    if (pf_kb_retriever(r->kb, r->sp.mode != PF_SEARCH_BM25, n_threads, &r->r, &err)) {
        /* as `search`: a KB whose model file went missing still answers lexically */
        if (r->sp.mode == PF_SEARCH_HYBRID && !r->mode_given && (err.code == PF_ERR_NOT_FOUND || err.code == PF_ERR_FORMAT)) {
            fprintf(stderr, "phiforge %s: warning: %s; retrieving with BM25 only\n", r->cmd, err.msg);
            if (pf_kb_retriever(r->kb, false, n_threads, &r->r, &err)) return cli_fail(r->cmd, &err);
        } else return cli_fail(r->cmd, &err);
    }
    return 0;
}

void rag_cli_free(rag_cli *r) {
    pf_retriever_free(r->r);
    pf_kb_close(r->kb);
    pf_embedder_free(r->emb);
    r->r = NULL, r->kb = NULL, r->emb = NULL;
}

int rag_cli_retrieve(rag_cli *r, const char *query, const char *gate_query, rag_turn *t, pf_error *err) {
    return pf_rag_retrieve(r->kb, r->r, query, gate_query, &r->sp, &r->gate, t, err);
}

void rag_turn_free(rag_turn *t) { pf_rag_retrieval_free(t); }

/* An answer's generation parameters come from pf_rag_gen_params (src/rag/rag_answer.c), the single
 * place where they are set (ask, eval and chat --kb): prompt-lookup decoding / the prefix cache go there. */
pf_gen_params rag_cli_gen_params(const gen_cli *g, pf_text_fn on_text, void *user) {
    return pf_rag_gen_params(g->n_predict, g->stop, g->n_stop, g->n_draft, on_text, user);
}

void rag_cli_label(const pf_search_hit *h, char *buf, size_t cap) {
    pf_search_hit copy = *h;
    char cwd[PATH_MAX];
    if (h->source && getcwd(cwd, sizeof cwd)) {
        size_t n = strlen(cwd);
        if (!strncmp(h->source, cwd, n) && h->source[n] == '/') copy.source = h->source + n + 1;
    }
    pf_rag_source_label(&copy, false, buf, cap);
}

static void print_one(FILE *f, const pf_search_results *res, int32_t hit, int32_t n) {
    char label[1024];
    rag_cli_label(&res->hits[hit], label, sizeof label);
    fprintf(f, "  [%d] %s\n", n, label);
}

void rag_cli_print_sources(FILE *f, const pf_search_results *res, const int32_t *hit_of, int32_t n_sources,
                           const pf_rag_citations *cit, const char *answer) {
    int32_t n_cited = 0;
    for (int32_t i = 0; i < n_sources && cit; i++) n_cited += cit->count[i] > 0;
    if (cit && n_cited) {
        fprintf(f, "\nSources cited:\n");
        for (int32_t i = 0; i < n_sources; i++)
            if (cit->count[i] > 0) print_one(f, res, hit_of[i], i + 1);
    }
    if (n_cited < n_sources) {
        fprintf(f, "\n%s\n", !cit ? "Sources:" : n_cited ? "Also retrieved (not cited):" : "Sources retrieved (none cited):");
        for (int32_t i = 0; i < n_sources; i++)
            if (!cit || cit->count[i] == 0) print_one(f, res, hit_of[i], i + 1);
    }
    for (int64_t i = 0; cit && i < cit->n_markers; i++) {
        const pf_rag_marker *m = &cit->markers[i];
        if (!m->valid)
            fprintf(f, "warning: %.*s at byte %lld names source %d, which does not exist (%d sources were given)\n",
                    (int)(m->end - m->start), answer + m->start, (long long)m->start, m->source, n_sources);
    }
}

void rag_cli_print_refusal_reason(const rag_cli *r, const rag_turn *t) {
    if (t->rel.relevant) fprintf(stderr, "(%s: the question's words are only in headings or titles: no sentence to quote)\n", r->cmd);
    else if (t->res.n == 0) fprintf(stderr, "(%s: no passage matched the question)\n", r->cmd);
    else if (t->rel.n_terms == 0) fprintf(stderr, "(%s: the question has no content words to look for)\n", r->cmd);
    else
        fprintf(stderr, "(%s: the best passage holds %.0f%% of the question's content words by weight; --min-score %.2f needs %.0f%%)\n",
                r->cmd, 100 * t->rel.coverage, r->gate.min_coverage, 100 * r->gate.min_coverage);
}
