/* phiforge embed -m E.gguf [--json] TEXT... | -f FILE — one L2-normalized vector per line. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge embed -m MODEL.gguf [options] TEXT...\n"
               "       phiforge embed -m MODEL.gguf [options] -f FILE\n"
               "  Prints the embedding of each text (unit L2 norm) on its own line, in input order.\n"
               "  -m, --model FILE    BERT or nomic-bert embedding model (GGUF)\n"
               "  -f, --file FILE     one text per line ('-' = standard input) instead of TEXT arguments\n"
               "  --json              one JSON object per line: index, tokens, truncated, embedding\n"
               "  -t, --threads N     threads (default: online CPUs)\n"
               "  -b, --batch N       most token rows per forward pass (default: max(512, context))\n"
               "  Texts longer than the model's context are cut (keeping [SEP]); a note goes to stderr.\n");
}

/* The lines of FILE (a final newline ends the last line, it does not start an empty one). */
static char **read_lines(const char *path, int64_t *n_out) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return NULL;
    char **lines = NULL, *line = NULL;
    size_t cap_line = 0;
    int64_t n = 0, cap = 0;
    ssize_t len;
    bool ok = true;
    while (ok && (len = getline(&line, &cap_line, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') line[--len] = 0;
        if (len > 0 && line[len - 1] == '\r') line[--len] = 0;
        if (n == cap) {
            char **p = realloc(lines, (size_t)(cap = cap ? 2 * cap : 64) * sizeof *p);
            if (!p) { ok = false; break; }
            lines = p;
        }
        if (!(lines[n] = strdup(line))) ok = false;
        else n++;
    }
    free(line);
    if (ferror(f)) ok = false;
    if (f != stdin) fclose(f);
    if (!ok) {
        for (int64_t i = 0; i < n; i++) free(lines[i]);
        free(lines);
        return NULL;
    }
    *n_out = n;
    return lines ? lines : calloc(1, sizeof *lines);
}

static void print_vec(const float *v, int64_t dim, int64_t index, int64_t n_tok, bool cut, bool json) {
    if (json) printf("{\"index\": %lld, \"tokens\": %lld, \"truncated\": %s, \"embedding\": [", (long long)index,
                     (long long)n_tok, cut ? "true" : "false");
    for (int64_t k = 0; k < dim; k++) printf(k ? (json ? ",%.7g" : " %.7g") : "%.7g", v[k]);
    puts(json ? "]}" : "");
}

/* Embeds texts[0..n) in chunks and prints them; returns the number of texts cut or < 0. */
static int64_t embed_all(pf_embedder *e, const char *const *texts, int64_t n, bool json, pf_error *err) {
    enum { CHUNK = 256 };
    const int64_t dim = pf_embedder_dim(e), max_tok = pf_embedder_max_tokens(e);
    float *out = malloc((size_t)(CHUNK * dim) * sizeof(float));
    if (!out) return pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    int64_t n_cut = 0;
    for (int64_t i = 0; i < n; i += CHUNK) {
        const int64_t m = n - i < CHUNK ? n - i : CHUNK;
        int64_t rc = pf_embed(e, texts + i, m, out, err);
        if (rc < 0) {
            free(out);
            return rc;
        }
        n_cut += rc;
        for (int64_t k = 0; k < m; k++) {
            const char *s = texts[i + k];
            int64_t n_tok = pf_tokenize(pf_embedder_tokenizer(e), s, strlen(s), true, false, NULL, 0, NULL);
            print_vec(out + k * dim, dim, i + k, n_tok > max_tok ? max_tok : n_tok, n_tok > max_tok, json);
        }
    }
    free(out);
    return n_cut;
}

int cmd_embed(int argc, char **argv) {
    static const struct option opts[] = {{"model", required_argument, 0, 'm'}, {"file", required_argument, 0, 'f'},
                                         {"json", no_argument, 0, 'j'},        {"threads", required_argument, 0, 't'},
                                         {"batch", required_argument, 0, 'b'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL, *file = NULL;
    bool json = false;
    int threads = 0, c;
    long batch = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hm:f:t:b:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'f': file = optarg; break;
        case 'j': json = true; break;
        case 't': threads = atoi(optarg); break;
        case 'b': batch = atol(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (!model) return cli_failf("embed", "missing -m MODEL.gguf (see phiforge embed -h)");
    if (file ? optind != argc : optind >= argc)
        return cli_failf("embed", "expected %s (see phiforge embed -h)", file ? "no TEXT with -f" : "TEXT arguments or -f FILE");
    int64_t n = argc - optind;
    char **lines = NULL;
    if (file && !(lines = read_lines(file, &n))) return cli_failf("embed", "cannot read %s", file);
    const char *const *texts = file ? (const char *const *)lines : (const char *const *)(argv + optind);

    pf_error err = {0};
    pf_embedder *e = NULL;
    int rc = pf_embedder_load(model, threads, &e, &err);
    if (!rc && batch > 0) rc = pf_embedder_set_batch(e, batch, &err);
    int64_t cut = rc ? rc : embed_all(e, texts, n, json, &err);
    if (cut > 0)
        fprintf(stderr, "phiforge embed: %lld of %lld texts cut to %lld tokens\n", (long long)cut, (long long)n,
                (long long)pf_embedder_max_tokens(e));
    pf_embedder_free(e);
    for (int64_t i = 0; lines && i < n; i++) free(lines[i]);
    free(lines);
    return cut < 0 ? cli_fail("embed", &err) : 0;
}
