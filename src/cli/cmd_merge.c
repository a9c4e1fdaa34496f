/* phiforge merge BASE.gguf ADAPTER OUT.gguf [--scale S] [--lora MORE [--lora-scale S]]... [--type TYPE]
 *
 * Bakes LoRA adapters (llama.cpp GGUF files or PEFT directories) into the base weights:
 * W' = W + scale · s · B·A, streamed tensor by tensor (pf_lora_merge). Adapted weights keep the
 * base tensor's type unless --type converts every 2-D weight (as `phiforge quantize`). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MERGE_MAX_LORA 16

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge merge [options] BASE.gguf ADAPTER OUT.gguf\n"
               "  ADAPTER: a LoRA GGUF (llama.cpp) or a PEFT directory (adapter_model.safetensors +\n"
               "           adapter_config.json)\n"
               "      --scale S        scale of ADAPTER (default 1.0)\n"
               "      --lora PATH      one more adapter to merge; repeatable\n"
               "      --lora-scale S   scale of the preceding --lora (default 1.0)\n"
               "      --type TYPE      convert every 2-D weight: F32 F16 BF16 Q8_0 Q4_0 ... Q4_K_M Q5_K_M\n"
               "                       (default: each weight keeps the base's type)\n"
               "  -t, --threads N      threads (default: all cores)\n"
               "      --json           print the result as JSON\n"
               "  -h, --help           this help\n");
}

static void progress(void *user, double done, double total, const char *item) {
    cli_progress *p = user;
    p->total = total > 0 ? total : 1; /* known once the merge has planned its tensors */
    cli_progress_update(p, done, item);
}

static int parse_scale(const char *s, float *out) {
    char *end = NULL;
    errno = 0;
    const double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v)) return cli_failf("merge", "bad scale '%s'", s);
    *out = (float)v;
    return 0;
}

enum { OPT_SCALE = 400, OPT_LORA, OPT_LORA_SCALE, OPT_TYPE, OPT_JSON };

int cmd_merge(int argc, char **argv) {
    static const struct option opts[] = {
        {"scale", required_argument, 0, OPT_SCALE}, {"lora", required_argument, 0, OPT_LORA},
        {"lora-scale", required_argument, 0, OPT_LORA_SCALE}, {"type", required_argument, 0, OPT_TYPE},
        {"threads", required_argument, 0, 't'}, {"json", no_argument, 0, OPT_JSON}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *paths[MERGE_MAX_LORA + 1];
    float scales[MERGE_MAX_LORA + 1];
    int n_extra = 0, c;
    float first_scale = 1.0f;
    bool json = false;
    pf_merge_params mp = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "ht:", opts, NULL)) != -1) {
        switch (c) {
        case OPT_SCALE: if (parse_scale(optarg, &first_scale)) return 1; break;
        case OPT_LORA:
            if (n_extra == MERGE_MAX_LORA) return cli_failf("merge", "at most %d --lora adapters", MERGE_MAX_LORA);
            paths[1 + n_extra] = optarg, scales[1 + n_extra++] = 1.0f;
            break;
        case OPT_LORA_SCALE:
            if (n_extra == 0) return cli_failf("merge", "--lora-scale must follow a --lora");
            if (parse_scale(optarg, &scales[n_extra])) return 1;
            break;
        case OPT_TYPE: mp.type = optarg; break;
        case OPT_JSON: json = true; break;
        case 't': mp.n_threads = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (argc - optind != 3) {
        usage(stderr);
        return 1;
    }
    const char *base = argv[optind], *out = argv[optind + 2];
    paths[0] = argv[optind + 1], scales[0] = first_scale;
    cli_progress prog;
    cli_progress_start(&prog, "merge", 1);
    mp.progress = progress, mp.user = &prog;
    pf_merge_stats st;
    pf_error err = {0};
    int rc = pf_lora_merge(base, paths, scales, 1 + n_extra, out, &mp, &st, &err);
    cli_progress_finish(&prog);
    if (rc != PF_OK) return cli_fail("merge", &err);
    char b1[32], b2[32];
    if (json) {
        printf("{\"base\":");
        cli_json_str(stdout, base);
        printf(",\"out\":");
        cli_json_str(stdout, out);
        printf(",\"adapters\":%d,\"tensors\":%lld,\"merged\":%lld,\"in_bytes\":%.0f,\"out_bytes\":%.0f,\"seconds\":%.3f}\n",
               1 + n_extra, (long long)st.n_tensors, (long long)st.n_merged, st.in_bytes, st.out_bytes, st.seconds);
    } else {
        printf("merge: %s (%s) + %d adapter%s -> %s (%s): %lld of %lld tensors merged in %.2f s\n", base,
               cli_human_bytes(st.in_bytes, b1, sizeof b1), 1 + n_extra, n_extra ? "s" : "", out,
               cli_human_bytes(st.out_bytes, b2, sizeof b2), (long long)st.n_merged, (long long)st.n_tensors, st.seconds);
    }
    return 0;
}
