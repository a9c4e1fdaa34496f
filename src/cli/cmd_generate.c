/* phiforge generate -m M.gguf -p PROMPT [-n N] [sampling options] [--stop STR]... [--chat [--system S]]
 * Streams the continuation of the prompt (raw text, or wrapped in the chat template) to stdout
 * and the speed to stderr. Also holds the option handling shared with `phiforge chat`. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "generate/gen_cli.h"

/* ---- shared with cmd_chat.c (see generate/gen_cli.h) ----------------------------------------- */

void gen_cli_init(gen_cli *g, const char *cmd) {
    memset(g, 0, sizeof *g);
    g->cmd = cmd;
    g->n_predict = -1;
    g->sp = pf_sampler_default_params();
}

void gen_cli_usage(FILE *f) {
    fprintf(f, "  -m, --model FILE          Phi-3 GGUF model\n"
               "  -n, --n-predict N         most tokens to generate per answer; -1 (default) or 0:\n"
               "                            until an end token, a stop string or a full context\n"
               "  -t, --threads N           threads (default: online CPUs)\n"
               "  -c, --ctx N               context size (default: min(context_length, 4096))\n"
               "      --system TEXT         system prompt (folded into the first user message when\n"
               "                            the file's template has no system role)\n"
               "      --temp T              temperature; <= 0 is greedy (default 0.8)\n"
               "      --seed S              sampler seed (default: from the clock; printed)\n"
               "      --top-k K             keep the K most likely tokens; 0 = off (default 40)\n"
               "      --top-p P             nucleus: smallest set with mass >= P; 1 = off (default 0.95)\n"
               "      --min-p P             drop tokens below P x the top probability; 0 = off (0.05)\n"
               "      --repeat-penalty R    divide positive / multiply negative logits of recent\n"
               "                            tokens by R; 1 = off (default 1)\n"
               "      --repeat-last-n N     window of recent tokens for the penalties (default 64)\n"
               "      --frequency-penalty F subtract F x count from a recent token's logit (default 0)\n"
               "      --presence-penalty P  subtract P from a recent token's logit (default 0)\n"
               "      --stop STR            stop when STR appears (not printed); repeatable\n"
               "      --lora FILE           LoRA adapter: llama.cpp GGUF or PEFT dir; repeatable, adapters add\n"
               "      --lora-scale S        scale of the preceding --lora (default 1.0)\n"
               "      --draft N             prompt-lookup speculative decoding: up to N tokens drafted\n"
               "                            from the prompt per forward; same output (default 0 = off)\n");
}

static int parse_f(const gen_cli *g, const char *name, const char *arg, float *out) {
    char *end;
    errno = 0;
    float v = strtof(arg, &end);
    if (end == arg || *end || errno || isnan(v)) return cli_failf(g->cmd, "bad %s '%s'", name, arg), -1;
    *out = v;
    return 1;
}

static int parse_i(const gen_cli *g, const char *name, const char *arg, long long lo, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (end == arg || *end || errno || v < lo || v > INT32_MAX)
        return cli_failf(g->cmd, "bad %s '%s' (an integer >= %lld)", name, arg, lo), -1;
    *out = v;
    return 1;
}

int gen_cli_option(gen_cli *g, int c, const char *arg) {
    long long v = 0;
    int r;
    switch (c) {
    case 'm': g->model = arg; return 1;
    case GEN_OPT_SYSTEM: g->system = arg; return 1;
    case GEN_OPT_DRAFT: r = parse_i(g, "--draft", arg, 0, &v), g->n_draft = (int32_t)(v > 256 ? 256 : v); return r;
    case 'n': r = parse_i(g, "-n", arg, -1, &v), g->n_predict = v; return r;
    case 't': r = parse_i(g, "-t", arg, 0, &v), g->threads = (int)v; return r;
    case 'c': r = parse_i(g, "-c", arg, 1, &v), g->n_ctx = v; return r;
    case GEN_OPT_TOP_K: r = parse_i(g, "--top-k", arg, 0, &v), g->sp.top_k = (int32_t)v; return r;
    case GEN_OPT_REPEAT_N: r = parse_i(g, "--repeat-last-n", arg, 0, &v), g->sp.repeat_last_n = (int32_t)v; return r;
    case GEN_OPT_TEMP: return parse_f(g, "--temp", arg, &g->sp.temperature);
    case GEN_OPT_TOP_P: return parse_f(g, "--top-p", arg, &g->sp.top_p);
    case GEN_OPT_MIN_P: return parse_f(g, "--min-p", arg, &g->sp.min_p);
    case GEN_OPT_REPEAT: return parse_f(g, "--repeat-penalty", arg, &g->sp.repeat_penalty);
    case GEN_OPT_FREQ: return parse_f(g, "--frequency-penalty", arg, &g->sp.frequency_penalty);
    case GEN_OPT_PRES: return parse_f(g, "--presence-penalty", arg, &g->sp.presence_penalty);
    case GEN_OPT_SEED: {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(arg, &end, 10);
        if (end == arg || *end || errno || arg[0] == '-') return cli_failf(g->cmd, "bad --seed '%s'", arg), -1;
        g->sp.seed = s, g->seed_set = true;
        return 1;
    }
    case GEN_OPT_STOP:
        if (!arg[0]) return cli_failf(g->cmd, "--stop needs a non-empty string"), -1;
        if (g->n_stop == GEN_CLI_MAX_STOP) return cli_failf(g->cmd, "at most %d --stop strings", GEN_CLI_MAX_STOP), -1;
        g->stop[g->n_stop++] = arg;
        return 1;
    case GEN_OPT_LORA:
        if (g->n_lora == GEN_CLI_MAX_LORA) return cli_failf(g->cmd, "at most %d --lora adapters", GEN_CLI_MAX_LORA), -1;
        g->lora_path[g->n_lora] = arg, g->lora_scale[g->n_lora++] = 1.0f;
        return 1;
    case GEN_OPT_LORA_SCALE:
        if (g->n_lora == 0) return cli_failf(g->cmd, "--lora-scale must follow a --lora"), -1;
        return parse_f(g, "--lora-scale", arg, &g->lora_scale[g->n_lora - 1]);
    }
    return 0;
}

int gen_cli_load(gen_cli *g) {
    pf_error err = {0};
    if (!g->seed_set) { /* a fresh seed per run, printed with the timings so a run can be repeated */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        g->sp.seed = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    }
    if (pf_model_load(g->model, &g->m, &err) != PF_OK) return cli_fail(g->cmd, &err);
    const pf_gguf *gguf = pf_model_gguf(g->m);
    if (pf_tokenizer_load(gguf, &g->tok, &err) != PF_OK) return cli_fail(g->cmd, &err);
    g->fmt = pf_chat_format_from_gguf(gguf);
    const pf_model_hparams *hp = pf_model_get_hparams(g->m);
    pf_context_params p = pf_context_default_params();
    p.n_threads = g->threads;
    p.n_ctx = g->n_ctx ? g->n_ctx : (hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096);
    if (pf_context_create(g->m, &p, &g->ctx, &err) != PF_OK) return cli_fail(g->cmd, &err);
    for (int i = 0; i < g->n_lora; i++)
        if (pf_lora_load(g->lora_path[i], g->m, &g->lora[i], &err) != PF_OK) return cli_fail(g->cmd, &err);
    if (g->n_lora > 0 && pf_context_set_lora(g->ctx, g->lora, g->lora_scale, g->n_lora, &err) != PF_OK)
        return cli_fail(g->cmd, &err);
    if (pf_sampler_create(&g->sp, (int32_t)hp->n_vocab, &g->smp, &err) != PF_OK) return cli_fail(g->cmd, &err);
    return 0;
}

void gen_cli_free(gen_cli *g) {
    pf_sampler_free(g->smp);
    pf_context_free(g->ctx);
    for (int i = 0; i < g->n_lora; i++) pf_lora_free(g->lora[i]);
    pf_tokenizer_free(g->tok);
    pf_model_free(g->m);
}

int gen_cli_print(void *user, const char *text, size_t len) {
    (void)user;
    if (fwrite(text, 1, len, stdout) != len) return 1;
    return fflush(stdout) != 0; /* a closed pipe stops generation */
}

void gen_cli_timings(const gen_cli *g, const pf_gen_result *r) {
    fprintf(stderr, "prompt: %lld tokens in %.1f ms (%.1f tok/s)\n", (long long)r->n_prompt, r->prompt_ms,
            r->prompt_ms > 0 ? 1e3 * (double)r->n_prompt / r->prompt_ms : 0.0);
    fprintf(stderr, "generation: %lld tokens in %.1f ms (%.1f tok/s), stop: %s, seed %llu\n", (long long)r->n_gen,
            r->gen_ms, r->gen_ms > 0 ? 1e3 * (double)r->n_gen / r->gen_ms : 0.0, pf_stop_reason_str(r->stop),
            (unsigned long long)g->sp.seed);
    if (r->n_drafted > 0)
        fprintf(stderr, "lookup: %lld forwards, %lld of %lld drafted tokens accepted\n", (long long)r->n_forward,
                (long long)r->n_accepted, (long long)r->n_drafted);
}

/* ---- phiforge generate ------------------------------------------------------------------------ */

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge generate -m MODEL.gguf -p PROMPT [options]\n"
               "  Streams the continuation of PROMPT to stdout; speed on stderr. Special-token texts\n"
               "  such as <|user|> in PROMPT become their ids; BOS is added as the file says.\n"
               "  -p, --prompt TEXT         the prompt\n"
               "      --chat                wrap PROMPT as a user message in the chat template\n"
               "      --print-ids           print the generated token ids instead of the text\n"
               "      --verbose-prompt      print the prompt's token ids on stderr\n");
    gen_cli_usage(f);
}

typedef struct gen_opts {
    const char *prompt;
    bool chat, print_ids, verbose_prompt;
} gen_opts;

/* The prompt's tokens (malloc'd) after the chat template when asked for. */
static int64_t prompt_ids(const gen_cli *g, const gen_opts *o, int32_t **ids, pf_error *err) {
    char *text = NULL;
    const char *src = o->prompt;
    int64_t len = (int64_t)strlen(src);
    if (o->chat) {
        pf_chat_msg msgs[2] = {{PF_CHAT_SYSTEM, g->system ? g->system : ""}, {PF_CHAT_USER, o->prompt}};
        len = pf_chat_render(&g->fmt, msgs, 2, true, NULL, 0, err);
        if (len < 0 || !(text = malloc((size_t)len + 1))) return len < 0 ? len : PF_ERR_NOMEM;
        pf_chat_render(&g->fmt, msgs, 2, true, text, len + 1, err);
        src = text;
    }
    int64_t n = pf_tokenize(g->tok, src, (size_t)len, true, true, NULL, 0, err);
    if (n >= 0 && !(*ids = malloc(((size_t)n + 1) * sizeof **ids))) n = PF_ERR_NOMEM;
    if (n >= 0) n = pf_tokenize(g->tok, src, (size_t)len, true, true, *ids, n, err);
    free(text);
    return n;
}

static int run(gen_cli *g, const gen_opts *o) {
    pf_error err = {0};
    int32_t *ids = NULL, *out = NULL;
    int rc = 1;
    int64_t n = prompt_ids(g, o, &ids, &err);
    if (n < 0) {
        if (!err.msg[0]) pf_error_set(&err, (int)n, "%s", pf_status_str((int)n));
        cli_fail(g->cmd, &err);
        goto done;
    }
    if (n == 0) {
        cli_failf(g->cmd, "the prompt has no tokens");
        goto done;
    }
    if (o->verbose_prompt) {
        fprintf(stderr, "prompt ids (%lld):", (long long)n);
        for (int64_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fputc('\n', stderr);
    }
    pf_gen_params gp = pf_gen_default_params();
    gp.max_tokens = g->n_predict;
    gp.stop = g->stop, gp.n_stop = g->n_stop;
    gp.n_draft = g->n_draft;
    gp.on_text = o->print_ids ? NULL : gen_cli_print;
    gp.out_cap = pf_context_n_ctx(g->ctx);
    if (o->print_ids && !(gp.out_ids = out = malloc((size_t)gp.out_cap * sizeof *out))) {
        cli_failf(g->cmd, "out of memory");
        goto done;
    }
    pf_gen_result r;
    if (pf_generate(g->ctx, g->tok, g->smp, ids, n, &gp, &r, &err) != PF_OK) {
        cli_fail(g->cmd, &err);
        goto done;
    }
    for (int64_t i = 0; o->print_ids && i < r.n_gen && i < gp.out_cap; i++) printf(i ? " %d" : "%d", out[i]);
    if (o->print_ids || isatty(STDOUT_FILENO)) putchar('\n');
    fflush(stdout);
    gen_cli_timings(g, &r);
    rc = 0;
done:
    free(ids);
    free(out);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    enum { OPT_CHAT = 400, OPT_PRINT_IDS, OPT_VERBOSE_PROMPT };
    static const struct option opts[] = {GEN_CLI_LONG,
                                         {"prompt", required_argument, 0, 'p'},
                                         {"chat", no_argument, 0, OPT_CHAT},
                                         {"print-ids", no_argument, 0, OPT_PRINT_IDS},
                                         {"verbose-prompt", no_argument, 0, OPT_VERBOSE_PROMPT},
                                         {0, 0, 0, 0}};
    gen_cli g;
    gen_cli_init(&g, "generate");
    gen_opts o = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, GEN_CLI_SHORT "p:", opts, NULL)) != -1) {
        int r = gen_cli_option(&g, c, optarg);
        if (r < 0) return 1;
        if (r > 0) continue;
        switch (c) {
        case 'p': o.prompt = optarg; break;
        case OPT_CHAT: o.chat = true; break;
        case OPT_PRINT_IDS: o.print_ids = true; break;
        case OPT_VERBOSE_PROMPT: o.verbose_prompt = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind != argc || !g.model || !o.prompt) {
        usage(stderr);
        return 1;
    }
    if (g.system && !o.chat) return cli_failf("generate", "--system needs --chat");
    int rc = gen_cli_load(&g);
    if (rc == 0) rc = run(&g, &o);
    gen_cli_free(&g);
    return rc;
}
