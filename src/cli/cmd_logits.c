/* phiforge logits -m M.gguf --ids "1 2 3" -o OUT.f32 [-t N] [-c N] [--kv-type f16|f32]
 *                 [--lora A.gguf [--lora-scale S]]...
 * One batched forward pass from position 0; writes n_ids × n_vocab float32 little-endian. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define CLI_MAX_LORA 16

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge logits -m MODEL.gguf --ids \"1 2 3\" -o OUT.f32 [options]\n"
               "  Runs the token ids through the model in one batch from position 0 and writes the\n"
               "  logits of every position: n_ids x n_vocab float32, little-endian, row per position.\n"
               "  -m, --model FILE     Phi-3 GGUF model\n"
               "      --ids LIST       token ids separated by spaces or commas, or @FILE to read them\n"
               "  -o, --output FILE    output file\n"
               "  -t, --threads N      threads (default: online CPUs)\n"
               "  -c, --ctx N          context size (default: min(context_length, 4096), at least\n"
               "                       n_ids); LongRoPE models use the long factors when it exceeds\n"
               "                       original_context_length\n"
               "      --kv-type T      KV cache type: f16 (default) or f32\n"
               "      --lora FILE      LoRA adapter: llama.cpp GGUF or PEFT dir; repeatable, adapters add\n"
               "      --lora-scale S   scale of the preceding --lora (default 1.0)\n");
}

/* Parses integers separated by whitespace or commas into a growing array. */
static int parse_ids(const char *s, int32_t **ids, int64_t *n) {
    int64_t cap = 64;
    *n = 0;
    *ids = malloc((size_t)cap * sizeof **ids);
    if (*ids == NULL) return cli_failf("logits", "out of memory");
    while (*s) {
        if (*s == ' ' || *s == ',' || *s == '\t' || *s == '\n' || *s == '\r') {
            s++;
            continue;
        }
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX) return cli_failf("logits", "bad token id near '%.20s'", s);
        if (*n == cap) {
            int32_t *p = realloc(*ids, (size_t)(cap *= 2) * sizeof **ids);
            if (p == NULL) return cli_failf("logits", "out of memory");
            *ids = p;
        }
        (*ids)[(*n)++] = (int32_t)v;
        s = end;
    }
    if (*n == 0) return cli_failf("logits", "--ids holds no token ids");
    return 0;
}

/* --ids value: the list itself, or @FILE. Returns a malloc'd string. */
static char *ids_text(const char *arg) {
    if (arg[0] != '@') return strdup(arg);
    FILE *f = fopen(arg + 1, "rb");
    if (f == NULL) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0, k;
    char tmp[4096];
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (n + k + 1 > cap) {
            char *p = realloc(buf, cap = (n + k + 1) * 2);
            if (p == NULL) break;
            buf = p;
        }
        memcpy(buf + n, tmp, k);
        n += k;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    return buf ? buf : strdup("");
}

/* Writes n floats little-endian. */
static int write_f32le(const char *path, const float *x, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f == NULL) return cli_failf("logits", "cannot open %s: %s", path, strerror(errno));
    unsigned char buf[4096];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        for (int b = 0; b < 4; b++) buf[k++] = (unsigned char)(u >> (8 * b));
        if (k == sizeof buf || i + 1 == n) {
            if (fwrite(buf, 1, k, f) != k) break;
            k = 0;
        }
    }
    if (fclose(f) != 0 || k != 0) return cli_failf("logits", "write to %s failed", path);
    return 0;
}

typedef struct logits_opts {
    const char *model, *ids, *out;
    int threads;
    int64_t n_ctx;
    pf_type kv_type;
    const char *lora[CLI_MAX_LORA];
    float lora_scale[CLI_MAX_LORA];
    int n_lora;
} logits_opts;

static int run(const logits_opts *o, const int32_t *ids, int64_t n) {
    pf_error err = {0};
    pf_model *m = NULL;
    pf_context *ctx = NULL;
    pf_lora *lora[CLI_MAX_LORA] = {0};
    float *logits = NULL;
    int rc = 1;
    if (pf_model_load(o->model, &m, &err) != PF_OK) return cli_fail("logits", &err);
    for (int i = 0; i < o->n_lora; i++)
        if (pf_lora_load(o->lora[i], m, &lora[i], &err) != PF_OK) {
            cli_fail("logits", &err);
            goto done;
        }
    const pf_model_hparams *hp = pf_model_get_hparams(m);
    pf_context_params p = pf_context_default_params();
    p.n_threads = o->threads;
    p.kv_type = o->kv_type;
    p.n_ctx = o->n_ctx ? o->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    if (!o->n_ctx && n > p.n_ctx) p.n_ctx = n;
    if (n > hp->n_ctx_train) {
        cli_failf("logits", "%lld ids exceed the model's context length %lld", (long long)n, (long long)hp->n_ctx_train);
        goto done;
    }
    if (pf_context_create(m, &p, &ctx, &err) != PF_OK ||
        (o->n_lora > 0 && pf_context_set_lora(ctx, lora, o->lora_scale, o->n_lora, &err) != PF_OK)) {
        cli_fail("logits", &err);
        goto done;
    }
    logits = malloc((size_t)n * (size_t)hp->n_vocab * sizeof *logits);
    if (logits == NULL) {
        cli_failf("logits", "out of memory for %lld x %lld logits", (long long)n, (long long)hp->n_vocab);
        goto done;
    }
    if (pf_decode(ctx, ids, n, 0, logits, PF_LOGITS_ALL, &err) != PF_OK) {
        cli_fail("logits", &err);
        goto done;
    }
    rc = write_f32le(o->out, logits, (size_t)n * (size_t)hp->n_vocab);
    if (rc == 0)
        fprintf(stderr, "logits: %lld positions x %lld -> %s (n_ctx %lld%s)\n", (long long)n, (long long)hp->n_vocab,
                o->out, (long long)pf_context_n_ctx(ctx), pf_context_long_rope(ctx) ? ", long RoPE factors" : "");
done:
    free(logits);
    pf_context_free(ctx);
    for (int i = 0; i < o->n_lora; i++) pf_lora_free(lora[i]);
    pf_model_free(m);
    return rc;
}

int cmd_logits(int argc, char **argv) {
    enum { OPT_IDS = 256, OPT_LORA, OPT_LORA_SCALE, OPT_KV };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"ids", required_argument, 0, OPT_IDS},
        {"output", required_argument, 0, 'o'},  {"threads", required_argument, 0, 't'},
        {"ctx", required_argument, 0, 'c'},     {"kv-type", required_argument, 0, OPT_KV},
        {"lora", required_argument, 0, OPT_LORA}, {"lora-scale", required_argument, 0, OPT_LORA_SCALE},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    logits_opts o = {.kv_type = PF_TYPE_F16};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hm:o:t:c:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'o': o.out = optarg; break;
        case OPT_IDS: o.ids = optarg; break;
        case 't': o.threads = atoi(optarg); break;
        case 'c': {
            char *end;
            long long v = strtoll(optarg, &end, 10);
            if (*end || v < 1) return cli_failf("logits", "bad context size '%s'", optarg);
            o.n_ctx = v;
            break;
        }
        case OPT_KV:
            if (!strcmp(optarg, "f16") || !strcmp(optarg, "F16")) o.kv_type = PF_TYPE_F16;
            else if (!strcmp(optarg, "f32") || !strcmp(optarg, "F32")) o.kv_type = PF_TYPE_F32;
            else return cli_failf("logits", "bad --kv-type '%s' (f16 or f32)", optarg);
            break;
        case OPT_LORA:
            if (o.n_lora == CLI_MAX_LORA) return cli_failf("logits", "at most %d --lora adapters", CLI_MAX_LORA);
            o.lora[o.n_lora] = optarg, o.lora_scale[o.n_lora++] = 1.0f;
            break;
        case OPT_LORA_SCALE: {
            char *end;
            errno = 0;
            float v = strtof(optarg, &end);
            if (end == optarg || *end || errno || v != v) return cli_failf("logits", "bad --lora-scale '%s'", optarg);
            if (o.n_lora == 0) return cli_failf("logits", "--lora-scale must follow a --lora");
            o.lora_scale[o.n_lora - 1] = v;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind != argc || !o.model || !o.ids || !o.out) {
        usage(stderr);
        return 1;
    }
    char *text = ids_text(o.ids);
    if (text == NULL) return cli_failf("logits", "cannot read ids from %s", o.ids + 1);
    int32_t *ids = NULL;
    int64_t n = 0;
    int rc = parse_ids(text, &ids, &n);
    free(text);
    if (rc == 0) rc = run(&o, ids, n);
    free(ids);
    return rc;
}
