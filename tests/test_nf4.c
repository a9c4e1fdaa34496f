/* NF4 with double quantization against an independent straightforward implementation written
 * here from docs/lora-qlora.md §2 (the construction of both tables, the block formulas, the
 * rounding rules of bitsandbytes' kernels), and the NF4 × f32 kernels (scalar and AVX2, 1 and 2
 * threads) against dequantize-then-multiply in double. */
#include <math.h>

#include "testing.h"

static pf_test T;

/* ---- independent table derivations --------------------------------------------------------- */

static float f32(double x) { return (float)x; }

/* torch.linspace(a, b, steps) in float32: start + step·i for the first half, end - step·(steps-1-i)
 * for the second, step = (b - a) / (steps - 1) in float. */
static void linspace_f32(float a, float b, int steps, float *out) {
    const float step = (b - a) / (float)(steps - 1);
    for (int i = 0; i < steps; i++) out[i] = i < steps / 2 ? a + step * (float)i : b - step * (float)(steps - 1 - i);
}

/* Φ⁻¹(p) by bisection on Φ(x) = erfc(-x/√2)/2 (double). */
static double norm_ppf(double p) {
    double lo = -10.0, hi = 10.0;
    for (int i = 0; i < 200; i++) {
        double mid = 0.5 * (lo + hi);
        if (0.5 * erfc(-mid / sqrt(2.0)) < p) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* bitsandbytes create_normal_map(offset=0.9677083, use_extra_value=True): 8 positive quantiles of
 * probabilities linspace(offset, 0.5, 9)[:-1], 7 negative of linspace(offset, 0.5, 8)[:-1], and 0;
 * sorted, divided by the maximum (float32 tensor). */
static void derive_nf4(float out[16]) {
    const float offset = 0.9677083f;
    float p9[9], p8[8];
    linspace_f32(offset, 0.5f, 9, p9);
    linspace_f32(offset, 0.5f, 8, p8);
    int k = 0;
    for (int i = 0; i < 8; i++) out[k++] = f32(norm_ppf(p9[i]));
    for (int i = 0; i < 7; i++) out[k++] = f32(-norm_ppf(p8[i]));
    out[k++] = 0.0f;
    qsort(out, 16, sizeof(float), cmp_float);
    const float mx = out[15];
    for (int i = 0; i < 16; i++) out[i] = out[i] / mx;
}

/* create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8) in float32. */
static void derive_dq_map(float out[256]) {
    int k = 0;
    for (int e = 0; e < 7; e++) {
        const int n = (1 << e) + 1;
        float bnd[65], mean;
        linspace_f32(0.1f, 1.0f, n, bnd);
        const float s = f32(pow(10.0, e - 6));
        for (int i = 0; i + 1 < n; i++) {
            mean = (bnd[i] + bnd[i + 1]) / 2.0f;
            out[k++] = s * mean;
            out[k++] = -s * mean;
        }
    }
    out[k++] = 0.0f;
    out[k++] = 1.0f;
    CHECK(&T, k == 256, "dynamic map has %d values", k);
    qsort(out, 256, sizeof(float), cmp_float);
}

/* NF4 rounding thresholds as bitsandbytes' CUDA kernel has them: float literals written as the
 * shortest decimal of the double midpoint of two neighbouring levels. The midpoint of two floats is
 * often exactly halfway between two floats, so the literal's last decimal digit decides whether the
 * threshold lands just below or just above it. */
static float g_thr[15];

static void derive_thresholds(const float *lv) {
    for (int k = 0; k < 15; k++) {
        const double m = ((double)lv[k] + (double)lv[k + 1]) / 2.0;
        char buf[40];
        for (int prec = 1; prec <= 17; prec++) { /* shortest round-trip decimal, as Python prints it */
            snprintf(buf, sizeof buf, "%.*g", prec, m);
            if (strtod(buf, NULL) == m) break;
        }
        g_thr[k] = strtof(buf, NULL);
    }
}

/* Reference NF4 rounding: the code is the number of thresholds x lies above (x on a threshold
 * takes the lower code, the kernel tests x > threshold; NaN is above none). */
static int ref_nf4_code(float x, const float *lv) {
    (void)lv;
    int code = 0;
    for (int k = 0; k < 15; k++) code += x > g_thr[k];
    return code;
}

/* Exact nearest level (double distances; on an exact tie the lower code). */
static int nearest_level(float x, const float *lv) {
    int best = 0;
    for (int k = 1; k < 16; k++)
        if (fabs((double)x - lv[k]) < fabs((double)x - lv[best])) best = k;
    return best;
}

/* Reference dynamic-map rounding: neighbours a = map[k] <= x < map[k+1] = b, float midpoint
 * (a + b)·0.5f; above it b, below it a, exactly on it the even index (what dQuantize's binary
 * search returns: its last pivot is always even). */
static int ref_dq_code(float x, const float *map) {
    if (x <= map[0]) return 0;
    if (x >= map[255]) return 255;
    int k = 0;
    while (!(map[k] <= x && x < map[k + 1])) k++;
    const float mid = (map[k] + map[k + 1]) * 0.5f;
    if (x > mid) return k + 1;
    if (x < mid) return k;
    return (k % 2 == 0) ? k : k + 1;
}

static void test_tables(void) {
    float lv[16], map[256];
    derive_nf4(lv);
    const float *got = pf_nf4_levels();
    double worst = 0;
    for (int i = 0; i < 16; i++) worst = fmax(worst, fabs((double)lv[i] - got[i]));
    CHECK(&T, worst < 3e-7, "NF4 levels re-derived from N(0,1) quantiles differ by %.3g", worst);
    CHECK(&T, got[0] == -1.0f && got[7] == 0.0f && got[15] == 1.0f, "NF4 has exact -1, 0, +1 at codes 0, 7, 15");
    derive_dq_map(map);
    const float *dm = pf_nf4_dq_map();
    int same = 0;
    for (int i = 0; i < 256; i++) same += map[i] == dm[i];
    CHECK(&T, same == 256, "dynamic map equals the float32 re-derivation at %d of 256 values", same);
    CHECK(&T, fabsf(dm[0] + 0.99297f) < 1e-5f && dm[255] == 1.0f && dm[127] == 0.0f && fabsf(dm[128] - 5.5e-7f) < 1e-12f,
          "dynamic map spans %.6g .. %g, smallest positive %.3g", dm[0], dm[255], dm[128]);

    /* rounding to NF4: it is nearest-level rounding except for the float values that lie on a
     * threshold rounded above the exact midpoint (x > threshold fails there: lower code, half an
     * ulp from the tie); random values, every level, both float neighbours of every threshold,
     * NaN (code 0, the kernel's all-false branch), out-of-range values */
    derive_thresholds(got);
    pf_test_rng rng = {0x1234567};
    int bad = 0, not_nearest = 0, expected_not_nearest = 0;
    for (int i = 0; i < 200000; i++) {
        float x = pf_test_uniform(&rng) * 1.05f;
        if (pf_nf4_nearest(x) != ref_nf4_code(x, got) || pf_nf4_nearest(x) != nearest_level(x, got)) bad++;
    }
    CHECK(&T, bad == 0, "NF4 code of %d of 200000 random values is not the nearest level", bad);
    bad = 0;
    for (int k = 0; k < 16; k++) bad += pf_nf4_nearest(got[k]) != k;
    for (int k = 0; k < 15; k++) {
        const float t = g_thr[k];
        const float xs[3] = {t, nextafterf(t, 2.0f), nextafterf(t, -2.0f)};
        for (int i = 0; i < 3; i++) {
            bad += pf_nf4_nearest(xs[i]) != ref_nf4_code(xs[i], got);
            not_nearest += pf_nf4_nearest(xs[i]) != nearest_level(xs[i], got);
        }
        bad += pf_nf4_nearest(t) != k || pf_nf4_nearest(nextafterf(t, 2.0f)) != k + 1;
        expected_not_nearest += (double)t > ((double)got[k] + (double)got[k + 1]) / 2.0;
    }
    CHECK(&T, bad == 0, "NF4 rounding at the thresholds: %d wrong", bad);
    CHECK(&T, not_nearest == expected_not_nearest, "%d threshold values round away from the nearest level, %d expected",
          not_nearest, expected_not_nearest);
    CHECK(&T, pf_nf4_nearest(NAN) == 0 && pf_nf4_nearest(1.5f) == 15 && pf_nf4_nearest(-1.5f) == 0, "NaN and clamping");

    bad = 0;
    for (int i = 0; i < 100000; i++) {
        float x = pf_test_uniform(&rng);
        if (i % 3 == 0) x *= 1e-3f; /* the fine decades near 0 */
        if (pf_nf4_dq_nearest(x) != ref_dq_code(x, dm)) bad++;
    }
    for (int k = 0; k < 256; k++) bad += pf_nf4_dq_nearest(dm[k]) != k;
    for (int k = 0; k < 255; k++) {
        const float mid = (dm[k] + dm[k + 1]) * 0.5f;
        bad += pf_nf4_dq_nearest(mid) != ref_dq_code(mid, dm);
        bad += pf_nf4_dq_nearest(nextafterf(mid, 2.0f)) != k + 1;
        bad += pf_nf4_dq_nearest(nextafterf(mid, -2.0f)) != k;
    }
    CHECK(&T, bad == 0, "dynamic-map nearest index wrong %d times (random, values, midpoints)", bad);
}

/* ---- quantization against the reference ---------------------------------------------------- */

/* Test weights: Gaussian rows with a per-row scale spread over 3 decades, one all-zero block,
 * one block holding exact midpoint ratios (ties), one outlier. */
static float *make_weights(int64_t n_out, int64_t n_in, uint64_t seed) {
    float *w = malloc((size_t)(n_out * n_in) * sizeof(float));
    pf_test_rng rng = {seed};
    for (int64_t r = 0; r < n_out; r++) {
        const float s = 0.02f * powf(10.0f, (float)(r % 7) / 3.0f - 1.0f);
        for (int64_t c = 0; c < n_in; c++) w[r * n_in + c] = s * pf_test_gauss(&rng);
    }
    if (n_out * n_in >= 3 * PF_NF4_BLOCK) {
        memset(w + PF_NF4_BLOCK, 0, PF_NF4_BLOCK * sizeof(float));
        const float *lv = pf_nf4_levels();
        float *b = w + 2 * PF_NF4_BLOCK;
        b[0] = 2.0f; /* absmax 2: ratios exactly lv midpoints when representable */
        for (int k = 0; k < 15 && 1 + k < PF_NF4_BLOCK; k++) b[1 + k] = 2.0f * (float)(((double)lv[k] + lv[k + 1]) / 2.0);
        w[n_out * n_in - 1] = 5.0f;
    }
    return w;
}

static void test_quantize(int64_t n_out, int64_t n_in) {
    float *w = make_weights(n_out, n_in, 0xabcdef + (uint64_t)n_out);
    const int64_t n = n_out * n_in, nb = n / 64, ns = (nb + 255) / 256;
    const float *lv = pf_nf4_levels(), *map = pf_nf4_dq_map();
    pf_error err;
    pf_nf4_tensor q;
    CHECK(&T, pf_nf4_quantize(&q, w, n_out, n_in, &err) == PF_OK, "quantize %lldx%lld: %s", (long long)n_out,
          (long long)n_in, err.msg);
    CHECK(&T, q.ready && q.n_blocks == nb && q.n_scales == ns, "block counts");

    /* reference: flatten, absmax per 64, code = nearest level of w·(1/absmax) */
    float *amax = malloc((size_t)nb * sizeof(float));
    int code_bad = 0;
    for (int64_t j = 0; j < nb; j++) {
        float a = 0;
        for (int i = 0; i < 64; i++) a = fmaxf(a, fabsf(w[j * 64 + i]));
        amax[j] = a;
        for (int i = 0; i < 64; i++) {
            const int want = a == 0.0f ? 0 : ref_nf4_code(w[j * 64 + i] * (1.0f / a), lv);
            const uint8_t byte = q.codes[(j * 64 + i) / 2];
            const int got = (i % 2 == 0) ? byte >> 4 : byte & 15; /* element 2i in the high nibble */
            code_bad += got != want;
        }
    }
    CHECK(&T, code_bad == 0, "%lld x %lld: %d NF4 codes differ from the reference", (long long)n_out, (long long)n_in,
          code_bad);
    /* double quantization: offset = mean, 256-blocks of absmax - offset, scale = max |.| */
    double sum = 0;
    for (int64_t j = 0; j < nb; j++) sum += amax[j];
    const float offset = (float)(sum / (double)nb);
    CHECK(&T, q.offset == offset, "offset %.9g vs mean %.9g", q.offset, offset);
    int dq_bad = 0, sc_bad = 0;
    for (int64_t s = 0; s < ns; s++) {
        float m = 0;
        for (int64_t j = s * 256; j < nb && j < (s + 1) * 256; j++) m = fmaxf(m, fabsf(amax[j] - offset));
        sc_bad += q.absmax_scale[s] != m;
        for (int64_t j = s * 256; j < nb && j < (s + 1) * 256; j++)
            dq_bad += q.absmax_q[j] != (m == 0 ? 0 : ref_dq_code((amax[j] - offset) * (1.0f / m), map));
    }
    CHECK(&T, sc_bad == 0 && dq_bad == 0, "second level: %d scales, %d absmax codes differ", sc_bad, dq_bad);

    /* dequantization: w' = nf4[code] · (map8[q] · scale + offset), and error bounds:
     * |w - w'| <= absmax · (largest half-gap of NF4) + |absmax' - absmax| (|nf4| <= 1), and
     * |absmax' - absmax| <= scale · (largest half-gap of the map) + float rounding. */
    float *dq = malloc((size_t)n * sizeof(float));
    CHECK(&T, pf_nf4_dequantize_rows(&q, 0, n_out, dq, &err) == PF_OK, "dequantize: %s", err.msg);
    double half_gap = 0, map_half_gap = 0;
    for (int k = 0; k < 15; k++) half_gap = fmax(half_gap, (lv[k + 1] - lv[k]) / 2.0);
    for (int k = 0; k < 255; k++) map_half_gap = fmax(map_half_gap, (map[k + 1] - map[k]) / 2.0);
    int val_bad = 0, bound_bad = 0;
    double se = 0, sw = 0;
    for (int64_t j = 0; j < nb; j++) {
        const float scale = q.absmax_scale[j / 256];
        const float a2 = map[q.absmax_q[j]] * scale + offset;
        /* the largest rounding step of the map: half a gap, or -1 -> map[0] = -0.99297 (the
         * negative side has no -1: the block farthest below the offset always moves up) */
        const double step = fmax(map_half_gap, 1.0 + map[0]);
        const double amax_err = scale * step * (1 + 1e-5) + 2.4e-7 * (fabs(a2) + fabs(offset));
        CHECK(&T, fabs((double)a2 - amax[j]) <= amax_err, "block %lld absmax %.9g rebuilt as %.9g", (long long)j,
              amax[j], a2);
        for (int i = 0; i < 64; i++) {
            const int64_t e = j * 64 + i;
            const uint8_t byte = q.codes[e / 2];
            const float want = lv[(e % 2 == 0) ? byte >> 4 : byte & 15] * a2;
            val_bad += dq[e] != want;
            bound_bad += fabs((double)dq[e] - w[e]) > amax[j] * half_gap * (1 + 1e-6) + amax_err;
            se += ((double)dq[e] - w[e]) * ((double)dq[e] - w[e]);
            sw += (double)w[e] * w[e];
        }
    }
    CHECK(&T, val_bad == 0 && bound_bad == 0, "dequantized: %d values differ from the formula, %d outside the bound",
          val_bad, bound_bad);
    /* NF4 is built for normally distributed weights: its RMS error must beat a uniform 16-level
     * absmax grid (-1 + 2k/15, the "int4" of the QLoRA paper's comparison) on the same blocks */
    double se_u = 0;
    for (int64_t j = 0; j < nb; j++)
        for (int i = 0; i < 64 && amax[j] > 0; i++) {
            const double v = w[j * 64 + i] / amax[j], u = (-1.0 + 2.0 * round((v + 1.0) * 7.5) / 15.0) * amax[j];
            se_u += (u - w[j * 64 + i]) * (u - w[j * 64 + i]);
        }
    const double rel = sqrt(se / sw), rel_u = sqrt(se_u / sw);
    CHECK(&T, rel < rel_u, "relative RMS error NF4 %.4f vs uniform 4-bit %.4f", rel, rel_u);

    /* storage: 4 bits + 8 per 64 + 32 per 64·256 + the offset */
    const double bits = (4.0 * (double)n + 8.0 * (double)nb + 32.0 * (double)ns + 32.0) / (double)n;
    CHECK(&T, fabs(pf_nf4_bits_per_weight(&q) - bits) < 1e-12, "bits/weight %.6f vs %.6f", pf_nf4_bits_per_weight(&q),
          bits);
    if (n >= 1 << 20) {
        CHECK(&T, fabs(bits - 4.127) < 0.001, "bits/weight %.4f ≈ 4.127", bits);
        printf("NF4 %lld x %lld: %.4f bits/weight (%zu bytes vs %lld f32), relative RMS error %.4f (uniform 4-bit %.4f)\n",
               (long long)n_out, (long long)n_in, pf_nf4_bits_per_weight(&q), pf_nf4_bytes(&q), (long long)(4 * n), rel, rel_u);
    }

    /* streaming: rows appended 1, then 2, then the rest give the same bytes */
    if (n_out >= 4) {
        pf_nf4_tensor s;
        int rc = pf_nf4_init(&s, n_out, n_in, &err);
        if (rc == PF_OK) rc = pf_nf4_append_rows(&s, w, 1, &err);
        if (rc == PF_OK) rc = pf_nf4_append_rows(&s, w + n_in, 2, &err);
        if (rc == PF_OK) rc = pf_nf4_append_rows(&s, w + 3 * n_in, n_out - 3, &err);
        if (rc == PF_OK) rc = pf_nf4_finish(&s, &err);
        CHECK(&T, rc == PF_OK, "streaming build: %s", err.msg);
        if (rc == PF_OK)
            CHECK(&T, memcmp(s.codes, q.codes, (size_t)n / 2) == 0 && memcmp(s.absmax_q, q.absmax_q, (size_t)nb) == 0 &&
                          memcmp(s.absmax_scale, q.absmax_scale, (size_t)ns * 4) == 0 && s.offset == q.offset,
                  "streaming build equals the one-shot build");
        /* rows from the middle */
        float *part = malloc((size_t)(2 * n_in) * sizeof(float));
        CHECK(&T, pf_nf4_dequantize_rows(&s, 1, 2, part, &err) == PF_OK && memcmp(part, dq + n_in, (size_t)(2 * n_in) * 4) == 0,
              "rows 1..2 alone");
        free(part);
        pf_nf4_free(&s);
    }
    free(dq);
    free(amax);
    free(w);
    pf_nf4_free(&q);
}

static void test_errors(void) {
    pf_error err;
    pf_nf4_tensor t;
    CHECK(&T, pf_nf4_init(&t, 4, 100, &err) == PF_ERR_ARG && strstr(err.msg, "64"), "n_in not a multiple of 64: %s", err.msg);
    CHECK(&T, pf_nf4_init(&t, 0, 64, &err) == PF_ERR_ARG, "no rows");
    CHECK(&T, pf_nf4_init(&t, INT64_MAX / 64, 128, &err) == PF_ERR_ARG, "overflowing shape");
    float rows[2 * 64] = {0};
    CHECK(&T, pf_nf4_init(&t, 2, 64, &err) == PF_OK, "init");
    CHECK(&T, pf_nf4_finish(&t, &err) == PF_ERR_ARG && strstr(err.msg, "0 of 2"), "finish too early: %s", err.msg);
    CHECK(&T, pf_nf4_append_rows(&t, rows, 3, &err) == PF_ERR_ARG, "too many rows");
    rows[64 + 5] = NAN;
    CHECK(&T, pf_nf4_append_rows(&t, rows, 2, &err) == PF_ERR_FORMAT && strstr(err.msg, "row 1, column 5"),
          "NaN weight named: %s", err.msg);
    float y[2];
    pf_compute *c = NULL;
    CHECK(&T, pf_compute_create(1, PF_ISA_AUTO, &c, &err) == PF_OK, "compute");
    CHECK(&T, pf_nf4_matmul(c, &t, rows, 1, y, &err) == PF_ERR_ARG, "matmul on an unfinished tensor");
    CHECK(&T, pf_nf4_dequantize_rows(&t, 0, 1, rows, &err) == PF_ERR_ARG, "dequantize an unfinished tensor");
    pf_nf4_free(&t);
    rows[64 + 5] = 1.0f;
    CHECK(&T, pf_nf4_quantize(&t, rows, 2, 64, &err) == PF_OK, "all-zero first row");
    CHECK(&T, pf_nf4_dequantize_rows(&t, 1, 2, rows, &err) == PF_ERR_ARG, "rows out of range");
    CHECK(&T, pf_nf4_matmul(c, &t, NULL, 1, y, &err) == PF_ERR_ARG, "NULL input");
    CHECK(&T, pf_nf4_matmul_t(c, &t, y, -1, rows, &err) == PF_ERR_ARG, "negative n");
    pf_nf4_free(&t);
    pf_compute_free(c);
}

/* From GGUF tensors (F16 and a K-quant): the streaming, multithreaded build equals quantizing
 * the whole dequantized matrix at once. */
static void test_from_gguf(pf_compute *c, const char *file, const char *tensor) {
    char path[256];
    if (!pf_test_data_path(path, sizeof path, "models", file)) {
        printf("SKIP: %s not found\n", file);
        return;
    }
    pf_gguf *g = NULL;
    pf_error err;
    CHECK(&T, pf_gguf_open(path, &g, &err) == PF_OK, "open %s: %s", path, err.msg);
    if (!g) return;
    const int64_t i = pf_gguf_find_tensor(g, tensor);
    CHECK(&T, i >= 0, "%s in %s", tensor, file);
    if (i >= 0) {
        const pf_tensor_info *ti = pf_gguf_tensor(g, i);
        const int64_t n = pf_tensor_nelements(ti);
        float *f = malloc((size_t)n * sizeof(float));
        pf_type_get(ti->type)->to_float(ti->data, f, n);
        pf_nf4_tensor a, b;
        CHECK(&T, pf_nf4_quantize(&a, f, ti->ne[1], ti->ne[0], &err) == PF_OK, "quantize: %s", err.msg);
        int rc = pf_nf4_quantize_tensor(c, ti, &b, &err);
        CHECK(&T, rc == PF_OK, "quantize_tensor %s: %s", tensor, err.msg);
        if (rc == PF_OK)
            CHECK(&T, b.n_out == ti->ne[1] && b.n_in == ti->ne[0] && memcmp(a.codes, b.codes, (size_t)n / 2) == 0 &&
                          memcmp(a.absmax_q, b.absmax_q, (size_t)a.n_blocks) == 0 && a.offset == b.offset &&
                          memcmp(a.absmax_scale, b.absmax_scale, (size_t)a.n_scales * 4) == 0,
                  "%s %s (%s): streamed multithreaded build equals the one-shot build", file, tensor, pf_type_name(ti->type));
        pf_nf4_free(&a);
        pf_nf4_free(&b);
        free(f);
    }
    pf_gguf_close(g);
}

/* ---- kernels ------------------------------------------------------------------------------- */

/* |got - want| <= n_terms · 2^-23 · Σ|terms| (the recursive-summation bound) + tiny. */
static int count_bad(const float *got, const double *want, const double *mag, int64_t count, int64_t n_terms) {
    int bad = 0;
    for (int64_t i = 0; i < count; i++)
        if (!(fabs(got[i] - want[i]) <= (double)(n_terms + 2) * 1.2e-7 * mag[i] + 1e-30)) bad++;
    return bad;
}

static void test_kernels(pf_compute *cs[2][2], int64_t n, int64_t n_in, int64_t n_out) {
    float *w = make_weights(n_out, n_in, 0x5eed + (uint64_t)(n_in * 7 + n_out));
    pf_error err;
    pf_nf4_tensor q;
    CHECK(&T, pf_nf4_quantize(&q, w, n_out, n_in, &err) == PF_OK, "quantize: %s", err.msg);
    float *wd = malloc((size_t)(n_out * n_in) * sizeof(float));
    pf_nf4_dequantize_rows(&q, 0, n_out, wd, &err);
    float *x = malloc((size_t)(n * n_in) * sizeof(float)), *g = malloc((size_t)(n * n_out) * sizeof(float));
    pf_test_rng rng = {77 + (uint64_t)n};
    for (int64_t i = 0; i < n * n_in; i++) x[i] = pf_test_gauss(&rng);
    for (int64_t i = 0; i < n * n_out; i++) g[i] = pf_test_gauss(&rng);
    /* references in double: y = x·Wᵀ, dx = g·W, with the magnitudes Σ|terms| */
    double *y_ref = calloc((size_t)(n * n_out), sizeof(double)), *y_mag = calloc((size_t)(n * n_out), sizeof(double));
    double *dx_ref = calloc((size_t)(n * n_in), sizeof(double)), *dx_mag = calloc((size_t)(n * n_in), sizeof(double));
    for (int64_t t = 0; t < n; t++)
        for (int64_t r = 0; r < n_out; r++)
            for (int64_t c = 0; c < n_in; c++) {
                const double wv = wd[r * n_in + c];
                y_ref[t * n_out + r] += wv * x[t * n_in + c];
                y_mag[t * n_out + r] += fabs(wv * x[t * n_in + c]);
                dx_ref[t * n_in + c] += g[t * n_out + r] * wv;
                dx_mag[t * n_in + c] += fabs(g[t * n_out + r] * wv);
            }
    float *y = malloc((size_t)(n * n_out) * sizeof(float)), *dx = malloc((size_t)(n * n_in) * sizeof(float));
    float *y0 = malloc((size_t)(n * n_out) * sizeof(float)), *dx0 = malloc((size_t)(n * n_in) * sizeof(float));
    for (int isa = 0; isa < 2; isa++)
        for (int th = 0; th < 2; th++) {
            pf_compute *c = cs[isa][th];
            if (c == NULL) continue;
            for (int64_t i = 0; i < n * n_out; i++) y[i] = NAN; /* the kernels overwrite */
            for (int64_t i = 0; i < n * n_in; i++) dx[i] = NAN;
            int rc1 = pf_nf4_matmul(c, &q, x, n, y, &err), rc2 = pf_nf4_matmul_t(c, &q, g, n, dx, &err);
            CHECK(&T, rc1 == PF_OK && rc2 == PF_OK, "kernels: %s", err.msg);
            const int b1 = count_bad(y, y_ref, y_mag, n * n_out, n_in), b2 = count_bad(dx, dx_ref, dx_mag, n * n_in, n_out);
            CHECK(&T, b1 == 0 && b2 == 0, "%s %d thread(s), n %lld, %lld x %lld: %d of y, %d of dx off the double reference",
                  pf_compute_kernels(c)->name, th + 1, (long long)n, (long long)n_out, (long long)n_in, b1, b2);
            if (isa == 0 && th == 0) {
                memcpy(y0, y, (size_t)(n * n_out) * sizeof(float));
                memcpy(dx0, dx, (size_t)(n * n_in) * sizeof(float));
            } else if (isa == 0) {
                CHECK(&T, memcmp(y0, y, (size_t)(n * n_out) * 4) == 0 && memcmp(dx0, dx, (size_t)(n * n_in) * 4) == 0,
                      "scalar: 2 threads give the same bits as 1");
            } else {
                /* AVX2 vs scalar: both within the bound of the exact value, so within twice of each other */
                int d = 0;
                for (int64_t i = 0; i < n * n_out; i++)
                    d += !(fabs((double)y[i] - y0[i]) <= 2.0 * (double)(n_in + 2) * 1.2e-7 * y_mag[i] + 1e-30);
                for (int64_t i = 0; i < n * n_in; i++)
                    d += !(fabs((double)dx[i] - dx0[i]) <= 2.0 * (double)(n_out + 2) * 1.2e-7 * dx_mag[i] + 1e-30);
                CHECK(&T, d == 0, "avx2 vs scalar: %d values apart", d);
            }
        }
    free(y), free(dx), free(y0), free(dx0), free(y_ref), free(y_mag), free(dx_ref), free(dx_mag);
    free(x), free(g), free(wd), free(w);
    pf_nf4_free(&q);
}

int main(void) {
    test_tables();
    test_quantize(3, 64);
    test_quantize(5, 320);
    test_quantize(37, 192);     /* n_blocks not a multiple of 256 */
    test_quantize(256, 4096);   /* 1 M weights: the 4.127 bits/weight figure */
    test_errors();

    pf_compute *cs[2][2] = {{NULL, NULL}, {NULL, NULL}};
    pf_error err;
    for (int th = 0; th < 2; th++) {
        CHECK(&T, pf_compute_create(th + 1, PF_ISA_SCALAR, &cs[0][th], &err) == PF_OK, "scalar: %s", err.msg);
        if (pf_cpu_has_avx2())
            CHECK(&T, pf_compute_create(th + 1, PF_ISA_AVX2, &cs[1][th], &err) == PF_OK, "avx2: %s", err.msg);
    }
    if (!pf_cpu_has_avx2()) printf("CPU lacks AVX2: scalar NF4 kernels only\n");
    for (int th = 0; th < 2; th++) {
        test_from_gguf(cs[0][th], "phi3-tiny-f16.gguf", "blk.1.ffn_up.weight");
        test_from_gguf(cs[0][th], "phi3-tiny-f16.gguf", "token_embd.weight");
        test_from_gguf(cs[0][th], "quant-Q4_K.gguf", "blk.0.ffn_down.weight");
    }
    {   /* a NaN met by the multithreaded path names its row and column */
        pf_nf4_tensor t;
        float *rows = calloc(64 * 1024, sizeof(float));
        rows[37 * 1024 + 999] = NAN;
        CHECK(&T, pf_nf4_init(&t, 64, 1024, &err) == PF_OK, "init");
        CHECK(&T, pf_nf4_append_rows_mt(cs[0][1], &t, rows, 64, &err) == PF_ERR_FORMAT && strstr(err.msg, "row 37, column 999"),
              "NaN in the multithreaded build: %s", err.msg);
        pf_nf4_free(&t);
        free(rows);
    }
    static const int64_t shapes[][3] = {
        /* n, n_in, n_out */
        {1, 64, 1},   {3, 64, 300},  {17, 64, 5},   {1, 192, 37},   {3, 320, 300},  {17, 576, 1},
        {1, 1024, 300}, {17, 1024, 37}, {3, 4096, 5}, {1, 4096, 300}, {17, 4096, 64}, {3, 2112, 129},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) test_kernels(cs, shapes[i][0], shapes[i][1], shapes[i][2]);
    for (int a = 0; a < 2; a++)
        for (int th = 0; th < 2; th++) pf_compute_free(cs[a][th]);
    return TEST_REPORT(&T);
}
