/* phiforge eval --kb DIR --qa FILE.jsonl [-m M] [--lora A] [--modes base,rag,lora,rag+lora] [-k K]
 *                [--limit N] [--json]
 *
 * Answers every question of a Q&A file in each mode and prints one row of metrics per mode:
 *   base      the model alone, closed book (no KB, no adapter)
 *   rag       retrieval + gate + the model's answer from the packed sources (extractive without -m)
 *   lora      the model with the LoRA adapter, closed book
 *   rag+lora  retrieval + the adapted model
 * The metrics are defined in phiforge.h ("Evaluation: RAG, fine-tuning, or both?"). Exit status:
 * 0, or 1 on an error. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/eval_cli.h"
#include "cli/rag_cli.h"

enum { EVAL_OPT_QA = 700, EVAL_OPT_MODES, EVAL_OPT_LIMIT, EVAL_OPT_JSON };

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge eval --kb DIR --qa FILE.jsonl [-m MODEL] [--lora A] [options]\n"
               "  Answers each question of FILE in each mode and prints exact match, token F1, citation\n"
               "  accuracy, retrieval recall@k, refusal accuracy on unanswerable questions and tokens/s.\n"
               "      --qa FILE             Q&A JSONL: question, answer, source (gold document), type\n"
               "      --modes LIST          comma-separated: base, rag, lora, rag+lora (default: every mode\n"
               "                            the models given allow; without -m only the extractive rag)\n"
               "      --limit N             the first N questions only\n"
               "      --json                one JSON object: per-mode metrics\n");
    rag_cli_usage(f);
    fprintf(f, "  model (base, lora and rag+lora need -m; lora modes need --lora; greedy, -n 64 by default):\n");
    gen_cli_usage(f);
}

int eval_parse_modes(const char *s, unsigned *modes) {
    *modes = 0;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        unsigned m = 0;
        for (int i = 0; i < EVAL_N_MODES; i++)
            if (strlen(eval_mode_name[i]) == n && !strncmp(s, eval_mode_name[i], n)) m = 1u << i;
        if (!m) return -1;
        *modes |= m;
        s += n + (e != NULL);
    }
    return *modes ? 0 : -1;
}

const char *const eval_mode_name[EVAL_N_MODES] = {"base", "rag", "lora", "rag+lora"};

static void fmt_metric(double v, char *buf, size_t cap) {
    if (isnan(v)) snprintf(buf, cap, "-");
    else snprintf(buf, cap, "%.3f", v);
}

void eval_print_table(FILE *f, const eval_row *rows, int n, int32_t k) {
    char rk[16];
    snprintf(rk, sizeof rk, "recall@%d", k);
    fprintf(f, "%-9s %5s %7s %7s %9s %9s %8s %9s %8s\n", "mode", "n", "exact", "F1", "cite-acc", rk, "refusal", "false-ref",
            "tok/s");
    for (int i = 0; i < n; i++) {
        const pf_eval_scores *s = &rows[i].s;
        char em[16], f1[16], ca[16], rc[16], ra[16], fr[16], tps[16];
        fmt_metric(s->exact_match, em, sizeof em), fmt_metric(s->f1, f1, sizeof f1);
        fmt_metric(s->citation_acc, ca, sizeof ca), fmt_metric(s->recall_at_k, rc, sizeof rc);
        fmt_metric(s->refusal_acc, ra, sizeof ra), fmt_metric(s->false_refusal, fr, sizeof fr);
        if (isnan(s->tokens_per_s)) snprintf(tps, sizeof tps, "-");
        else snprintf(tps, sizeof tps, "%.1f", s->tokens_per_s);
        fprintf(f, "%-9s %5lld %7s %7s %9s %9s %8s %9s %8s\n", rows[i].name, (long long)s->n, em, f1, ca, rc, ra, fr, tps);
    }
}

static void json_metric(FILE *f, const char *key, double v) {
    fprintf(f, ",\"%s\":", key);
    if (isnan(v)) fputs("null", f); else fprintf(f, "%.6g", v);
}

void eval_print_json(FILE *f, const eval_row *rows, int n, int32_t k, const char *model, const char *lora) {
    fprintf(f, "{\"k\":%d,\"model\":", k);
    if (model) cli_json_str(f, model); else fputs("null", f);
    fprintf(f, ",\"lora\":");
    if (lora) cli_json_str(f, lora); else fputs("null", f);
    fprintf(f, ",\"modes\":[");
    for (int i = 0; i < n; i++) {
        const pf_eval_scores *s = &rows[i].s;
        fprintf(f, "%s{\"mode\":\"%s\",\"answers\":\"%s\",\"n\":%lld,\"answerable\":%lld,\"unanswerable\":%lld", i ? "," : "",
                rows[i].name, rows[i].extractive ? "extractive" : "generated", (long long)s->n, (long long)s->n_answerable,
                (long long)s->n_unanswerable);
        json_metric(f, "exact_match", s->exact_match);
        json_metric(f, "f1", s->f1);
        json_metric(f, "citation_accuracy", s->citation_acc);
        json_metric(f, "recall_at_k", s->recall_at_k);
        json_metric(f, "refusal_accuracy", s->refusal_acc);
        json_metric(f, "false_refusal", s->false_refusal);
        json_metric(f, "tokens_per_s", s->tokens_per_s);
        fprintf(f, ",\"gen_tokens\":%lld,\"seconds\":%.3f}", (long long)s->n_gen_tokens, s->total_ms / 1e3);
    }
    fprintf(f, "]}\n");
}

typedef struct progress_ctx {
    cli_progress bar;
} progress_ctx;

static int on_item(void *user, int64_t i, int64_t n, const pf_qa_item *q, const pf_rag_answer *a, const pf_eval_item *it) {
    progress_ctx *p = user;
    cli_progress_update(&p->bar, (double)(i + 1), q->id);
    return 0;
}

int eval_run_modes(rag_cli *r, gen_cli *g, const pf_qa_set *qa, int64_t limit, unsigned modes, eval_row *rows, int *n_rows) {
    pf_error err = {0};
    pf_rag_model model = {0};
    if (g->model) model = (pf_rag_model){.ctx = g->ctx, .tok = g->tok, .smp = g->smp, .fmt = g->fmt};
    *n_rows = 0;
    int64_t n = limit > 0 && limit < qa->n ? limit : qa->n;
    for (int mi = 0; mi < EVAL_N_MODES; mi++) {
        if (!(modes & (1u << mi))) continue;
        bool retrieve = mi == EVAL_RAG || mi == EVAL_RAG_LORA, lora = mi == EVAL_LORA || mi == EVAL_RAG_LORA;
        /* the adapters are on only in the lora modes */
        if (g->model && pf_context_set_lora(g->ctx, g->lora, g->lora_scale, lora ? g->n_lora : 0, &err))
            return cli_fail(r->cmd, &err);
        pf_rag_answer_params p = pf_rag_answer_default_params();
        p.search = r->sp;
        p.gate = r->gate;
        p.retrieve = retrieve;
        p.instructions = g->system;
        p.max_tokens = g->n_predict;
        p.stop = g->stop, p.n_stop = g->n_stop;
        p.n_draft = g->n_draft;
        char label[32];
        snprintf(label, sizeof label, "eval %s", eval_mode_name[mi]);
        progress_ctx pc;
        cli_progress_start(&pc.bar, label, (double)n);
        pc.bar.rate_unit = "q";
        eval_row *row = &rows[(*n_rows)++];
        row->name = eval_mode_name[mi];
        row->extractive = !g->model;
        int rc = pf_eval_run(r->kb, r->r, g->model ? &model : NULL, qa, n, &p, on_item, &pc, &row->s, &err);
        cli_progress_finish(&pc.bar);
        if (rc) return cli_fail(r->cmd, &err);
    }
    return 0;
}

int cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {GEN_CLI_LONG, RAG_CLI_LONG,
                                         {"qa", required_argument, 0, EVAL_OPT_QA},
                                         {"modes", required_argument, 0, EVAL_OPT_MODES},
                                         {"limit", required_argument, 0, EVAL_OPT_LIMIT},
                                         {"json", no_argument, 0, EVAL_OPT_JSON},
                                         {0, 0, 0, 0}};
    gen_cli g;
    gen_cli_init(&g, "eval");
    g.sp.temperature = 0; /* reproducible scores */
    g.n_predict = 64;     /* reference answers are short */
    g.n_draft = PF_LOOKUP_DEFAULT_N_DRAFT; /* as ask: drafts from the prompt */
    rag_cli r;
    rag_cli_init(&r, "eval");
    const char *qa_path = NULL;
    unsigned modes = 0;
    bool json = false;
    long limit = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, GEN_CLI_SHORT RAG_CLI_SHORT, opts, NULL)) != -1) {
        int k = gen_cli_option(&g, c, optarg);
        if (k == 0) k = rag_cli_option(&r, c, optarg);
        if (k < 0) return 1;
        if (k > 0) continue;
        switch (c) {
        case EVAL_OPT_QA: qa_path = optarg; break;
        case EVAL_OPT_JSON: json = true; break;
        case EVAL_OPT_MODES:
            if (eval_parse_modes(optarg, &modes)) return cli_failf("eval", "--modes: a list of base, rag, lora, rag+lora, not '%s'", optarg);
            break;
        case EVAL_OPT_LIMIT: {
            char *end;
            limit = strtol(optarg, &end, 10);
            if (*end || end == optarg || limit < 1) return cli_failf("eval", "bad --limit '%s'", optarg);
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind < argc) { usage(stderr); return cli_failf("eval", "unexpected argument '%s'", argv[optind]); }
    if (!r.kb_dir || !qa_path) { usage(stderr); return cli_failf("eval", "--kb DIR and --qa FILE are required"); }
    if (!g.model && g.n_lora) return cli_failf("eval", "--lora needs a model (-m)");
    if (!modes) modes = !g.model ? 1u << EVAL_RAG : g.n_lora ? 0xfu : (1u << EVAL_BASE) | (1u << EVAL_RAG);
    if (!g.model && (modes & ~(1u << EVAL_RAG)))
        return cli_failf("eval", "the base, lora and rag+lora modes need a model (-m); without one only the extractive "
                                 "rag mode runs");
    if (!g.n_lora && (modes & ((1u << EVAL_LORA) | (1u << EVAL_RAG_LORA))))
        return cli_failf("eval", "the lora and rag+lora modes need an adapter (--lora)");
    if (!g.model && !json) fprintf(stderr, "phiforge eval: no model (-m): only the rag mode runs, with extractive answers\n");
    pf_error err = {0};
    pf_qa_set qa;
    if (pf_qa_load(qa_path, &qa, &err)) return cli_fail("eval", &err);
    int rc = rag_cli_open(&r, g.threads);
    if (!rc && g.model) rc = gen_cli_load(&g);
    eval_row rows[EVAL_N_MODES];
    int n_rows = 0;
    if (!rc) rc = eval_run_modes(&r, &g, &qa, limit, modes, rows, &n_rows);
    if (!rc) {
        if (json) eval_print_json(stdout, rows, n_rows, r.sp.k, g.model, g.n_lora ? g.lora_path[0] : NULL);
        else eval_print_table(stdout, rows, n_rows, r.sp.k);
    }
    pf_qa_free(&qa);
    rag_cli_free(&r);
    gen_cli_free(&g);
    return rc;
}
