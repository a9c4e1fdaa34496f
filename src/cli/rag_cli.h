/* Command-line plumbing shared by `phiforge ask` and `phiforge chat --kb`: the knowledge-base
 * options, retrieval + relevance gate, the one place generation parameters are built, and the
 * printing of sources and citations. Implemented in src/cli/rag_cli.c (CLI only). */
#ifndef PF_RAG_CLI_H
#define PF_RAG_CLI_H

#include "generate/gen_cli.h"

enum { RAG_OPT_KB = 500, RAG_OPT_EMBED, RAG_OPT_MIN_SCORE, RAG_OPT_MIN_COSINE, RAG_OPT_MODE, RAG_OPT_SHOW_PROMPT };

#define RAG_CLI_SHORT "k:"
#define RAG_CLI_LONG                                                                                          \
    {"kb", required_argument, 0, RAG_OPT_KB}, {"embed-model", required_argument, 0, RAG_OPT_EMBED},            \
    {"top-n", required_argument, 0, 'k'}, {"min-score", required_argument, 0, RAG_OPT_MIN_SCORE},             \
    {"min-cosine", required_argument, 0, RAG_OPT_MIN_COSINE}, {"mode", required_argument, 0, RAG_OPT_MODE},   \
    {"show-prompt", no_argument, 0, RAG_OPT_SHOW_PROMPT}

typedef struct rag_cli {
    const char *cmd;
    const char *kb_dir, *embed_model;
    pf_search_params sp;
    bool mode_given, show_prompt;
    pf_rag_gate_params gate;
    /* opened by rag_cli_open */
    pf_kb *kb;
    pf_embedder *emb; /* only when --embed-model was given (else the KB owns it) */
    pf_retriever *r;
} rag_cli;

/* One retrieval (pf_rag_retrieve): the hits, the gate's verdict and each hit's coverage; only
 * hits[0..n_use) are used. */
typedef pf_rag_retrieval rag_turn;

void rag_cli_init(rag_cli *r, const char *cmd);
/* 1 handled, 0 not a RAG option, -1 bad value (reported). */
int rag_cli_option(rag_cli *r, int c, const char *arg);
void rag_cli_usage(FILE *f);
/* Opens the KB and its retriever; 0, or 1 after reporting. */
int rag_cli_open(rag_cli *r, int n_threads);
void rag_cli_free(rag_cli *r);
/* Retrieves for `query` and gates on `gate_query` (the question itself; may equal query). */
int rag_cli_retrieve(rag_cli *r, const char *query, const char *gate_query, rag_turn *t, pf_error *err);
void rag_turn_free(rag_turn *t);

/* Generation parameters of an answer: built here only, for ask and chat alike. */
pf_gen_params rag_cli_gen_params(const gen_cli *g, pf_text_fn on_text, void *user);

/* "manuals/pump.pdf p.12 › Maintenance › Filters": the source relative to the working
 * directory when it lies below it. */
void rag_cli_label(const pf_search_hit *h, char *buf, size_t cap);
/* Sources after an answer: cited ones, then the others; each invalid marker as a warning.
 * hit_of[n - 1] is the hit index of source n. cit may be NULL (all sources listed as given). */
void rag_cli_print_sources(FILE *f, const pf_search_results *res, const int32_t *hit_of, int32_t n_sources,
                           const pf_rag_citations *cit, const char *answer);
/* The refusal note on stderr (why the gate said no). */
void rag_cli_print_refusal_reason(const rag_cli *r, const rag_turn *t);

/* The chat --kb session over stdin (src/cli/chat_kb.c); 0, or 1 after reporting. */
int rag_cli_chat(gen_cli *g, rag_cli *r);


#endif
