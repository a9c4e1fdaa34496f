/* phiforge pull NAME[:VARIANT] [--json] | phiforge pull --list [--json]
 * Downloads a published GGUF from the Hugging Face hub into the cache (resumable, verified);
 * afterwards `-m NAME` works in every command. */
#include <getopt.h>
#include <sys/stat.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge pull NAME[:VARIANT] [--json]\n"
               "       phiforge pull --list [--json]\n"
               "  downloads a published GGUF model from the Hugging Face hub into the cache\n"
               "  (%s), resuming an interrupted download and checking size and sha256 where known.\n"
               "  Then `-m NAME` works wherever a model path does.\n"
               "  --list        the names this build knows, their variants and whether they are pulled\n"
               "  --json        one JSON object (or array for --list) on stdout\n"
               "environment: PHIFORGE_CACHE (cache folder), XDG_CACHE_HOME, PHIFORGE_HUB_URL (a mirror),\n"
               "             HF_TOKEN (gated repos)\n",
            "$PHIFORGE_CACHE, else $XDG_CACHE_HOME/phiforge, else ~/.cache/phiforge");
}

typedef struct pull_progress {
    cli_progress bar;
    bool started;
    int64_t base; /* bytes already on disk when this run began (a resume): rate and ETA skip them */
    char label[160];
} pull_progress;

static int on_progress(void *user, int64_t done, int64_t total) {
    pull_progress *pp = user;
    if (!pp->started) {
        pp->base = done;
        cli_progress_start(&pp->bar, pp->label, total > 0 ? (double)(total - done) / 1e6 : 0);
        pp->bar.rate_unit = "MB";
        pp->started = true;
    }
    char a[32], b[32], item[80];
    cli_human_bytes((double)done, a, sizeof a);
    if (total > 0) snprintf(item, sizeof item, "%s / %s", a, cli_human_bytes((double)total, b, sizeof b));
    else snprintf(item, sizeof item, "%s", a);
    cli_progress_update(&pp->bar, (double)(done - pp->base) / 1e6, item);
    return 0;
}

static bool pulled(const pf_pull_model *m, const pf_pull_file *f, char *path, size_t cap) {
    struct stat sb;
    pf_error err = {0};
    return pf_pull_local_path(m, f, path, cap, &err) == PF_OK && stat(path, &sb) == 0;
}

static int list(bool json) {
    int n = 0;
    const pf_pull_model *reg = pf_pull_registry(&n);
    char path[4096], size[32];
    if (json) fputc('[', stdout);
    else printf("%-34s %-6s %-10s %-7s %-6s %s\n", "name", "kind", "size", "sha256", "pulled", "hub file");
    for (int i = 0, first = 1; i < n; i++) {
        for (int k = 0; k < reg[i].n_files; k++, first = 0) {
            const pf_pull_file *f = &reg[i].files[k];
            bool have = pulled(&reg[i], f, path, sizeof path);
            char nv[128];
            snprintf(nv, sizeof nv, "%s:%s%s", reg[i].name, f->variant, k == 0 && !json ? " *" : "");
            if (json) {
                printf("%s{\"name\":", first ? "" : ",");
                cli_json_str(stdout, reg[i].name);
                printf(",\"variant\":");
                cli_json_str(stdout, f->variant);
                printf(",\"default\":%s,\"kind\":\"%s\",\"repo\":", k == 0 ? "true" : "false", reg[i].kind);
                cli_json_str(stdout, reg[i].repo);
                printf(",\"file\":");
                cli_json_str(stdout, f->file);
                printf(",\"size\":%lld,\"sha256\":", (long long)f->size);
                if (f->sha256) cli_json_str(stdout, f->sha256);
                else fputs("null", stdout);
                printf(",\"pulled\":%s,\"path\":", have ? "true" : "false");
                cli_json_str(stdout, path);
                fputc('}', stdout);
            } else {
                printf("%-34s %-6s %-10s %-7s %-6s %s/%s\n", nv, reg[i].kind,
                       f->size >= 0 ? cli_human_bytes((double)f->size, size, sizeof size) : "?",
                       f->sha256 ? "pinned" : "-", have ? "yes" : "no", reg[i].repo, f->file);
            }
        }
    }
    if (json) puts("]");
    else {
        pf_error err = {0};
        if (pf_pull_cache_dir(path, sizeof path, &err) == PF_OK)
            printf("(* default variant; cache: %s)\n", path);
    }
    return 0;
}

int cmd_pull(int argc, char **argv) {
    static const struct option opts[] = {{"list", no_argument, 0, 'l'}, {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    bool json = false, do_list = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hlj", opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return 0;
        case 'l': do_list = true; break;
        case 'j': json = true; break;
        default: usage(stderr); return 1;
        }
    }
    if (do_list) return list(json);
    if (optind != argc - 1) { usage(stderr); return 1; }
    const char *name = argv[optind];

    pf_error err = {0};
    const pf_pull_model *m;
    const pf_pull_file *f;
    char url[4096], path[4096];
    if (pf_pull_lookup(name, &m, &f, &err) || pf_pull_url(m, f, url, sizeof url, &err)) return cli_fail("pull", &err);
    pull_progress pp = {0};
    snprintf(pp.label, sizeof pp.label, "pull %s:%s", m->name, f->variant);
    pf_download_result res;
    double t0 = cli_now();
    int rc = pf_pull(name, on_progress, &pp, path, sizeof path, &res, &err);
    if (pp.started) {
        if (rc == PF_OK) cli_progress_finish(&pp.bar);
        else if (pp.bar.tty) fputc('\n', stderr);
    }
    if (rc) return cli_fail("pull", &err);
    double secs = cli_now() - t0;
    char size[32];
    cli_human_bytes((double)res.bytes, size, sizeof size);
    if (json) {
        printf("{\"name\":");
        cli_json_str(stdout, m->name);
        printf(",\"variant\":");
        cli_json_str(stdout, f->variant);
        printf(",\"repo\":");
        cli_json_str(stdout, m->repo);
        printf(",\"url\":");
        cli_json_str(stdout, url);
        printf(",\"path\":");
        cli_json_str(stdout, path);
        printf(",\"bytes\":%lld,\"already_present\":%s,\"resumed_from\":%lld,\"sha256\":", (long long)res.bytes,
               res.already_present ? "true" : "false", (long long)res.resumed_from);
        if (res.sha256[0]) cli_json_str(stdout, res.sha256);
        else fputs("null", stdout);
        printf(",\"sha256_verified\":%s,\"seconds\":%.3f}\n", res.sha256_verified ? "true" : "false", secs);
    } else if (res.already_present) {
        printf("pull: %s:%s already present: %s (%s)\n", m->name, f->variant, path, size);
    } else {
        char resumed[64] = "";
        if (res.resumed_from > 0) {
            char rb[32];
            snprintf(resumed, sizeof resumed, ", resumed at %s", cli_human_bytes((double)res.resumed_from, rb, sizeof rb));
        }
        printf("pull: %s:%s -> %s (%s in %.1f s%s)\n", m->name, f->variant, path, size, secs, resumed);
        printf("sha256 %s (%s)\n", res.sha256,
               res.sha256_verified ? "verified" : "not pinned in the registry: compare it with the hub's file page");
    }
    return 0;
}
