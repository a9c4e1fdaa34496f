/* phiforge ask --kb DIR [-m PHI3.gguf] [--lora A.gguf] [-k K] [--json] QUESTION...
 *
 * Retrieves passages for the question, checks that they are about it (relevance gate), then
 *   with -m:    packs instructions, numbered sources and the question into Phi-3's context by
 *               token budget, streams the model's answer, maps its [n] markers back to the
 *               passages and lists cited and uncited sources (markers naming no source are
 *               flagged);
 *   without -m: answers extractively: the passages' sentences that match the question, each
 *               group followed by its [n].
 * When the gate says no, the answer is PF_RAG_NOT_COVERED and the model is not called.
 * Exit status: 0 answered, 2 not covered by the knowledge base, 1 error. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/rag_cli.h"

enum { ASK_OPT_JSON = 600, ASK_OPT_MAX_CHARS, ASK_OPT_ANSWER, ASK_OPT_NO_PREFIX_CACHE };

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge ask --kb DIR [-m MODEL.gguf] [options] QUESTION...\n"
               "  Answers QUESTION from the knowledge base with citations [n], then lists the sources.\n"
               "  Without -m the answer is extractive: the sentences of the best passages that match\n"
               "  the question. When no passage is relevant it says so (exit status 2) instead of guessing.\n"
               "      --json                one JSON object: answer, citations (doc, chunk, offsets, page,\n"
               "                            score), invalid markers, timings\n"
               "      --max-chars N         length of an extractive answer (default 700)\n"
               "      --answer TEXT         with -m: do not generate; map the citations of TEXT (an answer\n"
               "                            produced elsewhere) to the sources the prompt would number\n"
               "      --no-prefix-cache     with -m: do not keep the prompt's KV state in DIR/prefix-cache.kv\n"
               "                            (by default the next question over the same sources restores\n"
               "                            instructions + sources from it instead of decoding them again)\n"
               "  With -m, prompt-lookup speculative decoding is on (--draft 8; --draft 0 turns it off).\n");
    rag_cli_usage(f);
    fprintf(f, "  model (optional; sampling is greedy unless --temp is given):\n");
    gen_cli_usage(f);
}

typedef struct ask_opts {
    bool json;
    bool no_prefix_cache;
    const char *question;
    const char *answer; /* --answer: map this instead of generating */
    pf_rag_extract_params xp;
} ask_opts;

/* ---- JSON ---------------------------------------------------------------------------------- */

static void json_num(double v) {
    if (isnan(v) || isinf(v)) fputs("null", stdout); else printf("%.6g", v);
}

static void json_opt(const char *s) {
    if (s) cli_json_str(stdout, s); else fputs("null", stdout);
}

/* One source: where it is, how it ranked, whether the answer cites it. spans: extractive
 * sentences of this source (document byte offsets). */
static void json_source(int32_t n, const pf_search_hit *h, double coverage, int32_t count, bool truncated,
                        const pf_rag_extract *x) {
    printf("{\"n\":%d,\"cited\":%s,\"count\":%d,\"doc\":", n, count > 0 ? "true" : "false", count);
    cli_json_str(stdout, h->doc_key);
    printf(",\"doc_id\":%lld,\"chunk\":%lld,\"source\":", (long long)h->doc_id, (long long)h->chunk_id);
    cli_json_str(stdout, h->source);
    printf(",\"title\":");
    json_opt(h->title);
    printf(",\"page\":");
    if (h->page > 0) printf("%d", h->page); else fputs("null", stdout);
    printf(",\"heading\":");
    json_opt(h->heading);
    printf(",\"start_char\":%lld,\"end_char\":%lld,\"score\":", (long long)h->start_char, (long long)h->end_char);
    json_num(h->score);
    printf(",\"bm25_score\":");
    json_num(h->bm25_rank > 0 ? h->bm25_score : NAN);
    printf(",\"dense_score\":");
    json_num(h->dense_rank > 0 ? h->dense_score : NAN);
    printf(",\"coverage\":");
    json_num(coverage);
    printf(",\"truncated\":%s", truncated ? "true" : "false");
    if (x) {
        printf(",\"spans\":[");
        int k = 0;
        for (int32_t i = 0; i < x->n_sentences; i++)
            if (x->sentences[i].source == n)
                printf("%s{\"start_char\":%lld,\"end_char\":%lld}", k++ ? "," : "",
                       (long long)(h->start_char + x->sentences[i].start), (long long)(h->start_char + x->sentences[i].end));
        putchar(']');
    }
    putchar('}');
}

static void json_head(const rag_cli *r, const ask_opts *o, const rag_turn *t, const char *kind, const char *answer) {
    printf("{\"question\":");
    cli_json_str(stdout, o->question);
    printf(",\"kind\":\"%s\",\"covered\":%s,\"answer\":", kind, strcmp(kind, "not_covered") ? "true" : "false");
    cli_json_str(stdout, answer);
    printf(",\"retrieval\":\"%s\",\"relevance\":{\"coverage\":", pf_search_mode_name(t->res.mode));
    json_num(t->rel.coverage);
    printf(",\"min_score\":");
    json_num(r->gate.min_coverage);
    printf(",\"cosine\":");
    json_num(t->rel.cosine);
    printf(",\"min_cosine\":");
    json_num(r->gate.min_cosine);
    printf(",\"terms\":%d}", t->rel.n_terms);
}

/* ---- the three outcomes ----------------------------------------------------------------------- */

static int answer_not_covered(const rag_cli *r, const ask_opts *o, const rag_turn *t, double t0) {
    if (o->json) {
        json_head(r, o, t, "not_covered", PF_RAG_NOT_COVERED);
        printf(",\"citations\":[],\"invalid_markers\":[],\"timings\":{\"retrieve_ms\":%.3f,\"total_ms\":%.3f}}\n",
               t->retrieve_ms, 1e3 * (cli_now() - t0));
    } else {
        printf("%s\n", PF_RAG_NOT_COVERED);
        rag_cli_print_refusal_reason(r, t);
    }
    return 2;
}

static void print_extractive(const rag_cli *r, const ask_opts *o, const pf_rag_answer *a, const int32_t *hit_of, double t0) {
    const rag_turn *t = &a->retrieval;
    if (o->json) {
        json_head(r, o, t, "extractive", a->text);
        printf(",\"citations\":[");
        for (int32_t i = 0; i < a->n_sources; i++) {
            if (i) putchar(',');
            json_source(i + 1, &t->res.hits[i], t->coverage[i], a->cit.count[i], false, &a->extract);
        }
        printf("],\"invalid_markers\":[],\"timings\":{\"retrieve_ms\":%.3f,\"total_ms\":%.3f}}\n", t->retrieve_ms,
               1e3 * (cli_now() - t0));
    } else {
        printf("%s\n", a->text);
        rag_cli_print_sources(stdout, &t->res, hit_of, a->n_sources, &a->cit, a->text);
    }
}

static void print_generated(const rag_cli *r, const gen_cli *g, const ask_opts *o, const pf_rag_answer *a,
                            const int32_t *hit_of, double t0) {
    const rag_turn *t = &a->retrieval;
    const pf_rag_citations *cit = &a->cit;
    if (o->json) {
        json_head(r, o, t, "generated", a->text);
        printf(",\"citations\":[");
        for (int32_t i = 0; i < a->n_sources; i++) {
            if (i) putchar(',');
            json_source(i + 1, &t->res.hits[hit_of[i]], t->coverage[hit_of[i]], cit->count[i], a->sources[i].truncated, NULL);
        }
        printf("],\"invalid_markers\":[");
        int k = 0;
        for (int64_t i = 0; i < cit->n_markers; i++) {
            const pf_rag_marker *m = &cit->markers[i];
            if (m->valid) continue;
            char mk[64];
            snprintf(mk, sizeof mk, "%.*s", (int)(m->end - m->start < 60 ? m->end - m->start : 60), a->text + m->start);
            printf("%s{\"marker\":", k++ ? "," : "");
            cli_json_str(stdout, mk);
            printf(",\"n\":%d,\"offset\":%lld}", m->source, (long long)m->start);
        }
        printf("],\"left_out\":%d,\"stop\":\"%s\",\"timings\":{\"retrieve_ms\":%.3f,\"pack_ms\":%.3f,\"prompt_tokens\":%lld,"
               "\"prompt_ms\":%.3f,\"gen_tokens\":%lld,\"gen_ms\":%.3f,\"total_ms\":%.3f,"
               "\"prefix_restored\":%lld,\"drafted\":%lld,\"accepted\":%lld}}\n",
               a->n_dropped, pf_stop_reason_str(a->stop), t->retrieve_ms, a->pack_ms, (long long)a->n_prompt, a->prompt_ms,
               (long long)a->n_gen, a->gen_ms, 1e3 * (cli_now() - t0), (long long)a->n_prefix_restored,
               (long long)a->n_drafted, (long long)a->n_accepted);
    } else {
        putchar('\n');
        rag_cli_print_sources(stdout, &t->res, hit_of, a->n_sources, cit, a->text);
        fflush(stdout);
        fprintf(stderr, "retrieval: %d passages in %.1f ms (%s), %d in the prompt\n", t->n_use, t->retrieve_ms,
                pf_search_mode_name(t->res.mode), a->n_sources);
        pf_gen_result gr = {.stop = a->stop, .n_prompt = a->n_prompt, .n_gen = a->n_gen, .prompt_ms = a->prompt_ms, .gen_ms = a->gen_ms};
        if (!o->answer) {
            gen_cli_timings(g, &gr);
            fprintf(stderr, "prefix cache: %lld prompt tokens restored; prompt lookup: %lld of %lld drafted tokens accepted\n",
                    (long long)a->n_prefix_restored, (long long)a->n_accepted, (long long)a->n_drafted);
        }
    }
}

static void show_prompt(void *user, const pf_rag_prompt *pr) {
    (void)user;
    fprintf(stderr, "---- system ----\n%s\n---- user ----\n%s\n---- (%lld tokens, %d sources, %d left out) ----\n", pr->system,
            pr->user, (long long)pr->n_ids, pr->n_sources, pr->n_dropped);
}

/* After retrieval: loads the model only when the gate said yes, answers through the library
 * (pf_rag_answer_retrieved) and prints the outcome. */
static int answer(rag_cli *r, gen_cli *g, const ask_opts *o, rag_turn *t, double t0) {
    if (!t->rel.relevant) return answer_not_covered(r, o, t, t0);
    pf_error err = {0};
    pf_rag_model model = {0};
    if (g->model) {
        if (gen_cli_load(g)) return 1;
        model = (pf_rag_model){.ctx = g->ctx, .tok = g->tok, .smp = g->smp, .fmt = g->fmt};
    }
    pf_rag_answer_params p = pf_rag_answer_default_params();
    p.extract = o->xp;
    p.instructions = g->system;
    p.max_tokens = g->n_predict;
    p.stop = g->stop, p.n_stop = g->n_stop;
    p.on_text = o->json ? NULL : gen_cli_print;
    p.on_prompt = r->show_prompt ? show_prompt : NULL;
    p.given_answer = o->answer;
    p.n_draft = g->n_draft;
    char cache_path[4096];
    if (!o->no_prefix_cache && snprintf(cache_path, sizeof cache_path, "%s/prefix-cache.kv", r->kb_dir) < (int)sizeof cache_path)
        p.prefix_cache = cache_path;
    pf_rag_answer a;
    if (pf_rag_answer_retrieved(r->kb, t, g->model ? &model : NULL, o->question, &p, &a, &err)) {
        pf_rag_answer_free(&a);
        return cli_fail(r->cmd, &err);
    }
    int rc = 0;
    int32_t *hit_of = malloc(((size_t)a.n_sources + 1) * sizeof *hit_of);
    if (!hit_of) rc = cli_failf(r->cmd, "out of memory");
    else {
        for (int32_t i = 0; i < a.n_sources; i++) hit_of[i] = a.sources[i].hit;
        if (a.kind == PF_RAG_ANSWER_NOT_COVERED) rc = answer_not_covered(r, o, &a.retrieval, t0);
        else if (a.kind == PF_RAG_ANSWER_EXTRACTIVE) print_extractive(r, o, &a, hit_of, t0);
        else print_generated(r, g, o, &a, hit_of, t0);
    }
    free(hit_of);
    pf_rag_answer_free(&a);
    return rc;
}

/* ---- command ----------------------------------------------------------------------------------- */

int cmd_ask(int argc, char **argv) {
    static const struct option opts[] = {GEN_CLI_LONG, RAG_CLI_LONG,
                                         {"json", no_argument, 0, ASK_OPT_JSON},
                                         {"max-chars", required_argument, 0, ASK_OPT_MAX_CHARS},
                                         {"answer", required_argument, 0, ASK_OPT_ANSWER},
                                         {"no-prefix-cache", no_argument, 0, ASK_OPT_NO_PREFIX_CACHE},
                                         {0, 0, 0, 0}};
    gen_cli g;
    gen_cli_init(&g, "ask");
    g.sp.temperature = 0; /* answers from sources: reproducible unless asked otherwise */
    g.n_draft = PF_LOOKUP_DEFAULT_N_DRAFT; /* answers quote their sources: drafts from the prompt */
    rag_cli r;
    rag_cli_init(&r, "ask");
    ask_opts o = {.xp = pf_rag_extract_default_params()};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, GEN_CLI_SHORT RAG_CLI_SHORT, opts, NULL)) != -1) {
        int k = gen_cli_option(&g, c, optarg);
        if (k == 0) k = rag_cli_option(&r, c, optarg);
        if (k < 0) return 1;
        if (k > 0) continue;
        switch (c) {
        case ASK_OPT_JSON: o.json = true; break;
        case ASK_OPT_ANSWER: o.answer = optarg; break;
        case ASK_OPT_NO_PREFIX_CACHE: o.no_prefix_cache = true; break;
        case ASK_OPT_MAX_CHARS: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 1 || v > 1000000) return cli_failf("ask", "bad --max-chars '%s'", optarg);
            o.xp.max_chars = (int32_t)v;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (!r.kb_dir) { usage(stderr); return cli_failf("ask", "--kb DIR is required"); }
    if (optind >= argc) { usage(stderr); return cli_failf("ask", "a QUESTION is required"); }
    if (!g.model && (g.n_lora || g.system || o.answer))
        return cli_failf("ask", "--lora, --system and --answer need a model (-m)");
    char *q = cli_join_args(argc - optind, argv + optind);
    if (!q) return cli_failf("ask", "out of memory");
    o.question = q;
    double t0 = cli_now();
    int rc = rag_cli_open(&r, g.threads);
    rag_turn t = {0};
    pf_error err = {0};
    if (!rc && rag_cli_retrieve(&r, q, q, &t, &err)) rc = cli_fail("ask", &err);
    if (!rc) rc = answer(&r, &g, &o, &t, t0);
    rag_turn_free(&t);
    rag_cli_free(&r);
    gen_cli_free(&g);
    free(q);
    return rc;
}
