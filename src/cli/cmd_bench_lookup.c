/* phiforge bench-lookup -m MODEL.gguf [--sources FILE]... [-p 1500] [-n 200] [--draft 8]
 *                       [--ngram-min 2] [--ngram-max 4] [-t THREADS] [-r REPS] [--json]
 *
 * Generation speed with and without prompt-lookup speculative decoding on a RAG workload whose
 * answer quotes its sources (see pf_bench_lookup for the teacher-forcing method). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_SOURCES 64

static void usage(FILE *f) {
    fprintf(f,
            "usage: phiforge bench-lookup -m MODEL.gguf [--sources FILE]... [-p N] [-n N] [--draft N]\n"
            "                             [--ngram-min N] [--ngram-max N] [-t THREADS] [-r REPS] [--json]\n"
            "  -m, --model FILE     Phi-3 GGUF model (full size for meaningful figures)\n"
            "      --sources FILE   text/markdown whose prose paragraphs become the numbered passages\n"
            "                       (repeatable; default README.md)\n"
            "  -p, --prompt N       prompt tokens: instructions + passages + question (default 1500)\n"
            "  -n, --answer N       answer tokens (default 200)\n"
            "      --draft N        most draft tokens per forward (default %d)\n"
            "      --ngram-min N    shortest n-gram matched (default %d)\n"
            "      --ngram-max N    longest n-gram matched (default %d)\n"
            "  -t, --threads N      threads (default: online CPUs)\n"
            "  -r, --reps N         repetitions; in each, plain and lookup alternate over 5 segments\n"
            "                       of the answer so that both see the same machine load (default 1)\n"
            "      --json           machine-readable output\n\n"
            "Method: a random-weight model does not quote its prompt, so the answer is fixed: a\n"
            "reference answer that quotes sentences of some passages, with connecting sentences of\n"
            "its own. Plain decoding runs one forward per answer token (teacher forcing). Lookup runs\n"
            "the algorithm of generation: the draft comes from the prompt + answer so far, one forward\n"
            "of [token, draft] with the logits of every row, and a draft token is accepted iff it is\n"
            "the next answer token (as if the model had predicted it). Every forward is the real\n"
            "computation at the model's size; only the acceptance decision comes from the reference.\n",
            PF_LOOKUP_DEFAULT_N_DRAFT, PF_LOOKUP_DEFAULT_NGRAM_MIN, PF_LOOKUP_DEFAULT_NGRAM_MAX);
}

static int parse_pos(const char *opt, const char *s, long long max, long long *out) {
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || v < 1 || v > max)
        return cli_failf("bench-lookup", "%s wants an integer in [1, %lld], got '%s'", opt, max, s);
    *out = v;
    return 0;
}

static void print_json(FILE *f, const char *path, const pf_bench_lookup_result *r) {
    fprintf(f, "{\"model\":");
    cli_json_str(f, path);
    fprintf(f,
            ",\"threads\":%d,\"reps\":%d,\"n_draft\":%d,\"ngram_min\":%d,\"ngram_max\":%d,\"n_prompt\":%lld,"
            "\"n_answer\":%lld,\"n_quoted\":%lld,\"prompt_s\":%.3f,\n \"plain_tps_best\":%.4f,\"plain_tps_median\":%.4f,"
            "\"lookup_tps_best\":%.4f,\"lookup_tps_median\":%.4f,\"speedup_median\":%.3f,\n"
            " \"forwards\":%lld,\"drafted\":%lld,\"accepted\":%lld,\"batch_ms\":{",
            r->n_threads, r->reps, r->n_draft, r->ngram_min, r->ngram_max, (long long)r->n_prompt,
            (long long)r->n_answer, (long long)r->n_quoted, r->prompt_s, r->plain_tps_best, r->plain_tps_median,
            r->lookup_tps_best, r->lookup_tps_median, r->lookup_tps_median / r->plain_tps_median,
            (long long)r->n_forward, (long long)r->n_drafted, (long long)r->n_accepted);
    for (int i = 0; i < r->n_batch_points; i++) fprintf(f, "%s\"%d\":%.2f", i ? "," : "", r->batch_n[i], r->batch_ms[i]);
    fprintf(f, "}}\n");
}

static void print_table(FILE *f, const char *path, const pf_bench_lookup_result *r) {
    fprintf(f, "phiforge bench-lookup: %s, %d thread%s, draft <= %d, n-grams %d..%d, %d rep%s\n", path, r->n_threads,
            r->n_threads == 1 ? "" : "s", r->n_draft, r->ngram_min, r->ngram_max, r->reps, r->reps == 1 ? "" : "s");
    fprintf(f, "workload: prompt %lld tokens (decoded in %.1f s), answer %lld tokens, ~%lld of them quoted (%.0f%%)\n\n",
            (long long)r->n_prompt, r->prompt_s, (long long)r->n_answer, (long long)r->n_quoted,
            100.0 * (double)r->n_quoted / (double)r->n_answer);
    fprintf(f, "forward cost after the prompt (best of 2):\n");
    for (int i = 0; i < r->n_batch_points; i++)
        fprintf(f, "  %2d token%s %8.1f ms  (%.2fx one token)\n", r->batch_n[i], r->batch_n[i] == 1 ? " " : "s",
                r->batch_ms[i], r->batch_ms[i] / r->batch_ms[0]);
    fprintf(f, "\n%-8s %14s %14s\n", "decoding", "tokens/s best", "tokens/s median");
    fprintf(f, "%-8s %14.2f %14.2f\n", "plain", r->plain_tps_best, r->plain_tps_median);
    fprintf(f, "%-8s %14.2f %14.2f\n", "lookup", r->lookup_tps_best, r->lookup_tps_median);
    fprintf(f, "\nspeedup %.2fx (median), %.2fx (best); %lld forwards for %lld tokens, %lld of %lld drafted tokens "
               "accepted (%.0f%%)\n",
            r->lookup_tps_median / r->plain_tps_median, r->lookup_tps_best / r->plain_tps_best, (long long)r->n_forward,
            (long long)r->n_answer, (long long)r->n_accepted, (long long)r->n_drafted,
            r->n_drafted ? 100.0 * (double)r->n_accepted / (double)r->n_drafted : 0.0);
}

int cmd_bench_lookup(int argc, char **argv) {
    enum { OPT_JSON = 256, OPT_SOURCES, OPT_DRAFT, OPT_GMIN, OPT_GMAX };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},        {"sources", required_argument, 0, OPT_SOURCES},
        {"prompt", required_argument, 0, 'p'},       {"answer", required_argument, 0, 'n'},
        {"draft", required_argument, 0, OPT_DRAFT},  {"ngram-min", required_argument, 0, OPT_GMIN},
        {"ngram-max", required_argument, 0, OPT_GMAX}, {"threads", required_argument, 0, 't'},
        {"reps", required_argument, 0, 'r'},         {"json", no_argument, 0, OPT_JSON},
        {"help", no_argument, 0, 'h'},               {0, 0, 0, 0}};
    pf_bench_lookup_params p = pf_bench_lookup_default_params();
    const char *model = NULL, *sources[MAX_SOURCES];
    int n_sources = 0;
    bool json = false;
    long long v = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hm:p:n:t:r:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case OPT_SOURCES:
            if (n_sources == MAX_SOURCES) return cli_failf("bench-lookup", "at most %d --sources", MAX_SOURCES);
            sources[n_sources++] = optarg;
            break;
        case 'p': if (parse_pos("-p", optarg, 1 << 17, &v)) return 1; p.prompt_tokens = v; break;
        case 'n': if (parse_pos("-n", optarg, 4096, &v)) return 1; p.answer_tokens = v; break;
        case OPT_DRAFT: if (parse_pos("--draft", optarg, 64, &v)) return 1; p.n_draft = (int32_t)v; break;
        case OPT_GMIN: if (parse_pos("--ngram-min", optarg, 64, &v)) return 1; p.ngram_min = (int32_t)v; break;
        case OPT_GMAX: if (parse_pos("--ngram-max", optarg, 64, &v)) return 1; p.ngram_max = (int32_t)v; break;
        case 't': if (parse_pos("-t", optarg, 512, &v)) return 1; p.n_threads = (int)v; break;
        case 'r': if (parse_pos("-r", optarg, 100, &v)) return 1; p.reps = (int)v; break;
        case OPT_JSON: json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind != argc || model == NULL) {
        usage(stderr);
        return 1;
    }
    if (n_sources == 0) sources[n_sources++] = "README.md";
    p.sources = sources, p.n_sources = n_sources;
    pf_error err = {0};
    pf_bench_lookup_result r;
    if (pf_bench_lookup(model, &p, &r, &err)) return cli_fail("bench-lookup", &err);
    if (json) print_json(stdout, model, &r);
    else print_table(stdout, model, &r);
    return 0;
}
