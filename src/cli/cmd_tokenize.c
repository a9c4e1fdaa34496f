/* phiforge tokenize -m M.gguf [--no-special] [--no-bos] TEXT — token ids on one line. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge tokenize -m MODEL.gguf [--no-special] [--no-bos] TEXT\n"
               "       phiforge tokenize -m MODEL.gguf [options] -f FILE [--lines] [--time]\n"
               "  Prints the token ids of TEXT separated by single spaces, on one line.\n"
               "  -m, --model FILE  GGUF file with the tokenizer (a vocab-only file is enough)\n"
               "  --no-special      do not turn special-token texts such as <|user|> into their ids\n"
               "  --no-bos          do not add BOS (by default added when the file's add_bos_token says so)\n"
               "  -f, --file FILE   read the text from FILE ('-' = standard input) instead of TEXT\n"
               "  --lines           tokenize each line of the text on its own, one output line each\n"
               "  --time            report the encoding speed (MB/s) on standard error\n");
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, k;
    char *buf = malloc(cap);
    while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) { free(buf); buf = NULL; }
            buf = b;
        }
    }
    if (buf && ferror(f)) { free(buf); buf = NULL; }
    if (f != stdin) fclose(f);
    *len = n;
    return buf;
}

typedef struct tok_opts {
    bool special, bos, time;
    double seconds, bytes;
    int32_t *ids;
    int64_t cap;
} tok_opts;

/* Tokenizes one text and prints its line of ids. */
static int print_ids(const pf_tokenizer *tok, const char *text, size_t len, tok_opts *o, pf_error *err) {
    for (;;) {
        double t0 = o->time ? cli_now() : 0;
        int64_t n = pf_tokenize(tok, text, len, o->bos, o->special, o->ids, o->cap, err);
        if (n < 0) return (int)n;
        if (o->time) o->seconds += cli_now() - t0, o->bytes += (double)len;
        if (n > o->cap) { /* rare: grow to the size it reported and encode again */
            int32_t *p = realloc(o->ids, (size_t)n * sizeof *p);
            if (!p) return pf_error_set(err, PF_ERR_NOMEM, "out of memory for %lld ids", (long long)n);
            o->ids = p;
            o->cap = n;
            continue;
        }
        for (int64_t i = 0; i < n; i++) printf(i ? " %d" : "%d", o->ids[i]);
        putchar('\n');
        return PF_OK;
    }
}

int cmd_tokenize(int argc, char **argv) {
    enum { O_NOSPECIAL = 256, O_NOBOS, O_LINES, O_TIME };
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"file", required_argument, 0, 'f'},
        {"no-special", no_argument, 0, O_NOSPECIAL}, {"no-bos", no_argument, 0, O_NOBOS},
        {"lines", no_argument, 0, O_LINES},       {"time", no_argument, 0, O_TIME},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    const char *model = NULL, *file = NULL;
    bool lines = false;
    tok_opts o = {.special = true, .bos = true};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hm:f:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'f': file = optarg; break;
        case O_NOSPECIAL: o.special = false; break;
        case O_NOBOS: o.bos = false; break;
        case O_LINES: lines = true; break;
        case O_TIME: o.time = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (!model) return cli_failf("tokenize", "missing -m MODEL.gguf (see phiforge tokenize -h)");
    if (file ? optind != argc : optind != argc - 1)
        return cli_failf("tokenize", "expected %s (see phiforge tokenize -h)",
                         file ? "no TEXT argument with -f" : "exactly one TEXT argument");
    size_t len = 0;
    char *text = NULL;
    if (file && !(text = read_all(file, &len))) return cli_failf("tokenize", "cannot read %s", file);
    const char *src = file ? text : argv[optind];
    if (!file) len = strlen(src);

    pf_error err = {0};
    pf_gguf *g = NULL;
    pf_tokenizer *tok = NULL;
    int rc = pf_gguf_open(model, &g, &err);
    if (!rc) rc = pf_tokenizer_load(g, &tok, &err);
    pf_gguf_close(g); /* the tokenizer keeps its own copy of the vocabulary */
    o.cap = 2 * (int64_t)(lines ? 256 : len) + 8; /* ids never outnumber 2 per byte + BOS/EOS */
    o.ids = rc ? NULL : malloc((size_t)o.cap * sizeof(int32_t));
    if (!rc && !o.ids) rc = pf_error_set(&err, PF_ERR_NOMEM, "out of memory");
    if (!rc && lines) {
        for (size_t a = 0; a < len && !rc;) {
            const char *nl = memchr(src + a, '\n', len - a);
            size_t b = nl ? (size_t)(nl - src) : len;
            rc = print_ids(tok, src + a, b - a, &o, &err);
            a = b + 1;
        }
    } else if (!rc) {
        rc = print_ids(tok, src, len, &o, &err);
    }
    if (!rc && o.time)
        fprintf(stderr, "tokenize: %.0f bytes in %.4f s = %.2f MB/s\n", o.bytes, o.seconds,
                o.seconds > 0 ? o.bytes / o.seconds / 1e6 : 0.0);
    free(o.ids);
    free(text);
    pf_tokenizer_free(tok);
    return rc ? cli_fail("tokenize", &err) : 0;
}
