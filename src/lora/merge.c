/* Merging LoRA adapters into a base model: W' = W + Σ_i scale_i · s_i · B_i·A_i (s_i = alpha/r
 * or alpha/sqrt(r)), streamed tensor by tensor through the GGUF writer's fill callback so that
 * only one chunk of rows is ever held in fp32:
 *   rows [r0, r0 + n) of W  -> dequantize -> + s · B[r0 .. r0+n) · A -> quantize -> output
 * The delta of a chunk is one matmul: (n × r rows of B) · Aᵀᵀ, computed by pf_matmul with Aᵀ
 * (n_in × r, prepared once per pair) as an F32 weight, so it runs threaded and vectorized.
 * Unadapted tensors whose type does not change are written straight from the base's mapping. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "lora/lora_internal.h"

typedef struct adapt {       /* one pair applied to one base tensor */
    const pf_lora_pair *p;
    float *at;               /* Aᵀ: n_in × r */
    float s;                 /* user scale · pair scale */
} adapt;

typedef struct merge_job {
    const pf_gguf *in;
    pf_compute *c;
    pf_type *dst_type;       /* per tensor                           */
    adapt **ad;              /* per tensor: list of adaptations      */
    int *n_ad;
    float *rows, *delta;     /* chunk buffers, chunk_floats each     */
    size_t chunk_floats;
    double done, total;
    const pf_merge_params *p;
} merge_job;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fill(void *ctx, int64_t i, void *dst, size_t nbytes, pf_error *err) {
    merge_job *j = ctx;
    const pf_tensor_info *t = pf_gguf_tensor(j->in, i);
    const int64_t ne0 = t->ne[0], rows = pf_tensor_nelements(t) / ne0;
    const size_t src_row = pf_row_size(t->type, ne0), dst_row = pf_row_size(j->dst_type[i], ne0);
    if (dst_row * (size_t)rows != nbytes) return pf_error_set(err, PF_ERR_ARG, "merge: size mismatch for %s", t->name);
    const int64_t chunk = (int64_t)(j->chunk_floats / (size_t)ne0);
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        const int64_t n = rows - r0 < chunk ? rows - r0 : chunk;
        int rc = pf_dequantize(j->c, (const char *)t->data + (size_t)r0 * src_row, t->type, n, ne0, j->rows, err);
        for (int k = 0; rc == PF_OK && k < j->n_ad[i]; k++) {
            const adapt *a = &j->ad[i][k];
            /* delta[n × n_in] = B[r0.., :] (n × r) · A (r × n_in) = X · Wᵀ with X = B rows, W = Aᵀ */
            rc = pf_matmul(j->c, a->at, PF_TYPE_F32, ne0, a->p->r, a->p->b + r0 * a->p->r, n, j->delta, err);
            const int64_t len = n * ne0;
            for (int64_t e = 0; rc == PF_OK && e < len; e++) j->rows[e] += a->s * j->delta[e];
        }
        if (rc == PF_OK) rc = pf_quantize(j->c, j->rows, j->dst_type[i], n, ne0, (char *)dst + (size_t)r0 * dst_row, err);
        if (rc != PF_OK) return rc;
        j->done += (double)n * (double)src_row;
        if (j->p && j->p->progress) j->p->progress(j->p->user, j->done, j->total, t->name);
    }
    /* This tensor of the base is not read again: drop its pages from the process (they stay in
     * the page cache and would be read back from the file if touched), so that the resident set
     * stays near one chunk of rows instead of growing to the whole model. */
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), b = (uintptr_t)t->data, e = b + t->nbytes;
    const uintptr_t b_up = (b + page - 1) & ~(page - 1), e_down = e & ~(page - 1);
    if (e_down > b_up) madvise((void *)b_up, e_down - b_up, MADV_DONTNEED);
    return PF_OK;
}

/* Finds the base tensor of every pair of every adapter and checks its shape. */
static int plan(merge_job *j, pf_lora_weights *w, const float *scales, int n, const char *const *paths, pf_error *err) {
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < w[i].n; k++) {
            const pf_lora_pair *p = &w[i].pairs[k];
            const int64_t ti = pf_gguf_find_tensor(j->in, p->base);
            const pf_tensor_info *t = ti >= 0 ? pf_gguf_tensor(j->in, ti) : NULL;
            if (!t) return pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: pair %s: the base has no tensor of that name", paths[i], p->base);
            if (t->n_dims != 2 || t->ne[0] != p->n_in || t->ne[1] != p->n_out)
                return pf_error_set(err, PF_ERR_FORMAT, "%s: pair %s: shape %lld -> %lld does not fit the base tensor ne [%lld, %lld]",
                                    paths[i], p->base, (long long)p->n_in, (long long)p->n_out, (long long)t->ne[0],
                                    (long long)t->ne[1]);
            adapt *l = realloc(j->ad[ti], (size_t)(j->n_ad[ti] + 1) * sizeof *l);
            float *at = malloc((size_t)(p->n_in * p->r) * sizeof *at);
            if (l) j->ad[ti] = l;
            if (!l || !at) return free(at), pf_error_set(err, PF_ERR_NOMEM, "merge: out of memory");
            for (int64_t q = 0; q < p->r; q++) /* transpose A (r × n_in) into Aᵀ (n_in × r) */
                for (int64_t c = 0; c < p->n_in; c++) at[c * p->r + q] = p->a[q * p->n_in + c];
            l[j->n_ad[ti]++] = (adapt){.p = p, .at = at, .s = (scales ? scales[i] : 1.0f) * pf_lora_pair_scale(&w[i], p)};
        }
    return PF_OK;
}

int pf_lora_merge(const char *base_path, const char *const *adapters, const float *scales, int n, const char *out_path,
                  const pf_merge_params *p, pf_merge_stats *stats, pf_error *err) {
    if (!base_path || !out_path || n < 0 || (n > 0 && !adapters))
        return pf_error_set(err, PF_ERR_ARG, "pf_lora_merge: invalid argument");
    const double t0 = now_s();
    pf_quant_recipe recipe = {0};
    const bool retype = p && p->type;
    int rc = retype ? pf_quant_recipe_parse(p->type, &recipe, err) : PF_OK;
    if (rc != PF_OK) return rc;
    merge_job j = {.p = p};
    pf_gguf *in = NULL;
    pf_gguf_writer *w = NULL;
    pf_lora_weights *lw = calloc((size_t)n + 1, sizeof *lw);
    if (!lw) return pf_error_set(err, PF_ERR_NOMEM, "merge: out of memory");
    for (int i = 0; rc == PF_OK && i < n; i++) rc = pf_lora_read(adapters[i], NULL, &lw[i], err);
    if (rc == PF_OK) rc = pf_gguf_open(base_path, &in, err);
    int64_t nt = in ? pf_gguf_n_tensors(in) : 0;
    if (rc == PF_OK) {
        j.in = in;
        j.dst_type = calloc((size_t)nt + 1, sizeof *j.dst_type);
        j.ad = calloc((size_t)nt + 1, sizeof *j.ad);
        j.n_ad = calloc((size_t)nt + 1, sizeof *j.n_ad);
        if (!j.dst_type || !j.ad || !j.n_ad) rc = pf_error_set(err, PF_ERR_NOMEM, "merge: out of memory");
    }
    if (rc == PF_OK) rc = plan(&j, lw, scales, n, adapters, err);
    if (rc == PF_OK) rc = pf_compute_create(p ? p->n_threads : 0, PF_ISA_AUTO, &j.c, err);
    if (rc == PF_OK) rc = pf_gguf_writer_create(&w, err);
    if (rc == PF_OK) rc = pf_gguf_writer_copy_kvs(w, in, err);
    int64_t n_layer = 0, max_ne0 = 1, n_merged = 0;
    const char *arch = NULL;
    if (rc == PF_OK && pf_gguf_get_str(in, "general.architecture", &arch, NULL) == PF_OK) {
        char key[256];
        snprintf(key, sizeof key, "%s.block_count", arch);
        pf_gguf_get_int(in, key, &n_layer, NULL);
    }
    for (int64_t i = 0; rc == PF_OK && i < nt; i++) {
        const pf_tensor_info *t = pf_gguf_tensor(in, i);
        pf_type ty = retype ? pf_quant_recipe_type(&recipe, t->name, t->n_dims, t->ne[0], t->type, n_layer) : t->type;
        const pf_type_traits *tr = pf_type_get(ty), *src = pf_type_get(t->type);
        const bool rewrite = ty != t->type || j.n_ad[i] > 0;
        if (rewrite && (!tr || !tr->from_float || !tr->is_weight || !src || !src->to_float))
            rc = pf_error_set(err, PF_ERR_UNSUPPORTED, "merge: tensor %s: cannot convert %s to %s", t->name,
                              pf_type_name(t->type), pf_type_name(ty));
        j.dst_type[i] = ty;
        if (rc == PF_OK) rc = pf_gguf_writer_add_tensor(w, t->name, ty, t->n_dims, t->ne, rewrite ? NULL : t->data, err);
        if (rewrite) j.total += (double)t->nbytes, max_ne0 = t->ne[0] > max_ne0 ? t->ne[0] : max_ne0;
        n_merged += j.n_ad[i] > 0;
    }
    if (rc == PF_OK && retype) rc = pf_gguf_writer_set_u32(w, "general.file_type", recipe.file_type, err);
    if (rc == PF_OK) {
        j.chunk_floats = (size_t)max_ne0 * 64; /* 64 rows of the widest tensor; at least 1M floats */
        if (j.chunk_floats < (1u << 20)) j.chunk_floats = 1u << 20;
        j.rows = malloc(j.chunk_floats * sizeof(float));
        j.delta = malloc(j.chunk_floats * sizeof(float));
        if (!j.rows || !j.delta) rc = pf_error_set(err, PF_ERR_NOMEM, "merge: out of memory");
    }
    if (rc == PF_OK) rc = pf_gguf_writer_write(w, out_path, fill, &j, err);
    if (rc == PF_OK && stats) {
        pf_gguf *o = NULL;
        *stats = (pf_merge_stats){.n_tensors = nt, .n_merged = n_merged, .in_bytes = (double)pf_gguf_file_size(in)};
        if (pf_gguf_open(out_path, &o, NULL) == PF_OK) stats->out_bytes = (double)pf_gguf_file_size(o);
        pf_gguf_close(o);
        stats->seconds = now_s() - t0;
    }
    for (int64_t i = 0; j.ad && i < nt; i++) {
        for (int k = 0; k < j.n_ad[i]; k++) free(j.ad[i][k].at);
        free(j.ad[i]);
    }
    free(j.ad), free(j.n_ad), free(j.dst_type), free(j.rows), free(j.delta);
    for (int i = 0; i < n; i++) pf_lora_weights_clear(&lw[i]);
    free(lw);
    pf_compute_free(j.c);
    pf_gguf_writer_free(w);
    pf_gguf_close(in);
    return rc;
}
