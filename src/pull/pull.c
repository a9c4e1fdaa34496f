/* `phiforge pull NAME[:VARIANT]` as a library call, and the resolver that lets every `-m`
 * take a pulled name as well as a path. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "pull/pull_internal.h"

int pf_pull(const char *name_variant, pf_download_progress_fn progress, void *user, char *path_out, size_t cap,
            pf_download_result *res, pf_error *err) {
    const pf_pull_model *m;
    const pf_pull_file *f;
    char url[4096], path[4096];
    int rc = pf_pull_lookup(name_variant, &m, &f, err);
    if (!rc) rc = pf_pull_url(m, f, url, sizeof url, err);
    if (!rc) rc = pf_pull_local_path(m, f, path, sizeof path, err);
    if (rc) return rc;
    pf_download_params p = pf_download_default_params();
    p.url = url;
    p.dest = path;
    p.expected_size = f->size;
    p.expected_sha256 = f->sha256;
    p.progress = progress;
    p.user = user;
    rc = pf_download(&p, res, err);
    if (rc) return rc;
    if (path_out && (size_t)snprintf(path_out, cap, "%s", path) >= cap)
        return pf_error_set(err, PF_ERR_ARG, "pull: output buffer too small for %s", path);
    return PF_OK;
}

static bool is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int copy_out(const char *s, char *out, size_t cap, pf_error *err) {
    if ((size_t)snprintf(out, cap, "%s", s) >= cap) return pf_error_set(err, PF_ERR_ARG, "%s: path too long", s);
    return PF_OK;
}

int pf_model_resolve(const char *name_or_path, char *out, size_t cap, pf_error *err) {
    if (!name_or_path || !*name_or_path || !out || !cap) return pf_error_set(err, PF_ERR_ARG, "model: empty name");
    struct stat sb;
    if (stat(name_or_path, &sb) == 0) return copy_out(name_or_path, out, cap, err); /* a path wins */
    const pf_pull_model *m;
    const pf_pull_file *f;
    pf_error lookup_err = {0};
    if (pf_pull_lookup(name_or_path, &m, &f, &lookup_err) != PF_OK) {
        if (strchr(name_or_path, ':') && !strchr(name_or_path, '/') && strstr(lookup_err.msg, "no variant"))
            return pf_error_set(err, PF_ERR_NOT_FOUND, "%s", lookup_err.msg);
        return pf_error_set(err, PF_ERR_NOT_FOUND, "%s: no such file, and not a model name phiforge pull knows "
                            "(phiforge pull --list)", name_or_path);
    }
    char path[4096];
    int rc = pf_pull_local_path(m, f, path, sizeof path, err);
    if (rc) return rc;
    if (is_file(path)) return copy_out(path, out, cap, err);
    if (!strchr(name_or_path, ':')) /* no variant asked: any pulled one will do */
        for (int k = 0; k < m->n_files; k++)
            if (!pf_pull_local_path(m, &m->files[k], path, sizeof path, err) && is_file(path))
                return copy_out(path, out, cap, err);
    return pf_error_set(err, PF_ERR_NOT_FOUND, "%s: not pulled yet: run phiforge pull %s", name_or_path, name_or_path);
}
