/* phiforge ingest --kb DIR [--embed-model E.gguf] [--chunk-tokens N] [--chunk-overlap N] [--prune]
 *                 [-t THREADS] [-v] [--json] PATH...
 * Adds files and folders to a knowledge base (created when missing): see pf_kb_ingest. Failed
 * files are reported on stderr as "PATH: reason" and skipped; the exit status is non-zero only
 * when nothing could be ingested or on a KB-level error. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge ingest --kb DIR [--embed-model E.gguf] [--chunk-tokens N] [--chunk-overlap N]\n"
               "                       [--prune] [-t THREADS] [-v] [--json] PATH...\n"
               "  --kb DIR             knowledge base directory (created when missing)\n"
               "  --embed-model FILE   GGUF embedding model; recorded in the KB, later runs reuse it.\n"
               "                       A different model re-embeds every chunk of the KB\n"
               "  --chunk-tokens N     most tokens per chunk (default %d, or the KB's setting)\n"
               "  --chunk-overlap N    tokens shared by consecutive chunks (default %d)\n"
               "  --prune              remove documents whose files no longer exist\n"
               "  -t, --threads N      worker threads (default: all cores)\n"
               "  -v, --verbose        one line per file\n"
               "  --json               print the summary as JSON on stdout\n"
               "PATH: files or folders (walked recursively; hidden entries and unsupported types skipped).\n"
               "Types: .txt .md .html .pdf .docx .csv .tsv .json .jsonl\n",
               PF_CHUNK_DEFAULT_TOKENS, PF_CHUNK_DEFAULT_OVERLAP);
}

typedef struct ui {
    cli_progress prog;
    bool started, verbose;
} ui;

static void clear_line(ui *u) {
    if (u->started && u->prog.tty) fputs("\r\033[K", stderr);
}

/* Messages from the library usually start with the path already. */
static void say(ui *u, const char *prefix, const char *path, const char *msg) {
    clear_line(u);
    size_t pl = path ? strlen(path) : 0;
    if (path && msg && !strncmp(msg, path, pl)) fprintf(stderr, "phiforge ingest: %s%s\n", prefix, msg);
    else if (path) fprintf(stderr, "phiforge ingest: %s%s: %s\n", prefix, path, msg ? msg : "");
    else fprintf(stderr, "phiforge ingest: %s%s\n", prefix, msg ? msg : "");
}

static void on_event(void *user, const pf_ingest_event *ev) {
    ui *u = user;
    switch (ev->kind) {
    case PF_INGEST_FAILED: say(u, "", ev->path, ev->msg); break;
    case PF_INGEST_WARNING: say(u, "warning: ", ev->path, ev->msg); break;
    case PF_INGEST_NOTE: say(u, "", NULL, ev->msg); break;
    case PF_INGEST_PRUNED: {
        char m[64];
        snprintf(m, sizeof m, "pruned (%lld documents)", (long long)ev->n_docs);
        say(u, "", ev->path, m);
        break;
    }
    case PF_INGEST_ADDED:
    case PF_INGEST_UPDATED:
    case PF_INGEST_UNCHANGED:
        if (u->verbose) {
            char m[96];
            if (ev->kind == PF_INGEST_UNCHANGED) snprintf(m, sizeof m, "unchanged");
            else
                snprintf(m, sizeof m, "%s, %lld documents, %lld chunks", ev->kind == PF_INGEST_ADDED ? "added" : "updated",
                         (long long)ev->n_docs, (long long)ev->n_chunks);
            say(u, "", ev->path, m);
        }
        break;
    case PF_INGEST_PROGRESS:
        if (!u->started) {
            cli_progress_start(&u->prog, "ingest", (double)ev->files_total);
            u->prog.rate_unit = "files";
            u->started = true;
        }
        if (ev->path) {
            const char *base = strrchr(ev->path, '/');
            cli_progress_update(&u->prog, (double)ev->files_done, base ? base + 1 : ev->path);
        }
        break;
    }
}

static void summary(const pf_ingest_stats *s, bool json) {
    double mb = s->bytes / 1e6, sec = s->seconds > 0 ? s->seconds : 1e-9;
    if (json) {
        printf("{\"files\":%lld,\"added\":%lld,\"updated\":%lld,\"unchanged\":%lld,\"failed\":%lld,\"skipped\":%lld,"
               "\"pruned\":%lld,\"documents\":%lld,\"chunks\":%lld,\"tokens\":%lld,\"embedded\":%lld,\"warnings\":%lld,"
               "\"bytes\":%.0f,\"seconds\":%.6f,\"embed_seconds\":%.6f,\"mb_per_s\":%.4f,\"chunks_per_s\":%.2f}\n",
               (long long)s->files, (long long)s->added, (long long)s->updated, (long long)s->unchanged,
               (long long)s->failed, (long long)s->skipped, (long long)s->pruned, (long long)s->docs,
               (long long)s->chunks, (long long)s->tokens, (long long)s->embedded, (long long)s->warnings, s->bytes,
               s->seconds, s->embed_seconds, mb / sec, (double)s->chunks / sec);
        return;
    }
    char tk[32];
    printf("ingest: %lld files: %lld added, %lld updated, %lld unchanged, %lld failed", (long long)s->files,
           (long long)s->added, (long long)s->updated, (long long)s->unchanged, (long long)s->failed);
    if (s->skipped) printf(", %lld skipped (unsupported type)", (long long)s->skipped);
    if (s->pruned) printf(", %lld pruned", (long long)s->pruned);
    printf("\ningest: %lld documents, %lld chunks (%s tokens)", (long long)s->docs, (long long)s->chunks,
           cli_human_count((double)s->tokens, tk, sizeof tk));
    if (s->embedded) printf(", %lld embedded in %.2f s", (long long)s->embedded, s->embed_seconds);
    printf("\ningest: %.2f MB in %.2f s: %.2f MB/s, %.1f chunks/s\n", mb, s->seconds, mb / sec, (double)s->chunks / sec);
}

int cmd_ingest(int argc, char **argv) {
    enum { O_KB = 256, O_MODEL, O_TOKENS, O_OVERLAP, O_PRUNE, O_JSON };
    static const struct option opts[] = {
        {"kb", required_argument, 0, O_KB},         {"embed-model", required_argument, 0, O_MODEL},
        {"chunk-tokens", required_argument, 0, O_TOKENS}, {"chunk-overlap", required_argument, 0, O_OVERLAP},
        {"prune", no_argument, 0, O_PRUNE},          {"threads", required_argument, 0, 't'},
        {"verbose", no_argument, 0, 'v'},           {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    pf_ingest_params p = pf_ingest_default_params();
    const char *dir = NULL;
    bool json = false;
    ui u = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ht:v", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case O_KB: dir = optarg; break;
        case O_MODEL: p.embed_model = optarg; break;
        case O_TOKENS:
            p.chunk_tokens = (int32_t)strtol(optarg, &end, 10);
            if (*end || p.chunk_tokens < 16) return cli_failf("ingest", "--chunk-tokens must be an integer >= 16");
            break;
        case O_OVERLAP:
            p.chunk_overlap = (int32_t)strtol(optarg, &end, 10);
            if (*end || p.chunk_overlap < 0) return cli_failf("ingest", "--chunk-overlap must be an integer >= 0");
            break;
        case O_PRUNE: p.prune = true; break;
        case O_JSON: json = true; break;
        case 't': p.n_threads = atoi(optarg); break;
        case 'v': u.verbose = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    int n_paths = argc - optind;
    if (!dir || (n_paths == 0 && !p.prune && !p.embed_model)) {
        usage(stderr);
        return 1;
    }
    p.on_event = on_event;
    p.user = &u;
    pf_error err = {0};
    pf_kb *kb = NULL;
    if (pf_kb_open(dir, true, &kb, &err)) return cli_fail("ingest", &err);
    pf_ingest_stats st;
    int rc = pf_kb_ingest(kb, (const char *const *)argv + optind, n_paths, &p, &st, &err);
    if (u.started) cli_progress_finish(&u.prog);
    pf_kb_close(kb);
    if (rc) return cli_fail("ingest", &err);
    summary(&st, json);
    if (n_paths > 0 && st.added + st.updated + st.unchanged == 0) {
        if (!st.failed) fprintf(stderr, "phiforge ingest: no supported files found\n");
        return 1;
    }
    return 0;
}
