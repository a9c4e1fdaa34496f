/* phiforge search --kb DIR [-k 10] [--mode bm25|dense|hybrid] [--json] QUERY
 * phiforge search --kb DIR [-k 10] [--mode ...] --queries FILE.jsonl
 *
 * JSON results name each hit by "doc": the document's key (documents.doc_key: the file path the
 * KB stores for a file, the record's _id/id for a JSONL record) and "chunk": chunks.id, which
 * stays valid until the document is re-ingested. --queries prints exactly
 *   {"id":ID,"results":[{"doc":..,"chunk":..,"score":..,"source":..,"page":..,"text":..}]}
 * per input line (ID echoed as given; page null when the source has none). Every line of the
 * file is checked before anything runs, so a malformed line fails the command with its number
 * and no partial output. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ir/ir.h"

#define SNIPPET_BYTES 240

static void usage(FILE *f) {
    fprintf(f,
            "usage: phiforge search --kb DIR [-k 10] [--mode bm25|dense|hybrid] [--json] QUERY...\n"
            "       phiforge search --kb DIR [-k 10] [--mode ...] --queries FILE.jsonl\n"
            "  QUERY words are joined by spaces; operators and quotes are plain text.\n"
            "  --mode M        hybrid (default: BM25 + dense fused by reciprocal rank; plain BM25\n"
            "                  when the KB has no embedding model), bm25, or dense\n"
            "  -k N            results per query (10)\n"
            "  --json          JSON output (one object)\n"
            "  --queries FILE  JSONL lines {\"id\":..,\"text\":..} (\"-\": stdin); prints one JSON line each:\n"
            "                  {\"id\":..,\"results\":[{\"doc\":KEY,\"chunk\":ID,\"score\":..,\"source\":..,\"page\":..,\"text\":..}]}\n"
            "                  doc = document key (file path, or JSONL record id); chunk = chunk id\n"
            "  --source GLOB   only documents whose source path matches (fnmatch; '*' crosses '/';\n"
            "                  a relative GLOB also matches below any directory: 'docs/*.pdf')\n"
            "  --type T[,T]    only these document types (txt md html pdf docx csv json jsonl)\n"
            "  --depth N       candidates from each retriever before fusion (50)\n"
            "  --rrf-k X       reciprocal rank fusion constant (60)\n"
            "  --w-bm25 X, --w-dense X   fusion weights (1, 1)\n"
            "  --k1 X, --b X   BM25 parameters (0.9, 0.4)\n"
            "  --prefix TEXT   query prefix for the embedder (default: by model, e.g. bge's instruction)\n"
            "  --keep-stopwords  do not drop English stopwords from the BM25 query\n"
            "  --no-dedup      keep near-duplicate chunks\n"
            "  --threads N     embedder threads (all CPUs)\n");
}

typedef struct query { char *id_json, *text; } query;

/* Reads and validates every line of a JSONL query file. */
static int read_queries(const char *path, query **out, size_t *n_out) {
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) return cli_failf("search", "%s: cannot open: %s", path, strerror(errno));
    query *v = NULL;
    size_t n = 0, cap = 0, line_no = 0, lcap = 0;
    char *line = NULL;
    ssize_t len;
    int rc = 0;
    while (!rc && (len = getline(&line, &lcap, f)) >= 0) {
        line_no++;
        if (strspn(line, " \t\r\n") == (size_t)len) continue;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)len);
        cJSON *id = j ? cJSON_GetObjectItemCaseSensitive(j, "id") : NULL;
        cJSON *text = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
        if (!j || !cJSON_IsObject(j)) rc = cli_failf("search", "%s:%zu: not a JSON object", path, line_no);
        else if (!id || !(cJSON_IsString(id) || cJSON_IsNumber(id)))
            rc = cli_failf("search", "%s:%zu: \"id\" missing (a string or a number is needed)", path, line_no);
        else if (!cJSON_IsString(text))
            rc = cli_failf("search", "%s:%zu: \"text\" missing or not a string", path, line_no);
        else {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                v = realloc(v, cap * sizeof *v);
                if (!v) { cJSON_Delete(j); rc = cli_failf("search", "out of memory"); break; }
            }
            v[n].id_json = cJSON_PrintUnformatted(id);
            v[n].text = strdup(text->valuestring);
            if (!v[n].id_json || !v[n].text) rc = cli_failf("search", "out of memory");
            n++;
        }
        cJSON_Delete(j);
    }
    free(line);
    if (f != stdin) fclose(f);
    if (rc) {
        for (size_t i = 0; i < n; i++) { free(v[i].id_json); free(v[i].text); }
        free(v);
        return rc;
    }
    *out = v;
    *n_out = n;
    return 0;
}

static void json_opt_str(const char *s) {
    if (s) cli_json_str(stdout, s); else fputs("null", stdout);
}

static void json_page(int32_t page) {
    if (page > 0) printf("%d", page); else fputs("null", stdout);
}

/* The exact --queries form. */
static void print_batch_line(const char *id_json, const pf_search_results *res) {
    printf("{\"id\":%s,\"results\":[", id_json);
    for (int32_t i = 0; i < res->n; i++) {
        const pf_search_hit *h = &res->hits[i];
        printf("%s{\"doc\":", i ? "," : "");
        cli_json_str(stdout, h->doc_key);
        printf(",\"chunk\":%lld,\"score\":%.9g,\"source\":", (long long)h->chunk_id, h->score);
        cli_json_str(stdout, h->source);
        printf(",\"page\":");
        json_page(h->page);
        printf(",\"text\":");
        cli_json_str(stdout, h->text);
        putchar('}');
    }
    printf("]}\n");
}

/* Single query --json: the same hit fields plus everything a citation needs. */
static void print_json(const char *q, const pf_search_results *res) {
    printf("{\"query\":");
    cli_json_str(stdout, q);
    printf(",\"mode\":\"%s\",\"results\":[", pf_search_mode_name(res->mode));
    for (int32_t i = 0; i < res->n; i++) {
        const pf_search_hit *h = &res->hits[i];
        printf("%s{\"doc\":", i ? "," : "");
        cli_json_str(stdout, h->doc_key);
        printf(",\"chunk\":%lld,\"score\":%.9g,\"source\":", (long long)h->chunk_id, h->score);
        cli_json_str(stdout, h->source);
        printf(",\"page\":");
        json_page(h->page);
        printf(",\"heading\":");
        json_opt_str(h->heading);
        printf(",\"title\":");
        json_opt_str(h->title);
        printf(",\"type\":");
        json_opt_str(h->doc_type);
        printf(",\"start_char\":%lld,\"end_char\":%lld,\"bm25_rank\":%d,\"dense_rank\":%d,\"duplicates\":%d,\"text\":",
               (long long)h->start_char, (long long)h->end_char, h->bm25_rank, h->dense_rank, h->n_collapsed);
        cli_json_str(stdout, h->text);
        putchar('}');
    }
    printf("]}\n");
}

/* ---- snippets ----------------------------------------------------------------------------- */

typedef struct stems { char v[16][PF_IR_MAX_TOKEN + 1]; int n; size_t first; } stems;

static int add_stem(void *ctx, const char *tok, size_t len, size_t start, size_t end) {
    (void)start, (void)end;
    stems *s = ctx;
    if (s->n < 16 && !pf_ir_is_stopword(tok, len)) {
        memcpy(s->v[s->n], tok, len + 1);
        s->v[s->n][pf_ir_porter(s->v[s->n], len)] = '\0';
        s->n++;
    }
    return 0;
}

static int find_stem(void *ctx, const char *tok, size_t len, size_t start, size_t end) {
    (void)end;
    stems *s = ctx;
    char w[PF_IR_MAX_TOKEN + 1];
    memcpy(w, tok, len + 1);
    w[pf_ir_porter(w, len)] = '\0';
    for (int i = 0; i < s->n; i++)
        if (!strcmp(w, s->v[i])) { s->first = start; return 1; }
    return 0;
}

/* Prints about SNIPPET_BYTES of text on one line, starting a little before the first query word,
 * whitespace collapsed, cut at UTF-8 character boundaries. */
static void print_snippet(const char *text, const stems *q) {
    stems s = *q;
    s.first = 0;
    size_t len = strlen(text), from = 0;
    if (s.n && pf_ir_tokenize(text, len, find_stem, &s) == 1 && s.first > 60) {
        from = s.first - 60;
        while (from < s.first && text[from] != ' ' && text[from] != '\n') from++;
    }
    while ((text[from] & 0xC0) == 0x80) from++;
    fputs(from ? "    …" : "    ", stdout);
    size_t out = 0;
    bool space = false;
    const char *p = text + from;
    for (; *p && out < SNIPPET_BYTES; p++) {
        if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') { space = out > 0; continue; }
        if (space) { putchar(' '); out++; space = false; }
        putchar(*p);
        out++;
    }
    while ((*p & 0xC0) == 0x80) putchar(*p++); /* finish the character */
    fputs(*p ? "…\n" : "\n", stdout);
}

static void print_text(const char *q, const pf_search_results *res) {
    stems s = {.n = 0};
    pf_ir_tokenize(q, strlen(q), add_stem, &s);
    for (int32_t i = 0; i < res->n; i++) {
        const pf_search_hit *h = &res->hits[i];
        printf("%2d. %-9.4g %s", i + 1, h->score, h->source);
        if (h->page > 0) printf(" p.%d", h->page);
        if (h->heading) printf(" › %s", h->heading);
        if (strcmp(h->doc_key, h->source)) printf("  [%s]", h->doc_key);
        if (h->n_collapsed) printf("  (+%d duplicate%s)", h->n_collapsed, h->n_collapsed > 1 ? "s" : "");
        putchar('\n');
        print_snippet(h->text, &s);
    }
    if (!res->n) fprintf(stderr, "no results\n");
}

/* ---- command -------------------------------------------------------------------------------- */

int cmd_search(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--bench")) return cmd_bench_search(argc - 1, argv + 1);
    static const struct option opts[] = {
        {"kb", required_argument, 0, 'K'}, {"mode", required_argument, 0, 'm'}, {"json", no_argument, 0, 'j'},
        {"queries", required_argument, 0, 'Q'}, {"source", required_argument, 0, 's'},
        {"type", required_argument, 0, 't'}, {"depth", required_argument, 0, 'd'}, {"rrf-k", required_argument, 0, 'r'},
        {"w-bm25", required_argument, 0, 'B'}, {"w-dense", required_argument, 0, 'D'}, {"k1", required_argument, 0, '1'},
        {"b", required_argument, 0, 'b'}, {"prefix", required_argument, 0, 'p'}, {"no-dedup", no_argument, 0, 'n'},
        {"keep-stopwords", no_argument, 0, 'S'}, {"threads", required_argument, 0, 'T'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *dir = NULL, *qfile = NULL;
    bool json = false, mode_given = false;
    int threads = 0;
    pf_search_params p = pf_search_default_params();
    optind = 1;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "k:h", opts, NULL)) != -1) {
        switch (c) {
        case 'K': dir = optarg; break;
        case 'm':
            if (pf_search_mode_from_name(optarg, &p.mode)) return cli_failf("search", "--mode: bm25, dense or hybrid, not '%s'", optarg);
            mode_given = true;
            break;
        case 'j': json = true; break;
        case 'Q': qfile = optarg; break;
        case 's': p.source_glob = optarg; break;
        case 't': p.doc_types = optarg; break;
        case 'p': p.query_prefix = optarg; break;
        case 'n': p.dedup = false; break;
        case 'S': p.stopwords = false; break;
        case 'k': case 'd': case 'T': {
            long v = strtol(optarg, &end, 10);
            if (*end || v <= 0 || v > 100000) return cli_failf("search", "-%c: a positive integer, not '%s'", c, optarg);
            if (c == 'k') p.k = (int32_t)v; else if (c == 'd') p.depth = (int32_t)v; else threads = (int)v;
            break;
        }
        case 'r': case 'B': case 'D': case '1': case 'b': {
            double v = strtod(optarg, &end);
            if (*end || v < 0) return cli_failf("search", "a non-negative number is needed, not '%s'", optarg);
            if (c == 'r') p.rrf_k = v; else if (c == 'B') p.w_bm25 = v; else if (c == 'D') p.w_dense = v;
            else if (c == '1') p.bm25_k1 = v; else p.bm25_b = v;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (!dir) { usage(stderr); return cli_failf("search", "--kb DIR is required"); }
    if (!qfile && optind >= argc) { usage(stderr); return cli_failf("search", "a QUERY or --queries FILE is required"); }
    if (qfile && optind < argc) return cli_failf("search", "give either QUERY or --queries, not both");

    query *qs = NULL;
    size_t nq = 0;
    if (qfile && read_queries(qfile, &qs, &nq)) return 1;

    pf_error err = {0};
    pf_kb *kb = NULL;
    pf_retriever *r = NULL;
    int rc = 0;
    if (pf_kb_open(dir, false, &kb, &err)) rc = cli_fail("search", &err);
    else if (pf_kb_retriever(kb, p.mode != PF_SEARCH_BM25, threads, &r, &err)) {
        /* hybrid is the default: a KB whose model file went missing still answers lexically */
        if (p.mode == PF_SEARCH_HYBRID && !mode_given && (err.code == PF_ERR_NOT_FOUND || err.code == PF_ERR_FORMAT)) {
            fprintf(stderr, "phiforge search: warning: %s; searching with BM25 only\n", err.msg);
            if (pf_kb_retriever(kb, false, threads, &r, &err)) rc = cli_fail("search", &err);
        } else rc = cli_fail("search", &err);
    }
    if (!rc && qfile) {
        for (size_t i = 0; i < nq && !rc; i++) {
            pf_search_results res;
            if (pf_retriever_search(r, qs[i].text, &p, &res, &err)) {
                rc = cli_failf("search", "query %s: %s", qs[i].id_json, err.msg);
                break;
            }
            print_batch_line(qs[i].id_json, &res);
            pf_search_results_free(&res);
        }
    } else if (!rc) {
        char *q = cli_join_args(argc - optind, argv + optind);
        pf_search_results res;
        if (!q) rc = cli_failf("search", "out of memory");
        else if (pf_retriever_search(r, q, &p, &res, &err)) rc = cli_fail("search", &err);
        else {
            if (json) print_json(q, &res); else print_text(q, &res);
            if (!json && res.mode != p.mode && mode_given)
                fprintf(stderr, "(%s: this knowledge base has no embedding model)\n", pf_search_mode_name(res.mode));
            pf_search_results_free(&res);
        }
        free(q);
    }
    for (size_t i = 0; i < nq; i++) { free(qs[i].id_json); free(qs[i].text); }
    free(qs);
    pf_retriever_free(r);
    pf_kb_close(kb);
    return rc;
}

/* ---- phiforge search --bench (also registrable as `phiforge bench-search`) ------------------- */

static void bench_log(void *user, const char *msg) {
    (void)user;
    fprintf(stderr, "bench-search: %s\n", msg);
}

static void bench_row(const char *name, const double ms[4]) {
    printf("  %-7s p50 %7.2f ms   p90 %7.2f ms   p99 %7.2f ms   mean %7.2f ms\n", name, ms[0], ms[1], ms[2], ms[3]);
}

int cmd_bench_search(int argc, char **argv) {
    static const struct option opts[] = {
        {"chunks", required_argument, 0, 'c'}, {"queries", required_argument, 0, 'q'},
        {"embed-model", required_argument, 0, 'e'}, {"dir", required_argument, 0, 'd'},
        {"threads", required_argument, 0, 't'}, {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    pf_search_bench_params p = pf_search_bench_default_params();
    p.log = bench_log;
    bool json = false;
    optind = 1;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': case 'q': case 't': {
            long long v = strtoll(optarg, &end, 10);
            if (*end || v <= 0) return cli_failf("bench-search", "a positive integer, not '%s'", optarg);
            if (c == 'c') p.n_chunks = v; else if (c == 'q') p.n_queries = (int32_t)v; else p.n_threads = (int)v;
            break;
        }
        case 'e': p.embed_model = optarg; break;
        case 'd': p.dir = optarg; break;
        case 'j': json = true; break;
        case 'h':
            printf("usage: phiforge search --bench [--chunks 100000] [--queries 500] [--embed-model E.gguf]\n"
                   "                              [--dir DIR] [--threads N] [--json]\n"
                   "  search latency over a synthetic KB (bm25; dense + hybrid with --embed-model, whose\n"
                   "  chunk vectors are random). --dir keeps the KB for the next run.\n");
            return 0;
        default: return 1;
        }
    }
    pf_error err = {0};
    pf_search_bench_result r;
    if (pf_search_bench(&p, &r, &err)) return cli_fail("bench-search", &err);
    char b[32];
    if (json) {
        printf("{\"chunks\":%lld,\"db_bytes\":%.0f,\"build_s\":%.3f,\"index_s\":%.3f,\"mean_hits\":%.2f",
               (long long)r.n_chunks, r.db_bytes, r.build_s, r.index_s, r.mean_hits);
        const char *names[] = {"bm25", "dense", "hybrid", "embed_query"};
        const double *ms[] = {r.bm25_ms, r.dense_ms, r.hybrid_ms, r.embed_ms};
        for (int i = 0; i < (r.hybrid ? 4 : 1); i++)
            printf(",\"%s_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"mean\":%.3f}", names[i], ms[i][0], ms[i][1],
                   ms[i][2], ms[i][3]);
        printf("}\n");
        return 0;
    }
    printf("search latency, %lld chunks (%s database", (long long)r.n_chunks, cli_human_bytes(r.db_bytes, b, sizeof b));
    if (r.build_s > 0) printf(", built in %.1f s", r.build_s);
    printf("), %d queries, k %d:\n", (int)p.n_queries, (int)p.k);
    bench_row("bm25", r.bm25_ms);
    if (r.hybrid) {
        bench_row("dense", r.dense_ms);
        bench_row("hybrid", r.hybrid_ms);
        bench_row("(embed)", r.embed_ms);
        if (r.index_s > 0) printf("  vector index built in %.1f s\n", r.index_s);
    }
    return 0;
}
