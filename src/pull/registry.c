/* The registry of published GGUF models that `phiforge pull NAME` knows: name -> Hugging Face
 * repo and files per variant, plus where they go on disk and which URL they come from.
 *
 * Repos and file names were checked against public references (model cards, download scripts
 * of other projects). A size or sha256 is filled in only where an independent source gave it;
 * everything else is -1 / NULL, and the download then trusts the server's Content-Length and
 * reports the hash it computed. The first file of each model is its default variant. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pull/pull_internal.h"

static const pf_pull_file phi3_mini_4k[] = {
    {"q4", "Phi-3-mini-4k-instruct-q4.gguf", -1, NULL},
    {"fp16", "Phi-3-mini-4k-instruct-fp16.gguf", -1, NULL},
};
/* Microsoft publishes no GGUF of the 128k model; bartowski's llama.cpp conversion is the one
 * most download scripts use. */
static const pf_pull_file phi3_mini_128k[] = {
    {"q4", "Phi-3-mini-128k-instruct-Q4_K_M.gguf", -1, NULL},
};
static const pf_pull_file phi35_mini[] = {
    {"q4", "Phi-3.5-mini-instruct-Q4_K_M.gguf", -1, NULL},
};
/* Two public manifests disagree on this file's sha256, so none is pinned. */
static const pf_pull_file bge_small[] = {
    {"f16", "bge-small-en-v1.5-f16.gguf", -1, NULL},
    {"q8", "bge-small-en-v1.5-q8_0.gguf", -1, NULL},
};
static const pf_pull_file minilm_l6[] = {
    {"q8", "all-MiniLM-L6-v2.Q8_0.gguf", -1, NULL},
    {"q4", "all-MiniLM-L6-v2.Q4_K_M.gguf", -1, NULL},
};
/* Size 146146432 is given by two independent manifests; the sha256 by one of them, pinned to
 * repo revision 0188c9bf. We fetch main: if the file there ever changes, the pull fails with a
 * checksum mismatch rather than install an unverified file. */
static const pf_pull_file nomic_v15[] = {
    {"f16", "nomic-embed-text-v1.5.f16.gguf", -1, NULL},
    {"q8", "nomic-embed-text-v1.5.Q8_0.gguf", 146146432,
     "3e24342164b3d94991ba9692fdc0dd08e3fd7362e0aacc396a9a5c54a544c3b7"},
};

#define FILES(a) a, (int)(sizeof a / sizeof a[0])
static const pf_pull_model registry[] = {
    {"phi-3-mini-4k-instruct", "microsoft/Phi-3-mini-4k-instruct-gguf", "chat", FILES(phi3_mini_4k)},
    {"phi-3-mini-128k-instruct", "bartowski/Phi-3-mini-128k-instruct-GGUF", "chat", FILES(phi3_mini_128k)},
    {"phi-3.5-mini-instruct", "bartowski/Phi-3.5-mini-instruct-GGUF", "chat", FILES(phi35_mini)},
    {"bge-small-en-v1.5", "CompendiumLabs/bge-small-en-v1.5-gguf", "embed", FILES(bge_small)},
    {"all-minilm-l6-v2", "leliuga/all-MiniLM-L6-v2-GGUF", "embed", FILES(minilm_l6)},
    {"nomic-embed-text-v1.5", "nomic-ai/nomic-embed-text-v1.5-GGUF", "embed", FILES(nomic_v15)},
};

const pf_pull_model *pf_pull_registry(int *n_models) {
    if (n_models) *n_models = (int)(sizeof registry / sizeof registry[0]);
    return registry;
}

int pf_pull_lookup(const char *name_variant, const pf_pull_model **model, const pf_pull_file **file,
                   pf_error *err) {
    if (!name_variant || !*name_variant) return pf_error_set(err, PF_ERR_ARG, "pull: empty model name");
    const char *colon = strchr(name_variant, ':');
    size_t name_len = colon ? (size_t)(colon - name_variant) : strlen(name_variant);
    const char *variant = colon ? colon + 1 : NULL;
    int n = 0;
    const pf_pull_model *reg = pf_pull_registry(&n);
    for (int i = 0; i < n; i++) {
        if (strlen(reg[i].name) != name_len || strncmp(reg[i].name, name_variant, name_len)) continue;
        if (!variant || !*variant) {
            if (model) *model = &reg[i];
            if (file) *file = &reg[i].files[0];
            return PF_OK;
        }
        char known[128] = "";
        for (int k = 0; k < reg[i].n_files; k++) {
            if (!strcmp(reg[i].files[k].variant, variant)) {
                if (model) *model = &reg[i];
                if (file) *file = &reg[i].files[k];
                return PF_OK;
            }
            size_t used = strlen(known);
            snprintf(known + used, sizeof known - used, "%s%s", k ? ", " : "", reg[i].files[k].variant);
        }
        return pf_error_set(err, PF_ERR_NOT_FOUND, "%s: no variant '%s' (known: %s)", reg[i].name, variant, known);
    }
    return pf_error_set(err, PF_ERR_NOT_FOUND, "'%.*s' is not a model phiforge pull knows (phiforge pull --list)",
                        (int)name_len, name_variant);
}

int pf_pull_cache_dir(char *out, size_t cap, pf_error *err) {
    const char *env = getenv("PHIFORGE_CACHE");
    int n;
    if (env && *env) n = snprintf(out, cap, "%s", env);
    else if ((env = getenv("XDG_CACHE_HOME")) && *env) n = snprintf(out, cap, "%s/phiforge", env);
    else if ((env = getenv("HOME")) && *env) n = snprintf(out, cap, "%s/.cache/phiforge", env);
    else return pf_error_set(err, PF_ERR_ARG, "pull: no cache directory (set PHIFORGE_CACHE or HOME)");
    if (n < 0 || (size_t)n >= cap) return pf_error_set(err, PF_ERR_ARG, "pull: cache directory path too long");
    return PF_OK;
}

int pf_pull_local_path(const pf_pull_model *m, const pf_pull_file *f, char *out, size_t cap, pf_error *err) {
    char dir[4096];
    int rc = pf_pull_cache_dir(dir, sizeof dir, err);
    if (rc) return rc;
    int n = snprintf(out, cap, "%s/%s/%s", dir, m->name, f->file);
    if (n < 0 || (size_t)n >= cap) return pf_error_set(err, PF_ERR_ARG, "pull: local path of %s too long", f->file);
    return PF_OK;
}

int pf_pull_url(const pf_pull_model *m, const pf_pull_file *f, char *out, size_t cap, pf_error *err) {
    const char *hub = getenv("PHIFORGE_HUB_URL");
    if (!hub || !*hub) hub = "https://huggingface.co";
    size_t hl = strlen(hub);
    while (hl > 0 && hub[hl - 1] == '/') hl--; /* "http://mirror/" and "http://mirror" alike */
    int n = snprintf(out, cap, "%.*s/%s/resolve/main/%s", (int)hl, hub, m->repo, f->file);
    if (n < 0 || (size_t)n >= cap) return pf_error_set(err, PF_ERR_ARG, "pull: URL of %s too long", f->file);
    return PF_OK;
}
