/* phiforge data -m MODEL FILE [options] — load a fine-tuning dataset as the trainer will see it
 * and report samples, rows, tokens, loss positions, packing fill, truncations and the split;
 * --show N prints the first rows with the tokens that carry loss between ⟦ and ⟧. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge data -m MODEL.gguf FILE [options]\n"
               "  FILE: JSONL (chat {\"messages\"}, alpaca {\"instruction\",\"input\",\"output\"},\n"
               "        {\"prompt\",\"completion\"}, {\"text\"}) or a .txt file\n"
               "  -m, --model FILE        GGUF whose tokenizer and chat template are used\n"
               "      --format F          auto (default), chat, alpaca, completion, text\n"
               "      --seq-len N         tokens per training row (default 512)\n"
               "      --no-pack           one sample per row (default: pack short samples)\n"
               "      --train-on-prompt   loss on every token, not only the answers\n"
               "      --system TEXT       system prompt for chat samples without one\n"
               "      --val F             fraction of samples held out for validation (default 0)\n"
               "      --seed N            shuffling seed (default 42)\n"
               "  -t, --threads N         tokenizing threads (default: all cores; same result)\n"
               "      --show N            print the first N training rows, loss tokens in ⟦ ⟧\n"
               "      --json              print the statistics as JSON\n"
               "  -h, --help              this help\n");
}

static void print_stats(FILE *o, const char *name, const pf_dataset *d, bool json) {
    const double pos = (double)pf_dataset_n_tokens(d), cap = (double)pf_dataset_n_rows(d) * (double)pf_dataset_seq_len(d);
    if (json) {
        fprintf(o, "\"%s\":{\"samples\":%lld,\"rows\":%lld,\"positions\":%lld,\"targets\":%lld,\"fill\":%.4f,"
                   "\"truncated\":%lld,\"dropped\":%lld}", name, (long long)pf_dataset_n_samples(d),
                (long long)pf_dataset_n_rows(d), (long long)pf_dataset_n_tokens(d), (long long)pf_dataset_n_target_tokens(d),
                cap > 0 ? pos / cap : 0.0, (long long)pf_dataset_n_truncated(d), (long long)pf_dataset_n_dropped(d));
        return;
    }
    fprintf(o, "%-6s %7lld samples -> %6lld rows of %lld: %9lld positions (%.1f%% of the rows), %9lld with loss (%.1f%%)",
            name, (long long)pf_dataset_n_samples(d), (long long)pf_dataset_n_rows(d), (long long)pf_dataset_seq_len(d),
            (long long)pf_dataset_n_tokens(d), cap > 0 ? 100 * pos / cap : 0.0, (long long)pf_dataset_n_target_tokens(d),
            pos > 0 ? 100.0 * (double)pf_dataset_n_target_tokens(d) / pos : 0.0);
    if (pf_dataset_n_truncated(d) || pf_dataset_n_dropped(d))
        fprintf(o, "; %lld truncated, %lld dropped", (long long)pf_dataset_n_truncated(d), (long long)pf_dataset_n_dropped(d));
    fputc('\n', o);
}

static void put_piece(const pf_tokenizer *tok, int32_t id) {
    char buf[256];
    const int64_t n = pf_token_to_piece(tok, id, true, buf, sizeof buf);
    if (n > 0 && n <= (int64_t)sizeof buf) fwrite(buf, 1, (size_t)n, stdout);
}

/* Row i as text: each sample on its own, the tokens that are predicted with loss in ⟦ ⟧. */
static void show_row(const pf_tokenizer *tok, const pf_dataset *d, int64_t i) {
    pf_train_row r;
    if (pf_dataset_row(d, i, &r, NULL) != PF_OK) return;
    printf("--- row %lld: %lld positions\n", (long long)i, (long long)r.n);
    bool open = false;
    for (int64_t j = 0; j < r.n; j++) {
        if (j == 0 || r.seg[j] != r.seg[j - 1]) {
            if (open) fputs("⟧", stdout), open = false;
            printf("%s[sample %d] ", j ? "\n" : "", r.seg[j]);
            put_piece(tok, r.ids[j]); /* a sample's first token is never a target */
        } else {
            const bool tgt = r.targets[j - 1] >= 0;
            if (tgt != open) fputs(tgt ? "⟦" : "⟧", stdout), open = tgt;
            put_piece(tok, r.ids[j]);
        }
        const bool last = j + 1 == r.n || r.seg[j + 1] != r.seg[j];
        if (last && r.targets[j] >= 0) { /* the final target has no input position of its own */
            if (!open) fputs("⟦", stdout), open = true;
            put_piece(tok, r.targets[j]);
        }
    }
    if (open) fputs("⟧", stdout);
    putchar('\n');
}

enum { OPT_FORMAT = 400, OPT_SEQ, OPT_NOPACK, OPT_PROMPT, OPT_SYSTEM, OPT_VAL, OPT_SEED, OPT_SHOW, OPT_JSON };

int cmd_data(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"format", required_argument, 0, OPT_FORMAT},
        {"seq-len", required_argument, 0, OPT_SEQ}, {"no-pack", no_argument, 0, OPT_NOPACK},
        {"train-on-prompt", no_argument, 0, OPT_PROMPT}, {"system", required_argument, 0, OPT_SYSTEM},
        {"val", required_argument, 0, OPT_VAL}, {"seed", required_argument, 0, OPT_SEED},
        {"show", required_argument, 0, OPT_SHOW}, {"json", no_argument, 0, OPT_JSON}, {"help", no_argument, 0, 'h'},
        {"threads", required_argument, 0, 't'},
        {0, 0, 0, 0}};
    pf_data_params p = pf_data_default_params();
    const char *model = NULL;
    long long show = 0;
    bool json = false;
    int c;
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hm:t:", opts, NULL)) != -1) {
        errno = 0, end = NULL;
        switch (c) {
        case 'm': model = optarg; break;
        case 't':
            p.n_threads = (int)strtol(optarg, &end, 10);
            if (end == optarg || *end || errno || p.n_threads < 1) return cli_failf("data", "bad --threads '%s'", optarg);
            break;
        case OPT_FORMAT:
            if (pf_data_format_from_name(optarg, &p.format) != PF_OK) return cli_failf("data", "unknown --format '%s'", optarg);
            break;
        case OPT_SEQ:
            p.seq_len = strtoll(optarg, &end, 10);
            if (end == optarg || *end || errno) return cli_failf("data", "bad --seq-len '%s'", optarg);
            break;
        case OPT_NOPACK: p.pack = false; break;
        case OPT_PROMPT: p.train_on_prompt = true; break;
        case OPT_SYSTEM: p.system = optarg; break;
        case OPT_VAL:
            p.val_fraction = strtod(optarg, &end);
            if (end == optarg || *end || errno) return cli_failf("data", "bad --val '%s'", optarg);
            break;
        case OPT_SEED:
            p.seed = strtoull(optarg, &end, 10);
            if (end == optarg || *end || errno) return cli_failf("data", "bad --seed '%s'", optarg);
            break;
        case OPT_SHOW:
            show = strtoll(optarg, &end, 10);
            if (end == optarg || *end || errno || show < 0) return cli_failf("data", "bad --show '%s'", optarg);
            break;
        case OPT_JSON: json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (argc - optind != 1 || !model) {
        usage(stderr);
        return 1;
    }
    const char *path = argv[optind];
    pf_error err = {0};
    pf_gguf *g = NULL;
    pf_tokenizer *tok = NULL;
    pf_dataset *train = NULL, *val = NULL;
    if (pf_gguf_open(model, &g, &err) != PF_OK || pf_tokenizer_load(g, &tok, &err) != PF_OK) {
        pf_gguf_close(g);
        return cli_fail("data", &err);
    }
    const pf_chat_format fmt = pf_chat_format_from_gguf(g);
    const double t0 = cli_now();
    int rc = pf_dataset_load(path, tok, &fmt, &p, &train, p.val_fraction > 0 ? &val : NULL, &err);
    const double secs = cli_now() - t0;
    if (rc == PF_OK) {
        if (json) {
            printf("{\"file\":");
            cli_json_str(stdout, path);
            printf(",\"seq_len\":%lld,\"pack\":%s,\"seconds\":%.3f,", (long long)p.seq_len, p.pack ? "true" : "false", secs);
            print_stats(stdout, "train", train, true);
            if (val) putchar(','), print_stats(stdout, "val", val, true);
            printf("}\n");
        } else {
            printf("%s: loaded in %.2f s\n", path, secs);
            print_stats(stdout, "train", train, false);
            if (val) print_stats(stdout, "val", val, false);
            for (int64_t i = 0; i < show && i < pf_dataset_n_rows(train); i++) show_row(tok, train, i);
        }
    }
    pf_dataset_free(train);
    pf_dataset_free(val);
    pf_tokenizer_free(tok);
    pf_gguf_close(g);
    return rc == PF_OK ? 0 : cli_fail("data", &err);
}
