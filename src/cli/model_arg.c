/* `-m NAME` anywhere: before a command runs, every model argument (-m, --model, --embed-model,
 * and the FILE of `info`) whose value is not an existing path but a `phiforge pull` registry
 * name is replaced by the pulled file's path (pf_model_resolve). Doing it once here, on argv,
 * means no command has to know about the registry. Values that are neither a file nor a registry name are left alone so
 * that the command reports them as it always did. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

/* A registry name (the part before any ':'), and not something on disk. */
static bool wants_resolve(const char *v) {
    struct stat sb;
    if (!v || !*v || stat(v, &sb) == 0) return false;
    char name[128];
    size_t n = strcspn(v, ":");
    if (n >= sizeof name) return false;
    memcpy(name, v, n);
    name[n] = 0;
    return pf_pull_lookup(name, NULL, NULL, NULL) == PF_OK;
}

/* Replaces *slot (the value, or the whole "--opt=value" argument when prefix is set). */
static int replace(const char *cmd, char **slot, const char *prefix, const char *value, cli_model_args *owned) {
    char path[4096];
    pf_error err = {0};
    if (pf_model_resolve(value, path, sizeof path, &err) != PF_OK) return cli_fail(cmd, &err);
    if (owned->n >= CLI_MAX_MODEL_ARGS) return cli_failf(cmd, "too many model arguments");
    size_t len = strlen(prefix) + strlen(path) + 1;
    char *s = malloc(len);
    if (!s) return cli_failf(cmd, "out of memory");
    snprintf(s, len, "%s%s", prefix, path);
    owned->ptr[owned->n++] = s;
    *slot = s;
    return 0;
}

int cli_resolve_model_args(const char *cmd, int argc, char **argv, cli_model_args *owned) {
    static const char *long_opts[] = {"--model", "--embed-model"};
    bool short_m = strcmp(cmd, "search") != 0; /* search's -m is --mode */
    owned->n = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (!strcmp(a, "--")) break;
        if (!strcmp(cmd, "info") && a[0] != '-') { /* `phiforge info NAME`: its one positional is a model */
            if (wants_resolve(a) && replace(cmd, &argv[i], "", a, owned)) return 1;
            continue;
        }
        if (short_m && !strncmp(a, "-m", 2)) {
            if (a[2] == 0 && i + 1 < argc) {
                if (wants_resolve(argv[i + 1]) && replace(cmd, &argv[i + 1], "", argv[i + 1], owned)) return 1;
                i++;
            } else if (a[2] && wants_resolve(a + 2) && replace(cmd, &argv[i], "-m", a + 2, owned)) {
                return 1;
            }
            continue;
        }
        for (size_t k = 0; k < sizeof long_opts / sizeof long_opts[0]; k++) {
            size_t n = strlen(long_opts[k]);
            if (strncmp(a, long_opts[k], n)) continue;
            if (a[n] == 0 && i + 1 < argc) {
                if (wants_resolve(argv[i + 1]) && replace(cmd, &argv[i + 1], "", argv[i + 1], owned)) return 1;
                i++;
            } else if (a[n] == '=' && wants_resolve(a + n + 1)) {
                char prefix[32];
                snprintf(prefix, sizeof prefix, "%s=", long_opts[k]);
                if (replace(cmd, &argv[i], prefix, a + n + 1, owned)) return 1;
            }
            break;
        }
    }
    return 0;
}

void cli_model_args_free(cli_model_args *owned) {
    for (int i = 0; i < owned->n; i++) free(owned->ptr[i]);
    owned->n = 0;
}
