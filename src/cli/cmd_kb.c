/* phiforge kb stats|list|rm --kb DIR ...
 *   stats [--json]   documents, chunks, tokens, types, embedding model, index state, sizes
 *   list [--json]    documents: key, type, title, chunks, source
 *   rm KEY|SOURCE... removes documents (by document key, or every document of a source file)
 *                    in one transaction; the vector index follows. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge kb stats --kb DIR [--json]\n"
               "       phiforge kb list  --kb DIR [--json]\n"
               "       phiforge kb rm    --kb DIR KEY|SOURCE...\n"
               "  KEY is a document key as `kb list` shows it (the file path, or a record id);\n"
               "  SOURCE removes every document of that file. A file whose documents are all\n"
               "  removed is forgotten: ingesting it again adds it back.\n");
}

static void json_opt_str(FILE *f, const char *s) {
    if (s && *s) cli_json_str(f, s);
    else fputs("null", f);
}

static int stats(pf_kb *kb, bool json) {
    pf_error err = {0};
    pf_kb_stats s;
    if (pf_kb_get_stats(kb, &s, &err)) return cli_fail("kb stats", &err);
    static const char *state_names[] = {"none", "missing", "stale", "fresh"};
    if (json) {
        printf("{\"dir\":");
        cli_json_str(stdout, pf_kb_dir(kb));
        printf(",\"schema_version\":%d,\"documents\":%lld,\"sources\":%lld,\"chunks\":%lld,\"tokens\":%lld,\"by_type\":{",
               s.schema_version, (long long)s.documents, (long long)s.sources, (long long)s.chunks, (long long)s.tokens);
        for (int i = 0; i < s.n_types; i++) {
            printf(i ? "," : "");
            cli_json_str(stdout, s.types[i].type);
            printf(":{\"documents\":%lld,\"chunks\":%lld}", (long long)s.types[i].docs, (long long)s.types[i].chunks);
        }
        printf("},\"chunk_tokens\":%d,\"chunk_overlap\":%d,\"chunk_tokenizer\":", s.chunk_tokens, s.chunk_overlap);
        json_opt_str(stdout, s.chunk_tokenizer);
        printf(",\"embed_model\":");
        json_opt_str(stdout, s.embed_model);
        printf(",\"embed_name\":");
        json_opt_str(stdout, s.embed_name);
        printf(",\"embed_dim\":%lld,\"embedded\":%lld,\"vector_generation\":%llu,\"index\":{\"state\":\"%s\","
               "\"vectors\":%lld,\"bytes\":%lld},\"db_bytes\":%lld}\n",
               (long long)s.embed_dim, (long long)s.embedded, (unsigned long long)s.vector_generation,
               state_names[s.index_state], (long long)s.index_vectors, (long long)s.index_bytes, (long long)s.db_bytes);
        return 0;
    }
    char b1[32], b2[32];
    printf("knowledge base  %s (schema %d)\n", pf_kb_dir(kb), s.schema_version);
    printf("documents       %lld (from %lld files)\n", (long long)s.documents, (long long)s.sources);
    printf("chunks          %lld (%s tokens, %.0f per chunk)\n", (long long)s.chunks,
           cli_human_count((double)s.tokens, b1, sizeof b1), s.chunks ? (double)s.tokens / (double)s.chunks : 0.0);
    printf("by type        ");
    for (int i = 0; i < s.n_types; i++)
        printf("%s %s %lld docs / %lld chunks", i ? "," : "", s.types[i].type, (long long)s.types[i].docs,
               (long long)s.types[i].chunks);
    printf("%s\n", s.n_types ? "" : " -");
    if (s.chunk_tokens)
        printf("chunking        %d tokens, overlap %d, counted with %s\n", s.chunk_tokens, s.chunk_overlap,
               s.chunk_tokenizer);
    if (s.embed_model[0])
        printf("embedding       %s (dim %lld): %lld of %lld chunks embedded\n                %s\n", s.embed_name,
               (long long)s.embed_dim, (long long)s.embedded, (long long)s.chunks, s.embed_model);
    else
        printf("embedding       none (lexical search only)\n");
    if (s.index_state != PF_KB_INDEX_NONE)
        printf("vector index    %s, %lld vectors, %s (generation %llu)\n", pf_kb_index_state_str(s.index_state),
               (long long)s.index_vectors, cli_human_bytes((double)s.index_bytes, b1, sizeof b1),
               (unsigned long long)s.vector_generation);
    printf("database        %s\n", cli_human_bytes((double)s.db_bytes, b2, sizeof b2));
    return 0;
}

typedef struct list_ctx {
    bool json;
    int64_t n;
} list_ctx;

static int list_one(void *user, const pf_kb_doc *d) {
    list_ctx *c = user;
    if (c->json) {
        printf("%s\n  {\"id\":%lld,\"key\":", c->n ? "," : "", (long long)d->id);
        cli_json_str(stdout, d->key);
        printf(",\"type\":\"%s\",\"title\":", d->doc_type);
        json_opt_str(stdout, d->title);
        printf(",\"chunks\":%lld,\"tokens\":%lld,\"source\":", (long long)d->n_chunks, (long long)d->n_tokens);
        cli_json_str(stdout, d->source);
        printf("}");
    } else {
        printf("%-5s %6lld  %s", d->doc_type, (long long)d->n_chunks, d->key);
        if (d->title && *d->title) printf("  \"%s\"", d->title);
        if (strcmp(d->key, d->source)) printf("  (%s)", d->source);
        printf("\n");
    }
    c->n++;
    return 0;
}

static int list(pf_kb *kb, bool json) {
    pf_error err = {0};
    list_ctx c = {json, 0};
    if (json) printf("[");
    else printf("%-5s %6s  %s\n", "TYPE", "CHUNKS", "KEY  \"TITLE\"  (SOURCE)");
    if (pf_kb_list(kb, list_one, &c, &err)) return cli_fail("kb list", &err);
    if (json) printf("%s]\n", c.n ? "\n" : "");
    return 0;
}

static int rm(pf_kb *kb, char **keys, int n) {
    if (n == 0) {
        usage(stderr);
        return 1;
    }
    pf_error err = {0};
    int64_t *removed = calloc((size_t)n, sizeof *removed), total = 0;
    if (!removed) return cli_failf("kb rm", "out of memory");
    if (pf_kb_remove(kb, (const char *const *)keys, n, removed, &total, &err)) {
        free(removed);
        return cli_fail("kb rm", &err);
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        if (removed[i]) printf("removed %lld document%s: %s\n", (long long)removed[i], removed[i] == 1 ? "" : "s", keys[i]);
        else rc = cli_failf("kb rm", "%s: no such document key or source", keys[i]);
    }
    free(removed);
    return rc;
}

int cmd_kb(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2;
    }
    const char *sub = argv[1];
    enum { O_KB = 256, O_JSON };
    static const struct option opts[] = {
        {"kb", required_argument, 0, O_KB}, {"json", no_argument, 0, O_JSON}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *dir = NULL;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
        if (c == O_KB) dir = optarg;
        else if (c == O_JSON) json = true;
        else if (c == 'h') { usage(stdout); return 0; }
        else { usage(stderr); return 1; }
    }
    bool is_rm = !strcmp(sub, "rm");
    if (!dir || (strcmp(sub, "stats") && strcmp(sub, "list") && !is_rm) || (!is_rm && optind != argc - 1)) {
        usage(stderr);
        return 1;
    }
    pf_error err = {0};
    pf_kb *kb = NULL;
    if (pf_kb_open(dir, false, &kb, &err)) return cli_fail("kb", &err);
    int rc = !strcmp(sub, "stats") ? stats(kb, json) : !strcmp(sub, "list") ? list(kb, json) : rm(kb, argv + 1 + optind, argc - 1 - optind);
    pf_kb_close(kb);
    return rc;
}
