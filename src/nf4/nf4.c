/* NF4 tensors: streaming quantization (rows in, 4-bit codes + exact block absmax out), double
 * quantization of the absmax values once every row is in, dequantization, storage cost.
 * The arithmetic follows bitsandbytes' CUDA kernels (kQuantizeBlockwise) operation by operation:
 *   codes:   x = w · (1 / absmax) in float, code = dQuantizeNF4(x);
 *   scales:  offset = mean(absmax); v = absmax - offset; per 256 values s = max |v|,
 *            q = dQuantize(map8, v · (1 / s)).
 * A block whose absmax is 0 gets code 0 everywhere, as the kernel does (0 · inf = NaN takes its
 * all-false branch); it dequantizes to 0 · absmax = 0 all the same. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nf4/nf4_internal.h"

void pf_nf4_free(pf_nf4_tensor *t) {
    if (t == NULL) return;
    free(t->codes);
    free(t->absmax_q);
    free(t->absmax_scale);
    free(t->absmax_f32);
    memset(t, 0, sizeof *t);
}

int pf_nf4_init(pf_nf4_tensor *t, int64_t n_out, int64_t n_in, pf_error *err) {
    if (t == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_nf4_init: tensor is NULL");
    memset(t, 0, sizeof *t);
    if (n_out <= 0 || n_in <= 0 || n_in % PF_NF4_BLOCK != 0)
        return pf_error_set(err, PF_ERR_ARG, "pf_nf4_init: shape %lld x %lld: need n_out > 0 and n_in a positive multiple of %d",
                            (long long)n_out, (long long)n_in, PF_NF4_BLOCK);
    if (n_out > INT64_MAX / n_in / 2)
        return pf_error_set(err, PF_ERR_ARG, "pf_nf4_init: shape %lld x %lld too large", (long long)n_out, (long long)n_in);
    t->n_out = n_out;
    t->n_in = n_in;
    t->n_blocks = n_out * (n_in / PF_NF4_BLOCK);
    t->n_scales = (t->n_blocks + PF_NF4_DQ_BLOCK - 1) / PF_NF4_DQ_BLOCK;
    t->codes = malloc((size_t)(n_out * n_in / 2));
    t->absmax_q = malloc((size_t)t->n_blocks);
    t->absmax_scale = malloc((size_t)t->n_scales * sizeof(float));
    t->absmax_f32 = malloc((size_t)t->n_blocks * sizeof(float));
    if (!t->codes || !t->absmax_q || !t->absmax_scale || !t->absmax_f32) {
        pf_nf4_free(t);
        return pf_error_set(err, PF_ERR_NOMEM, "pf_nf4_init: out of memory for a %lld x %lld NF4 tensor",
                            (long long)n_out, (long long)n_in);
    }
    return PF_OK;
}

/* One block of 64 weights -> 32 packed bytes; returns its absmax, or -1 when a weight is not
 * finite (its index in *bad). */
static float quantize_block(const float *w, uint8_t *out, int *bad) {
    float amax = 0.0f;
    for (int i = 0; i < PF_NF4_BLOCK; i++) {
        if (!isfinite(w[i])) {
            *bad = i;
            return -1.0f;
        }
        float a = fabsf(w[i]);
        if (a > amax) amax = a;
    }
    if (amax == 0.0f) {
        memset(out, 0, PF_NF4_BLOCK / 2);
        return 0.0f;
    }
    const float inv = 1.0f / amax;
    for (int i = 0; i < PF_NF4_BLOCK; i += 2)
        out[i / 2] = (uint8_t)(pf_nf4_nearest(w[i] * inv) << 4 | pf_nf4_nearest(w[i + 1] * inv));
    return amax;
}

/* Rows [row0, row0 + n_rows) of t from `rows`; on a non-finite weight returns its flat index in
 * the tensor (else -1). */
static int64_t quantize_rows_at(pf_nf4_tensor *t, int64_t row0, const float *rows, int64_t n_rows) {
    const int64_t bpr = t->n_in / PF_NF4_BLOCK;
    for (int64_t r = 0; r < n_rows; r++) {
        const int64_t row = row0 + r;
        for (int64_t b = 0; b < bpr; b++) {
            const int64_t j = row * bpr + b;
            int bad = 0;
            float amax = quantize_block(rows + r * t->n_in + b * PF_NF4_BLOCK, t->codes + j * (PF_NF4_BLOCK / 2), &bad);
            if (amax < 0.0f) return row * t->n_in + b * PF_NF4_BLOCK + bad;
            t->absmax_f32[j] = amax;
        }
    }
    return -1;
}

static int append_check(const pf_nf4_tensor *t, const void *rows, int64_t n_rows, const char *fn, pf_error *err) {
    if (t == NULL || t->codes == NULL || rows == NULL)
        return pf_error_set(err, PF_ERR_ARG, "%s: %s", fn, rows == NULL ? "rows is NULL" : "tensor not initialized");
    if (t->ready) return pf_error_set(err, PF_ERR_ARG, "%s: tensor already finished", fn);
    if (n_rows < 0 || n_rows > t->n_out - t->rows_done)
        return pf_error_set(err, PF_ERR_ARG, "%s: %lld rows after %lld of %lld", fn, (long long)n_rows,
                            (long long)t->rows_done, (long long)t->n_out);
    return PF_OK;
}

static int bad_weight(const pf_nf4_tensor *t, int64_t at, const char *fn, pf_error *err) {
    return pf_error_set(err, PF_ERR_FORMAT, "%s: weight [row %lld, column %lld] is not finite", fn, (long long)(at / t->n_in),
                        (long long)(at % t->n_in));
}

int pf_nf4_append_rows(pf_nf4_tensor *t, const float *rows, int64_t n_rows, pf_error *err) {
    int rc = append_check(t, rows, n_rows, "pf_nf4_append_rows", err);
    if (rc != PF_OK) return rc;
    const int64_t bad = quantize_rows_at(t, t->rows_done, rows, n_rows);
    if (bad >= 0) return bad_weight(t, bad, "pf_nf4_append_rows", err);
    t->rows_done += n_rows;
    return PF_OK;
}

typedef struct append_job {
    pf_nf4_tensor *t;
    const float *rows;
    int64_t row0;
    _Atomic int64_t bad; /* smallest bad flat index seen, INT64_MAX when none */
} append_job;

static void append_range(void *arg, int64_t r0, int64_t r1) {
    append_job *j = arg;
    const int64_t b = quantize_rows_at(j->t, j->row0 + r0, j->rows + r0 * j->t->n_in, r1 - r0);
    if (b < 0) return;
    int64_t cur = atomic_load(&j->bad);
    while (b < cur && !atomic_compare_exchange_weak(&j->bad, &cur, b)) {
    }
}

int pf_nf4_append_rows_mt(pf_compute *c, pf_nf4_tensor *t, const float *rows, int64_t n_rows, pf_error *err) {
    int rc = append_check(t, rows, n_rows, "pf_nf4_append_rows_mt", err);
    if (rc != PF_OK) return rc;
    if (c == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_nf4_append_rows_mt: compute context is NULL");
    append_job j = {t, rows, t->rows_done, INT64_MAX};
    /* rows are independent: each thread quantizes its own range in place */
    pf_compute_parallel(c, n_rows, n_rows * t->n_in < 65536 ? n_rows + 1 : 2, append_range, &j);
    const int64_t bad = atomic_load(&j.bad);
    if (bad != INT64_MAX) return bad_weight(t, bad, "pf_nf4_append_rows_mt", err);
    t->rows_done += n_rows;
    return PF_OK;
}

int pf_nf4_quantize_tensor(pf_compute *c, const pf_tensor_info *src, pf_nf4_tensor *t, pf_error *err) {
    if (c == NULL || src == NULL || t == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_nf4_quantize_tensor: NULL argument");
    if (src->n_dims != 2)
        return pf_error_set(err, PF_ERR_ARG, "pf_nf4_quantize_tensor: tensor '%s' has %u dimensions, NF4 holds matrices", src->name,
                            src->n_dims);
    int rc = pf_nf4_init(t, src->ne[1], src->ne[0], err);
    if (rc != PF_OK) return rc;
    /* about 4 MB of f32 rows at a time: the full-precision tensor is never held */
    const int64_t chunk = (int64_t)((size_t)1 << 20) / src->ne[0] > 0 ? (int64_t)((size_t)1 << 20) / src->ne[0] : 1;
    float *buf = malloc((size_t)(chunk * src->ne[0]) * sizeof(float));
    if (buf == NULL) rc = pf_error_set(err, PF_ERR_NOMEM, "pf_nf4_quantize_tensor: out of memory");
    const size_t rs = pf_row_size(src->type, src->ne[0]);
    if (rc == PF_OK && (rs == 0 || rs * (size_t)src->ne[1] != src->nbytes))
        rc = pf_error_set(err, PF_ERR_FORMAT, "pf_nf4_quantize_tensor: tensor '%s' of type %s: %zu bytes for %lld rows", src->name,
                          pf_type_name(src->type), src->nbytes, (long long)src->ne[1]);
    for (int64_t r = 0; r < src->ne[1] && rc == PF_OK; r += chunk) {
        const int64_t nr = src->ne[1] - r < chunk ? src->ne[1] - r : chunk;
        rc = pf_dequantize(c, (const uint8_t *)src->data + (size_t)r * rs, src->type, nr, src->ne[0], buf, err);
        if (rc == PF_OK) rc = pf_nf4_append_rows_mt(c, t, buf, nr, err);
    }
    free(buf);
    if (rc == PF_OK) rc = pf_nf4_finish(t, err);
    if (rc != PF_OK) {
        if (err && rc == PF_ERR_FORMAT && !strstr(err->msg, src->name)) {
            char m[sizeof err->msg];
            snprintf(m, sizeof m, "%s", err->msg);
            pf_error_set(err, rc, "tensor '%s': %s", src->name, m);
        }
        pf_nf4_free(t);
    }
    return rc;
}

int pf_nf4_finish(pf_nf4_tensor *t, pf_error *err) {
    if (t == NULL || t->codes == NULL) return pf_error_set(err, PF_ERR_ARG, "pf_nf4_finish: tensor not initialized");
    if (t->ready) return PF_OK;
    if (t->rows_done != t->n_out)
        return pf_error_set(err, PF_ERR_ARG, "pf_nf4_finish: only %lld of %lld rows were appended", (long long)t->rows_done,
                            (long long)t->n_out);
    /* offset: the mean of every block absmax (summed in double; torch's float32 mean can differ
     * in the last bit) */
    double sum = 0.0;
    for (int64_t j = 0; j < t->n_blocks; j++) sum += t->absmax_f32[j];
    t->offset = (float)(sum / (double)t->n_blocks);
    for (int64_t s = 0; s < t->n_scales; s++) {
        const int64_t j0 = s * PF_NF4_DQ_BLOCK;
        const int64_t j1 = j0 + PF_NF4_DQ_BLOCK < t->n_blocks ? j0 + PF_NF4_DQ_BLOCK : t->n_blocks;
        float smax = 0.0f;
        for (int64_t j = j0; j < j1; j++) {
            float v = fabsf(t->absmax_f32[j] - t->offset);
            if (v > smax) smax = v;
        }
        t->absmax_scale[s] = smax;
        if (smax == 0.0f) { /* every absmax equals the offset: index 0 (the kernel's NaN path) */
            memset(t->absmax_q + j0, 0, (size_t)(j1 - j0));
            continue;
        }
        const float inv = 1.0f / smax;
        for (int64_t j = j0; j < j1; j++) t->absmax_q[j] = pf_nf4_dq_nearest((t->absmax_f32[j] - t->offset) * inv);
    }
    free(t->absmax_f32);
    t->absmax_f32 = NULL;
    t->ready = true;
    return PF_OK;
}

int pf_nf4_quantize(pf_nf4_tensor *t, const float *w, int64_t n_out, int64_t n_in, pf_error *err) {
    int rc = pf_nf4_init(t, n_out, n_in, err);
    if (rc == PF_OK) rc = pf_nf4_append_rows(t, w, n_out, err);
    if (rc == PF_OK) rc = pf_nf4_finish(t, err);
    if (rc != PF_OK) pf_nf4_free(t);
    return rc;
}

int pf_nf4_dequantize_rows(const pf_nf4_tensor *t, int64_t r0, int64_t n_rows, float *dst, pf_error *err) {
    if (t == NULL || dst == NULL || !t->ready)
        return pf_error_set(err, PF_ERR_ARG, "pf_nf4_dequantize_rows: %s",
                            dst == NULL ? "dst is NULL" : "tensor missing or not finished");
    if (r0 < 0 || n_rows < 0 || r0 > t->n_out - n_rows)
        return pf_error_set(err, PF_ERR_ARG, "pf_nf4_dequantize_rows: rows [%lld, %lld) outside 0..%lld", (long long)r0,
                            (long long)(r0 + n_rows), (long long)t->n_out);
    const float *lv = pf_nf4_levels();
    const int64_t j0 = r0 * (t->n_in / PF_NF4_BLOCK), nb = n_rows * (t->n_in / PF_NF4_BLOCK);
    for (int64_t b = 0; b < nb; b++) {
        const float a = pf_nf4_block_absmax(t, j0 + b);
        const uint8_t *q = t->codes + (j0 + b) * (PF_NF4_BLOCK / 2);
        float *o = dst + b * PF_NF4_BLOCK;
        for (int i = 0; i < PF_NF4_BLOCK / 2; i++) {
            o[2 * i] = lv[q[i] >> 4] * a;
            o[2 * i + 1] = lv[q[i] & 15] * a;
        }
    }
    return PF_OK;
}

size_t pf_nf4_bytes(const pf_nf4_tensor *t) {
    if (t == NULL || !t->ready) return 0;
    return (size_t)(t->n_out * t->n_in / 2) + (size_t)t->n_blocks + (size_t)t->n_scales * sizeof(float) + sizeof(float);
}

double pf_nf4_bits_per_weight(const pf_nf4_tensor *t) {
    if (t == NULL || !t->ready) return 0.0;
    return 8.0 * (double)pf_nf4_bytes(t) / ((double)t->n_out * (double)t->n_in);
}
