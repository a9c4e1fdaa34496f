/* phiforge bench -m MODEL.gguf [-p 64] [-n 16] [-t THREADS] [-r REPS] [--json]
 *
 * Prompt-processing and generation speed of a model, generation against the memory-bandwidth
 * bound measured in the same run, and peak memory against file + KV cache (see pf_bench_model). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge bench -m MODEL.gguf [-p N] [-n N] [-t THREADS] [-r REPS] [--json]\n"
               "  -m, --model FILE    Phi-3 GGUF model\n"
               "  -p, --prompt N      pp: tokens of one prompt batch (default 64)\n"
               "  -n, --gen N         tg: tokens generated one by one after the prompt (default 16)\n"
               "  -t, --threads N     threads (default: online CPUs)\n"
               "  -r, --reps N        timed repetitions after a warm-up run (default 3)\n"
               "      --lora PATH     LoRA adapter (llama.cpp GGUF or PEFT directory) attached while\n"
               "                      timing; repeatable, adapters add\n"
               "      --lora-scale S  scale of the preceding --lora (default 1.0)\n"
               "      --json          machine-readable output\n");
}

static void print_json(FILE *f, const char *path, const pf_bench_model_result *r) {
    fprintf(f, "{\"model\":");
    cli_json_str(f, path);
    fprintf(f, ",\"file_type\":");
    cli_json_str(f, pf_file_type_name(r->file_type));
    fprintf(f,
            ",\"n_params\":%.0f,\"file_bytes\":%.0f,\"threads\":%d,\"reps\":%d,\"n_prompt\":%lld,\"n_gen\":%lld,"
            "\"n_ctx\":%lld,\n \"pp_tps\":%.4f,\"pp_tps_sd\":%.4f,\"pp_tps_best\":%.4f,"
            "\"tg_tps\":%.4f,\"tg_tps_sd\":%.4f,\"tg_tps_best\":%.4f,\n"
            " \"bandwidth_gbs\":%.3f,\"weight_bytes_per_token\":%.0f,\"kv_bytes_per_token\":%.0f,"
            "\"tg_bound_tps\":%.4f,\"tg_pct_of_bound\":%.2f,\n"
            " \"kv_cache_bytes\":%.0f,\"peak_rss_bytes\":%.0f,\"rss_over_file_kv_bytes\":%.0f}\n",
            r->n_params, r->file_bytes, r->n_threads, r->reps, (long long)r->n_prompt, (long long)r->n_gen,
            (long long)r->n_ctx, r->pp_tps, r->pp_tps_sd, r->pp_tps_best, r->tg_tps, r->tg_tps_sd, r->tg_tps_best,
            r->bw_gbs, r->weight_bytes_per_token, r->kv_bytes_per_token, r->tg_bound_tps,
            100.0 * r->tg_frac_of_bound, r->kv_cache_bytes, r->peak_rss_bytes,
            r->peak_rss_bytes - r->file_bytes - r->kv_cache_bytes);
}

static void print_table(FILE *f, const char *path, const pf_bench_model_result *r) {
    char b[6][32];
    fprintf(f, "phiforge bench: %s (%s, %s params, %s), %d thread%s, n_ctx %lld, %d reps after a warm-up\n\n", path,
            pf_file_type_name(r->file_type), cli_human_count(r->n_params, b[0], sizeof b[0]),
            cli_human_bytes(r->file_bytes, b[1], sizeof b[1]), r->n_threads, r->n_threads == 1 ? "" : "s",
            (long long)r->n_ctx, r->reps);
    fprintf(f, "%-8s %18s %12s %11s\n", "test", "tokens/s", "bound t/s", "% of bound");
    fprintf(f, "pp%-6lld %10.2f ± %5.2f %12s %11s\n", (long long)r->n_prompt, r->pp_tps, r->pp_tps_sd, "", "");
    fprintf(f, "tg%-6lld %10.2f ± %5.2f %12.2f %10.1f%%\n\n", (long long)r->n_gen, r->tg_tps, r->tg_tps_sd,
            r->tg_bound_tps, 100.0 * r->tg_frac_of_bound);
    fprintf(f, "bound: %s per token (weights %s + KV cache %s) at %.2f GB/s: streaming read over the\n"
               "       weights right before/after each tg run; %% of bound = mean over runs of tg / its own bound\n",
            cli_human_bytes(r->weight_bytes_per_token + r->kv_bytes_per_token, b[2], sizeof b[2]),
            cli_human_bytes(r->weight_bytes_per_token, b[3], sizeof b[3]),
            cli_human_bytes(r->kv_bytes_per_token, b[4], sizeof b[4]), r->bw_gbs);
    fprintf(f, "memory: peak RSS %s = file %s + KV cache %s %+.1f MB\n",
            cli_human_bytes(r->peak_rss_bytes, b[2], sizeof b[2]), cli_human_bytes(r->file_bytes, b[3], sizeof b[3]),
            cli_human_bytes(r->kv_cache_bytes, b[4], sizeof b[4]),
            (r->peak_rss_bytes - r->file_bytes - r->kv_cache_bytes) / 1e6);
}

static int parse_pos(const char *opt, const char *s, long long max, long long *out) {
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || v < 1 || v > max) return cli_failf("bench", "%s wants an integer in [1, %lld], got '%s'", opt, max, s);
    *out = v;
    return 0;
}

int cmd_bench(int argc, char **argv) {
    enum { OPT_JSON = 256, OPT_LORA, OPT_LORA_SCALE };
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},   {"prompt", required_argument, 0, 'p'},
                                         {"gen", required_argument, 0, 'n'},     {"threads", required_argument, 0, 't'},
                                         {"reps", required_argument, 0, 'r'},    {"json", no_argument, 0, OPT_JSON},
                                         {"lora", required_argument, 0, OPT_LORA},
                                         {"lora-scale", required_argument, 0, OPT_LORA_SCALE},
                                         {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *lora[16];
    float lora_scale[16];
    int n_lora = 0;
    pf_bench_model_params p = pf_bench_model_default_params();
    const char *model = NULL;
    bool json = false;
    long long v = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hm:p:n:t:r:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': if (parse_pos("-p", optarg, 1 << 20, &v)) return 1; p.n_prompt = v; break;
        case 'n': if (parse_pos("-n", optarg, 1 << 20, &v)) return 1; p.n_gen = v; break;
        case 't': if (parse_pos("-t", optarg, 512, &v)) return 1; p.n_threads = (int)v; break;
        case 'r': if (parse_pos("-r", optarg, 100, &v)) return 1; p.reps = (int)v; break;
        case OPT_JSON: json = true; break;
        case OPT_LORA:
            if (n_lora == 16) return cli_failf("bench", "at most 16 --lora adapters");
            lora[n_lora] = optarg, lora_scale[n_lora++] = 1.0f;
            break;
        case OPT_LORA_SCALE: {
            char *end = NULL;
            const float s = strtof(optarg, &end);
            if (end == optarg || *end || s != s) return cli_failf("bench", "bad --lora-scale '%s'", optarg);
            if (n_lora == 0) return cli_failf("bench", "--lora-scale must follow a --lora");
            lora_scale[n_lora - 1] = s;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind != argc || model == NULL) { usage(stderr); return 1; }
    p.lora = lora, p.lora_scale = lora_scale, p.n_lora = n_lora;
    pf_error err = {0};
    pf_bench_model_result r;
    if (pf_bench_model(model, &p, &r, &err)) return cli_fail("bench", &err);
    if (json) print_json(stdout, model, &r);
    else print_table(stdout, model, &r);
    return 0;
}
