/* `phiforge init`: writes a Phi-3 model with random weights, streaming. Each tensor is produced
 * by the writer's fill callback chunk by chunk: the pool generates ~1M f32 values (spread over
 * the threads), pf_quantize turns them into the target type, and the next chunk reuses the
 * buffer, so memory stays at one chunk plus the writer's one-tensor buffer. Every value is a
 * pure function of (seed, tensor name, element index), so the file depends neither on the
 * thread count nor on the chunking. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "init/init_internal.h"

#define CHUNK_ELEMS ((int64_t)1 << 20) /* f32 values per chunk: 4 MiB, stays in the LLC */

pf_init_params pf_init_default_params(void) {
    pf_init_params p;
    memset(&p, 0, sizeof p);
    p.recipe = (pf_quant_recipe){PF_TYPE_F16, false, 1};
    return p;
}

/* ---- random values -------------------------------------------------------------------------- */

/* splitmix64's finalizer: a bijective mix, so (key + counter) gives a counter-based stream. */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t tensor_key(uint64_t seed, const char *name) {
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a of the name: values do not depend on order */
    for (const unsigned char *s = (const unsigned char *)name; *s; s++) h = (h ^ *s) * 0x100000001B3ull;
    return mix64(mix64(seed) ^ h);
}

/* Approximately N(0, 1): the sum of four 16-bit uniforms (Irwin-Hall, |x| <= 3.46), one hash
 * per value — bell-shaped like trained weights, and cheap enough that quantization dominates. */
static inline float gauss_at(uint64_t key, uint64_t idx) {
    uint64_t h = mix64(key + (idx + 1) * 0x9E3779B97F4A7C15ull);
    int64_t s = (int64_t)(h & 0xFFFF) + (int64_t)((h >> 16) & 0xFFFF) + (int64_t)((h >> 32) & 0xFFFF) +
                (int64_t)(h >> 48) - 131070;
    return (float)s * (float)(1.7320508075688772 / 65536.0); /* var of the sum = 4/12 -> 1 */
}

typedef struct gen_task {
    float *dst;
    uint64_t key;
    int64_t idx0, n;   /* element indices [idx0, idx0 + n) of the tensor */
    int64_t ne0;       /* row length, to split on row boundaries        */
    float mean, std;
} gen_task;

static void gen_run(void *vctx, int ith, int nth) {
    const gen_task *g = vctx;
    const int64_t rows = g->n / g->ne0, per = (rows + nth - 1) / nth;
    const int64_t r0 = per * ith, r1 = r0 + per < rows ? r0 + per : rows;
    for (int64_t i = r0 * g->ne0; i < r1 * g->ne0; i++)
        g->dst[i] = g->mean + g->std * gauss_at(g->key, (uint64_t)(g->idx0 + i));
}

/* ---- the fill callback ---------------------------------------------------------------------- */

typedef struct init_job {
    const pf_init_params *p;
    const pf_init_tensor *ts;
    pf_compute *c;
    float *buf; /* CHUNK_ELEMS, or one row when longer */
    size_t buf_cap;
    double done, total;
} init_job;

static int fill_tensor(void *vctx, int64_t i, void *dst, size_t nbytes, pf_error *err) {
    init_job *j = vctx;
    const pf_init_tensor *t = &j->ts[i];
    const pf_init_preset *pre = j->p->preset;
    const int64_t ne0 = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
    if (nbytes != t->nbytes) return pf_error_set(err, PF_ERR_ARG, "init: size mismatch for %s", t->name);
    if (!strncmp(t->name, "rope_factors_", 13)) { /* the preset's real values, not random */
        memcpy(dst, strstr(t->name, "long") ? pre->rope_long : pre->rope_short, nbytes);
        j->done += (double)nbytes;
        return PF_OK;
    }
    /* matrices ~N(0, 1/n_in) keep activations O(1) through every layer; norms ~1 */
    gen_task g = {.key = tensor_key(j->p->seed, t->name), .ne0 = ne0, .mean = 0.0f,
                  .std = (float)(1.0 / sqrt((double)ne0))};
    if (t->n_dims == 1) g.mean = 1.0f, g.std = 0.02f;
    int64_t chunk = CHUNK_ELEMS / ne0 > 0 ? CHUNK_ELEMS / ne0 : 1;
    if ((size_t)(chunk * ne0) > j->buf_cap) {
        float *nb = realloc(j->buf, (size_t)(chunk * ne0) * sizeof(float));
        if (nb == NULL) return pf_error_set(err, PF_ERR_NOMEM, "init: out of memory for a row of %s", t->name);
        j->buf = nb, j->buf_cap = (size_t)(chunk * ne0);
    }
    const size_t row_bytes = pf_row_size(t->type, ne0);
    for (int64_t r = 0; r < rows; r += chunk) {
        const int64_t n = rows - r < chunk ? rows - r : chunk;
        uint8_t *out = (uint8_t *)dst + (size_t)r * row_bytes;
        g.idx0 = r * ne0, g.n = n * ne0;
        g.dst = t->type == PF_TYPE_F32 ? (float *)(void *)out : j->buf; /* F32: generate in place */
        pf_pool_run(pf_compute_pool(j->c), gen_run, &g);
        if (t->type != PF_TYPE_F32) {
            int rc = pf_quantize(j->c, j->buf, t->type, n, ne0, out, err);
            if (rc != PF_OK) return rc;
        }
        j->done += (double)(n * (int64_t)row_bytes);
        if (j->p->progress) j->p->progress(j->p->progress_user, j->done, j->total, t->name);
    }
    return PF_OK;
}

/* ---- vocabulary search ---------------------------------------------------------------------- */

/* Appends s to the NUL-terminated dst of cap bytes, truncating. */
static void append(char *dst, size_t cap, const char *s) {
    size_t n = strlen(dst), m = strlen(s);
    if (n + m + 1 > cap) m = cap - n - 1;
    memcpy(dst + n, s, m);
    dst[n + m] = '\0';
}

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int pf_init_find_vocab(char *path, size_t cap, pf_error *err) {
    if (path == NULL || cap == 0) return pf_error_set(err, PF_ERR_ARG, "init: no buffer for the vocabulary path");
    const char *env = getenv("PHIFORGE_VOCAB");
    if (env && *env) {
        if (!is_file(env))
            return pf_error_set(err, PF_ERR_NOT_FOUND, "init: PHIFORGE_VOCAB=%s: no such file", env);
        snprintf(path, cap, "%s", env);
        return PF_OK;
    }
    char exe[PATH_MAX] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    static const char *const rel[] = {"/../data/", "/../../data/", "/../share/phiforge/", "/data/"};
    char tried[1024] = "";
    for (size_t i = 0; i < sizeof rel / sizeof rel[0] + 1; i++) {
        char cand[PATH_MAX + 64];
        if (i < sizeof rel / sizeof rel[0]) {
            if (!slash) continue;
            snprintf(cand, sizeof cand, "%s%sphi3-vocab.gguf", exe, rel[i]);
        } else {
            snprintf(cand, sizeof cand, "data/phi3-vocab.gguf");
        }
        if (is_file(cand)) {
            char *real = realpath(cand, NULL);
            snprintf(path, cap, "%s", real ? real : cand);
            free(real);
            return PF_OK;
        }
        if (tried[0]) append(tried, sizeof tried, ", ");
        append(tried, sizeof tried, cand);
    }
    return pf_error_set(err, PF_ERR_NOT_FOUND,
                        "init: the Phi-3 tokenizer data (phi3-vocab.gguf, shipped in the source tree's data/) "
                        "was not found; looked at %s. Set PHIFORGE_VOCAB to its path",
                        tried);
}

/* ---- the file ------------------------------------------------------------------------------- */

int pf_init_write(const pf_init_params *p, const char *path, pf_error *err) {
    if (p == NULL || path == NULL) return pf_error_set(err, PF_ERR_ARG, "init: NULL argument");
    int rc = pf_init_check_preset(p->preset, err);
    if (rc != PF_OK) return rc;
    char vpath[PATH_MAX];
    if (p->vocab_path) snprintf(vpath, sizeof vpath, "%s", p->vocab_path);
    else if ((rc = pf_init_find_vocab(vpath, sizeof vpath, err)) != PF_OK) return rc;

    pf_gguf *vocab = NULL;
    pf_gguf_writer *w = NULL;
    init_job j = {.p = p};
    int64_t n_vocab = 0, nt = 0;
    if ((rc = pf_gguf_open(vpath, &vocab, err)) != PF_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        return pf_error_set(err, rc, "init: cannot read the tokenizer data: %s", msg);
    }
    if ((rc = pf_init_vocab_size(vocab, &n_vocab, err)) || (rc = pf_gguf_writer_create(&w, err)) ||
        (rc = pf_init_add_metadata(w, p->preset, &p->recipe, vocab, err)))
        goto done;
    if (!p->vocab_only) {
        if ((nt = pf_init_tensors(p->preset, &p->recipe, n_vocab, NULL, 0, err)) < 0) { rc = (int)nt; goto done; }
        pf_init_tensor *ts = calloc((size_t)nt, sizeof *ts);
        if ((j.ts = ts) == NULL) { rc = pf_error_set(err, PF_ERR_NOMEM, "init: out of memory"); goto done; }
        pf_init_tensors(p->preset, &p->recipe, n_vocab, ts, nt, err);
        for (int64_t i = 0; i < nt && rc == PF_OK; i++) {
            rc = pf_gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne, NULL, err);
            j.total += (double)ts[i].nbytes;
        }
        if (rc == PF_OK) rc = pf_compute_create(p->n_threads, PF_ISA_AUTO, &j.c, err);
        if (rc != PF_OK) goto done;
    }
    rc = pf_gguf_writer_write(w, path, p->vocab_only ? NULL : fill_tensor, &j, err);
done:
    free((void *)j.ts);
    free(j.buf);
    pf_compute_free(j.c);
    pf_gguf_writer_free(w);
    pf_gguf_close(vocab);
    return rc;
}
