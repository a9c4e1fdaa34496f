/* Tensor types: trait table, golden dequantization, quantizer accuracy, scalar vec_dot and the
 * half-precision conversions. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "quant/quant.h"
#include "testing.h"

/* Every golden tensor is blk.0.ffn_down.weight stored with ne = [512, 256] (131072 values; the
 * .f32 file holds its dequantization, ne0 fastest). */
#define GOLD_NE0 512
#define GOLD_NE1 256
#define GOLD_N (GOLD_NE0 * GOLD_NE1)

/* ---------------------------------------------------------------------------------------- */
/* Minimal GGUF walk (independent of src/gguf): finds the single tensor's type and bytes.     */
/* ---------------------------------------------------------------------------------------- */

typedef struct { const uint8_t *p; size_t n, off; bool ok; } rd_t;

static uint64_t rd_u(rd_t *r, size_t bytes) {
    uint64_t v = 0;
    if (!r->ok || r->n - r->off < bytes) { r->ok = false; return 0; }
    for (size_t i = 0; i < bytes; i++) v |= (uint64_t)r->p[r->off + i] << (8 * i);
    r->off += bytes;
    return v;
}

static void rd_skip(rd_t *r, uint64_t bytes) {
    if (!r->ok || r->n - r->off < bytes) { r->ok = false; return; }
    r->off += (size_t)bytes;
}

/* Skips one metadata value of gguf type t; records general.alignment-like u32 in *u32_out. */
static void rd_skip_value(rd_t *r, uint32_t t, uint64_t *u32_out) {
    static const uint8_t sizes[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    if (t == 8) { rd_skip(r, rd_u(r, 8)); return; }
    if (t == 9) {
        uint32_t et = (uint32_t)rd_u(r, 4);
        uint64_t cnt = rd_u(r, 8);
        for (uint64_t i = 0; i < cnt && r->ok; i++) {
            if (et == 8 || et == 9) rd_skip_value(r, et, NULL);
            else if (et < 13) rd_skip(r, sizes[et]);
            else r->ok = false;
        }
        return;
    }
    if (t >= 13) { r->ok = false; return; }
    if (t == 4 && u32_out) { *u32_out = rd_u(r, 4); return; }
    rd_skip(r, sizes[t]);
}

/* Returns the tensor's bytes (inside buf) and its type id, or NULL when the walk fails. */
static const uint8_t *gguf_single_tensor(const uint8_t *buf, size_t size, uint32_t *type, uint64_t *ne0,
                                         uint64_t *ne1, size_t *nbytes) {
    rd_t r = {buf, size, 0, true};
    if (rd_u(&r, 4) != 0x46554747u) return NULL;
    rd_u(&r, 4); /* version */
    uint64_t n_tensors = rd_u(&r, 8), n_kv = rd_u(&r, 8), align = 32;
    for (uint64_t i = 0; i < n_kv && r.ok; i++) {
        uint64_t klen = rd_u(&r, 8);
        bool is_align = r.ok && klen == 17 && size - r.off >= 17 && memcmp(buf + r.off, "general.alignment", 17) == 0;
        rd_skip(&r, klen);
        uint64_t a = 0;
        rd_skip_value(&r, (uint32_t)rd_u(&r, 4), &a);
        if (is_align && a) align = a;
    }
    if (!r.ok || n_tensors != 1) return NULL;
    rd_skip(&r, rd_u(&r, 8)); /* name */
    uint32_t nd = (uint32_t)rd_u(&r, 4);
    uint64_t ne[4] = {1, 1, 1, 1};
    for (uint32_t d = 0; d < nd && d < 4; d++) ne[d] = rd_u(&r, 8);
    *type = (uint32_t)rd_u(&r, 4);
    uint64_t off = rd_u(&r, 8);
    if (!r.ok || nd < 1 || nd > 4) return NULL;
    size_t data_start = (r.off + (size_t)align - 1) / (size_t)align * (size_t)align;
    *ne0 = ne[0];
    *ne1 = ne[1];
    *nbytes = pf_row_size((pf_type)*type, (int64_t)ne[0]) * (size_t)(ne[1] * ne[2] * ne[3]);
    if (data_start + off + *nbytes > size) return NULL;
    return buf + data_start + off;
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "out of memory\n"); }
    return p;
}

/* quantize(x) -> dequantize, returns sqrt(mean (x - y)²) / sqrt(mean x²) (or the absolute
 * RMSE when x is all zero); *finite tells whether every output was finite. */
static double roundtrip_rel_rmse(pf_type t, const float *x, int64_t n, bool *finite) {
    const pf_type_traits *tr = pf_type_get(t);
    void *q = xmalloc(pf_row_size(t, n));
    float *y = xmalloc((size_t)n * sizeof(float));
    if (!q || !y) { free(q); free(y); *finite = false; return INFINITY; }
    tr->from_float(x, q, n);
    tr->to_float(q, y, n);
    double se = 0, sx = 0;
    bool fin = true;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) fin = false;
        double d = (double)y[i] - x[i];
        se += d * d;
        sx += (double)x[i] * x[i];
    }
    free(q);
    free(y);
    *finite = fin;
    return sx > 0 ? sqrt(se / sx) : sqrt(se / (double)n);
}

static const pf_type k_all_types[] = {PF_TYPE_F32,  PF_TYPE_F16,  PF_TYPE_BF16, PF_TYPE_Q4_0,  PF_TYPE_Q4_1,
                                      PF_TYPE_Q5_0, PF_TYPE_Q5_1, PF_TYPE_Q8_0, PF_TYPE_Q8_1,  PF_TYPE_Q2_K,
                                      PF_TYPE_Q3_K, PF_TYPE_Q4_K, PF_TYPE_Q5_K, PF_TYPE_Q6_K,  PF_TYPE_Q8_K,
                                      PF_TYPE_IQ4_NL};
#define N_TYPES ((int)(sizeof k_all_types / sizeof k_all_types[0]))

/* ---------------------------------------------------------------------------------------- */
/* (a) golden files: bit-exact dequantization, and re-quantization of the golden values      */
/* ---------------------------------------------------------------------------------------- */

/* Re-quantizing values that the format represents exactly should give them back. requant_bound
 * 0 means every block must be reproduced bit for bit (these quantizers try ggml's own choice of
 * scale first, and the golden blocks were made by it); otherwise it bounds the relative RMSE of
 * requant(golden) against golden (measured: Q6_K 0 with 402/512 blocks encoded differently but
 * to the same values, Q5_K 4.5e-4 (506/512 identical), Q3_K 4.7e-4 (353/512), Q2_K 0 (512/512;
 * 5.1e-3 with the earlier quantizer), far below each format's own error). IQ4_NL is reproduced
 * because its search maps the largest |x| exactly onto both end entries of the codebook. */
static const struct { const char *name; double requant_bound; } k_golden[] = {
    {"F16", 0.0},     {"Q8_0", 0.0},    {"Q4_0", 0.0},    {"Q5_0", 0.0},
    {"Q4_1", 0.0},    {"Q5_1", 0.0},    {"Q4_K", 0.0},    {"IQ4_NL", 0.0},
    {"Q6_K", 1e-6},   {"Q5_K", 0.0012}, {"Q3_K", 0.0007}, {"Q2_K", 0.007},
};

static void test_golden(pf_test *T) {
    for (size_t k = 0; k < sizeof k_golden / sizeof k_golden[0]; k++) {
        const char *name = k_golden[k].name;
        pf_type t = PF_TYPE_F32;
        CHECK(T, pf_type_from_name(name, &t) == PF_OK, "type %s", name);
        const pf_type_traits *tr = pf_type_get(t);
        char fn[64], path[512], path2[512];
        snprintf(fn, sizeof fn, "quant-%s.gguf", name);
        const char *pg = pf_test_data_path(path, sizeof path, "quant", fn);
        snprintf(fn, sizeof fn, "quant-%s.f32", name);
        const char *pf = pf_test_data_path(path2, sizeof path2, "quant", fn);
        size_t gsize = 0, fsize = 0;
        uint8_t *g = pg ? pf_test_read_file(pg, &gsize) : NULL;
        float *gold = pf ? pf_test_read_file(pf, &fsize) : NULL;
        CHECK(T, g && gold && tr, "golden files for %s", name);
        if (!g || !gold || !tr) { free(g); free(gold); continue; }

        uint32_t type = 0;
        uint64_t ne0 = 0, ne1 = 0;
        size_t nbytes = 0;
        const uint8_t *data = gguf_single_tensor(g, gsize, &type, &ne0, &ne1, &nbytes);
        size_t expect = (size_t)(GOLD_N / tr->block_size) * tr->type_size;
        CHECK(T, data != NULL && type == (uint32_t)t && ne0 == GOLD_NE0 && ne1 == GOLD_NE1 && nbytes == expect,
              "%s: header walk (type %u ne %llu x %llu, %zu bytes)", name, type, (unsigned long long)ne0,
              (unsigned long long)ne1, nbytes);
        /* The tensor is the last `expect` bytes of the file, at a 32-aligned data section. */
        CHECK(T, gsize >= expect && (gsize - expect) % 32 == 0 && (!data || data == g + gsize - expect),
              "%s: tensor is not the last %zu bytes of a %zu-byte file", name, expect, gsize);
        CHECK(T, fsize == GOLD_N * sizeof(float), "%s: f32 size %zu", name, fsize);
        if (!data || fsize != GOLD_N * sizeof(float)) { free(g); free(gold); continue; }

        float *y = xmalloc(GOLD_N * sizeof(float));
        uint8_t *q = xmalloc(expect);
        if (!y || !q) { free(y); free(q); free(g); free(gold); return; }
        tr->to_float(data, y, GOLD_N);
        int64_t bad = -1;
        if (memcmp(y, gold, GOLD_N * sizeof(float)) != 0)
            for (int64_t i = 0; i < GOLD_N && bad < 0; i++)
                if (memcmp(&y[i], &gold[i], sizeof(float)) != 0) bad = i;
        CHECK(T, bad < 0, "%s: dequantization differs at index %lld (got %.9g want %.9g)", name, (long long)bad,
              bad >= 0 ? y[bad] : 0.0, bad >= 0 ? gold[bad] : 0.0);

        /* Re-quantize the golden values. */
        tr->from_float(gold, q, GOLD_N);
        tr->to_float(q, y, GOLD_N);
        size_t same_blocks = 0, nblk = expect / tr->type_size;
        for (size_t b = 0; b < nblk; b++)
            same_blocks += memcmp(q + b * tr->type_size, data + b * tr->type_size, tr->type_size) == 0;
        double se = 0, sx = 0;
        for (int64_t i = 0; i < GOLD_N; i++) {
            double d = (double)y[i] - gold[i];
            se += d * d;
            sx += (double)gold[i] * gold[i];
        }
        double rel = sqrt(se / sx);
        printf("  golden %-6s requant: %zu/%zu blocks identical, rel rmse %.3g (bound %.3g)\n", name, same_blocks,
               nblk, rel, k_golden[k].requant_bound);
        if (k_golden[k].requant_bound == 0.0)
            CHECK(T, same_blocks == nblk, "%s: requantized golden differs in %zu blocks", name, nblk - same_blocks);
        else
            CHECK(T, rel <= k_golden[k].requant_bound, "%s: requant rel rmse %g > %g", name, rel,
                  k_golden[k].requant_bound);
        free(y);
        free(q);
        free(g);
        free(gold);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* (b) quantize -> dequantize accuracy                                                       */
/* ---------------------------------------------------------------------------------------- */

/* Test matrices, 256 x 512 values (a multiple of every block size). */
enum { DIST_GAUSS, DIST_UNIFORM, DIST_HEAVY, DIST_SMALL, DIST_LARGE, DIST_COUNT };
static const char *const k_dist_name[DIST_COUNT] = {"gauss", "uniform", "heavy", "gauss*1e-2", "gauss*1e4"};
#define RM_N (256 * 512)

static void fill_dist(int dist, float *x, int64_t n, uint64_t seed) {
    pf_test_rng r = {seed};
    for (int64_t i = 0; i < n; i++) {
        float g = pf_test_gauss(&r);
        switch (dist) {
        case DIST_UNIFORM: x[i] = pf_test_uniform(&r); break;
        case DIST_HEAVY: /* Laplace-like body plus 0.2% outliers at 10-30 sigma */
            x[i] = g * fabsf(pf_test_gauss(&r));
            if ((pf_test_next(&r) & 511) == 0) x[i] = (x[i] >= 0 ? 1.0f : -1.0f) * (10.0f + 20.0f * fabsf(pf_test_uniform(&r)));
            break;
        case DIST_SMALL: x[i] = 1e-2f * g; break;
        case DIST_LARGE: x[i] = 1e4f * g; break;
        default: x[i] = g; break;
        }
    }
}

/* Relative RMSE bounds, sqrt(Σ(x - deq(q(x)))² / Σx²), per type and distribution.
 *
 * Theory: a uniform quantizer of step Δ has RMSE Δ/√12. For 32 N(0,1) values amax ≈ 2.3, so
 * Q8_0 (Δ = amax/127) gives 0.0052; Q4_0 (Δ = amax/8) 0.08; offset formats spread (max - min)
 * ≈ 4.1 over 2^bits - 1 steps: Q4_1 0.079, Q5_1 0.038; searched scales trim ~5-12% off that;
 * K-quants land near the same per-group limits plus their 6-bit (4-bit for Q2_K) scale rounding.
 *
 * Reference: the same data quantized by a faithful re-expression of ggml's quantize_row_*_ref
 * (kept out of the tree; it reproduces the golden Q4_0/Q4_1/Q5_0/Q5_1/Q4_K blocks bit for bit)
 * measured, gauss / uniform / heavy:
 *   Q4_0 .0859/.0650/.1286  Q4_1 .0782/.0606/.1064  Q5_0 .0427/.0311/.0718  Q5_1 .0379/.0294/.0519
 *   Q2_K .2973/.2329/.3314  Q3_K .1513/.1252/.1663  Q4_K .0713/.0545/.0946  Q5_K .0362/.0276/.0493
 *   Q6_K .0177/.0132/.0282  IQ4_NL .0759/.0640/.1049  (Q8_0 / Q8_1 / Q8_K: same algorithm as ggml)
 * Each bound is min(1.04 x the measurement of this project's first, exhaustive-search
 * quantizers, ggml's level), so a regression past ggml's quality fails. The current quantizers
 * (coarse candidate grids scored in closed form, 13-60x faster) measure 1-20% below ggml and
 * inside every bound, gauss: Q4_0 .0811 Q4_1 .0702 Q5_0 .0403 Q5_1 .0340 Q2_K .2642 Q3_K .1439
 * Q4_K .0703 Q5_K .0348 Q6_K .0172 IQ4_NL .0738 (see the table the test prints).
 * (The brief's "typical" K-quant levels, e.g. Q4_K ~0.036, are about half of what ggml's own
 * quantizer reaches on N(0,1) data; they are not reachable at these bit rates.)
 * gauss*1e-2 / gauss*1e4 check the fp16 scale range (tiny scales become fp16 subnormals): 1.04 x
 * measured. F16 / BF16: relative rounding error at most 2^-11/√3 and 2^-8/√3. */
typedef struct { pf_type type; double bound[DIST_COUNT]; } rmse_bound;
static const rmse_bound k_rmse[] = {
    /*                 gauss    uniform  heavy    x1e-2    x1e4 */
    {PF_TYPE_F32,    {0,       0,       0,       0,       0}},
    {PF_TYPE_F16,    {2.8e-4,  2.8e-4,  2.8e-4,  2.8e-4,  2.8e-4}},
    {PF_TYPE_BF16,   {2.3e-3,  2.3e-3,  2.3e-3,  2.3e-3,  2.3e-3}},
    {PF_TYPE_Q8_0,   {0.0056,  0.0040,  0.0104,  0.0056,  0.0056}},
    {PF_TYPE_Q8_1,   {0.0056,  0.0040,  0.0104,  0.0056,  0.0056}},
    {PF_TYPE_Q8_K,   {0.0073,  0.0041,  0.0245,  0.0073,  0.0073}},
    {PF_TYPE_Q6_K,   {0.0177,  0.0132,  0.0282,  0.0180,  0.0179}},
    {PF_TYPE_Q5_K,   {0.0359,  0.0276,  0.0490,  0.0360,  0.0359}},
    {PF_TYPE_Q5_1,   {0.0350,  0.0270,  0.0477,  0.0350,  0.0349}},
    {PF_TYPE_Q5_0,   {0.0418,  0.0293,  0.0718,  0.0420,  0.0418}},
    {PF_TYPE_Q4_K,   {0.0713,  0.0545,  0.0946,  0.0729,  0.0727}},
    {PF_TYPE_Q4_1,   {0.0723,  0.0558,  0.0946,  0.0726,  0.0725}},
    {PF_TYPE_Q4_0,   {0.0842,  0.0612,  0.1286,  0.0845,  0.0841}},
    {PF_TYPE_IQ4_NL, {0.0759,  0.0640,  0.1049,  0.0767,  0.0766}},
    {PF_TYPE_Q3_K,   {0.1496,  0.1228,  0.1663,  0.1496,  0.1493}},
    {PF_TYPE_Q2_K,   {0.2727,  0.2252,  0.2592,  0.2721,  0.2728}},
};

static void test_rmse(pf_test *T) {
    float *x = xmalloc(RM_N * sizeof(float));
    if (!x) return;
    double meas[sizeof k_rmse / sizeof k_rmse[0]][DIST_COUNT];
    for (int dist = 0; dist < DIST_COUNT; dist++) {
        fill_dist(dist, x, RM_N, 0x9E3779B97F4A7C15ull + (uint64_t)dist);
        for (size_t k = 0; k < sizeof k_rmse / sizeof k_rmse[0]; k++) {
            bool fin;
            double rel = roundtrip_rel_rmse(k_rmse[k].type, x, RM_N, &fin);
            meas[k][dist] = rel;
            CHECK(T, fin && rel <= k_rmse[k].bound[dist], "%s on %s: rel rmse %.5g > bound %.5g (finite %d)",
                  pf_type_name(k_rmse[k].type), k_dist_name[dist], rel, k_rmse[k].bound[dist], fin);
        }
    }
    printf("  rel rmse     ");
    for (int dist = 0; dist < DIST_COUNT; dist++) printf(" %11s", k_dist_name[dist]);
    printf("\n");
    for (size_t k = 0; k < sizeof k_rmse / sizeof k_rmse[0]; k++) {
        printf("  %-6s       ", pf_type_name(k_rmse[k].type));
        for (int dist = 0; dist < DIST_COUNT; dist++) printf(" %11.5f", meas[k][dist]);
        printf("\n");
    }
    free(x);
}

/* ---------------------------------------------------------------------------------------- */
/* (c) scalar vec_dot                                                                        */
/* ---------------------------------------------------------------------------------------- */

/* Largest error of one dequantized activation against its source, as a fraction of the largest
 * |y| of its block: Q8_0 / Q8_1 round x·(1/d) with d = amax/127 and store d as fp16, so
 * |q·fp16(d) - y| <= d/2 + 127·d·2^-11 < 0.57·d; Q8_K keeps an f32 d, so <= d/2 (plus float
 * rounding). Float activations are exact. */
static double act_err_per_amax(pf_type vdt) {
    switch (vdt) {
    case PF_TYPE_Q8_0: case PF_TYPE_Q8_1: return 0.57 / 127.0;
    case PF_TYPE_Q8_K: return 0.5001 / 127.0;
    default: return 0.0;
    }
}

/* Σ over Q8_1 blocks of the rounding allowed between m_x·s_y (s = fp16(d·Σq) with the unrounded
 * d) and m_x·fp16(d)·Σq (what dequant(y) gives): |m_x|·(|s| + |fp16(d)·Σq|)·2^-10. */
static double q81_slack(pf_type wt, const void *xq, const void *yq, int64_t n) {
    if (wt != PF_TYPE_Q4_1 && wt != PF_TYPE_Q5_1) return 0.0;
    double slack = 0.0;
    const size_t xs = pf_type_get(wt)->type_size;
    for (int64_t b = 0; b < n / 32; b++) {
        block_q8_1 by;
        pf_half m;
        memcpy(&by, (const uint8_t *)yq + b * sizeof by, sizeof by);
        memcpy(&m, (const uint8_t *)xq + b * xs + sizeof(pf_half), sizeof m); /* m follows d */
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += by.qs[j];
        slack += fabs(pf_fp16_to_fp32(m)) *
                 (fabs(pf_fp16_to_fp32(by.s)) + fabs(pf_fp16_to_fp32(by.d) * sum)) * (1.0 / 1024.0);
    }
    return slack;
}

/* For each weight type and row length: vec_dot(x_q, quant_vdt(y)) must equal the double dot of
 * the two dequantized rows up to float rounding (1e-5·Σ|terms|, plus the Q8_1 s rounding), and
 * the double dot of dequant(x_q) with the original y up to the activation quantization error
 * (Σ |x_i|·err_i, err_i bounded as in act_err_per_amax). */
static void test_vec_dot(pf_test *T) {
    pf_test_rng r = {0xD1B54A32D192ED03ull};
    for (int k = 0; k < N_TYPES; k++) {
        const pf_type wt = k_all_types[k];
        const pf_type_traits *tr = pf_type_get(wt);
        if (!tr->is_weight) {
            CHECK(T, tr->vec_dot == NULL, "%s is activation-only and has no vec_dot", tr->name);
            continue;
        }
        CHECK(T, tr->vec_dot != NULL, "%s has a vec_dot", tr->name);
        if (!tr->vec_dot) continue;
        const pf_type_traits *vt = pf_type_get(tr->vec_dot_type);
        const int64_t nblocks[] = {1, 2, 7, 16};
        for (int li = 0; li < 4; li++) {
            const int64_t n = nblocks[li] * (tr->block_size == 1 ? 33 : tr->block_size);
            float *x = xmalloc((size_t)n * sizeof(float)), *y = xmalloc((size_t)n * sizeof(float));
            float *xd = xmalloc((size_t)n * sizeof(float)), *yd = xmalloc((size_t)n * sizeof(float));
            void *xq = xmalloc(pf_row_size(wt, n)), *yq = xmalloc(pf_row_size(tr->vec_dot_type, n));
            if (!x || !y || !xd || !yd || !xq || !yq) {
                free(x); free(y); free(xd); free(yd); free(xq); free(yq);
                return;
            }
            for (int64_t i = 0; i < n; i++) {
                x[i] = pf_test_gauss(&r) + (li == 3 ? 0.5f : 0.0f); /* one case with a mean offset */
                y[i] = pf_test_gauss(&r) * (li == 2 ? (float)(1 + (i / 32) % 5) : 1.0f);
            }
            tr->from_float(x, xq, n);
            tr->to_float(xq, xd, n);
            vt->from_float(y, yq, n);
            vt->to_float(yq, yd, n);
            float s = NAN;
            tr->vec_dot(n, &s, xq, yq);

            double ref_q = 0, abs_q = 0, ref_f = 0, act = 0;
            const int64_t vbs = vt->block_size;
            for (int64_t b = 0; b < n / vbs; b++) {
                float amax = 0.0f;
                for (int64_t i = b * vbs; i < (b + 1) * vbs; i++) amax = fmaxf(amax, fabsf(y[i]));
                for (int64_t i = b * vbs; i < (b + 1) * vbs; i++) {
                    ref_q += (double)xd[i] * yd[i];
                    abs_q += fabs((double)xd[i] * yd[i]);
                    ref_f += (double)xd[i] * y[i];
                    act += fabs((double)xd[i]) * amax * act_err_per_amax(tr->vec_dot_type);
                }
            }
            const double tight = 1e-5 * abs_q + q81_slack(wt, xq, yq, n) + 1e-30;
            CHECK(T, fabs(s - ref_q) <= tight, "%s n=%lld: vec_dot %.9g vs dequant dot %.9g (tol %.3g)", tr->name,
                  (long long)n, s, ref_q, tight);
            CHECK(T, fabs(s - ref_f) <= tight + act * 1.0001, "%s n=%lld: vec_dot %.9g vs float dot %.9g (tol %.3g)",
                  tr->name, (long long)n, s, ref_f, tight + act);
            free(x); free(y); free(xd); free(yd); free(xq); free(yq);
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* (d) trait table, names, row sizes, half-precision conversions                            */
/* ---------------------------------------------------------------------------------------- */

static void test_traits(pf_test *T) {
    static const struct { pf_type t; const char *name; int64_t bs; size_t ts; bool quant, weight; pf_type vdt; } k[] = {
        {PF_TYPE_F32, "F32", 1, 4, false, true, PF_TYPE_F32},
        {PF_TYPE_F16, "F16", 1, 2, false, true, PF_TYPE_F32},
        {PF_TYPE_BF16, "BF16", 1, 2, false, true, PF_TYPE_F32},
        {PF_TYPE_Q4_0, "Q4_0", 32, 18, true, true, PF_TYPE_Q8_0},
        {PF_TYPE_Q4_1, "Q4_1", 32, 20, true, true, PF_TYPE_Q8_1},
        {PF_TYPE_Q5_0, "Q5_0", 32, 22, true, true, PF_TYPE_Q8_0},
        {PF_TYPE_Q5_1, "Q5_1", 32, 24, true, true, PF_TYPE_Q8_1},
        {PF_TYPE_Q8_0, "Q8_0", 32, 34, true, true, PF_TYPE_Q8_0},
        {PF_TYPE_Q8_1, "Q8_1", 32, 36, true, false, PF_TYPE_Q8_1},
        {PF_TYPE_Q2_K, "Q2_K", 256, 84, true, true, PF_TYPE_Q8_K},
        {PF_TYPE_Q3_K, "Q3_K", 256, 110, true, true, PF_TYPE_Q8_K},
        {PF_TYPE_Q4_K, "Q4_K", 256, 144, true, true, PF_TYPE_Q8_K},
        {PF_TYPE_Q5_K, "Q5_K", 256, 176, true, true, PF_TYPE_Q8_K},
        {PF_TYPE_Q6_K, "Q6_K", 256, 210, true, true, PF_TYPE_Q8_K},
        {PF_TYPE_Q8_K, "Q8_K", 256, 292, true, false, PF_TYPE_Q8_K},
        {PF_TYPE_IQ4_NL, "IQ4_NL", 32, 18, true, true, PF_TYPE_Q8_0},
    };
    int n_known = 0;
    for (int id = -1; id <= 40; id++) n_known += pf_type_get((pf_type)id) != NULL;
    CHECK(T, n_known == 16, "%d known type ids, want 16", n_known);
    const int gaps[] = {-1, 4, 5, 16, 17, 18, 19, 21, 25, 29, 31, 39, 1000};
    for (size_t i = 0; i < sizeof gaps / sizeof gaps[0]; i++) {
        CHECK(T, pf_type_get((pf_type)gaps[i]) == NULL, "id %d is not a type", gaps[i]);
        CHECK(T, strcmp(pf_type_name((pf_type)gaps[i]), "UNKNOWN") == 0, "name of id %d", gaps[i]);
        CHECK(T, pf_row_size((pf_type)gaps[i], 256) == 0, "row size of id %d", gaps[i]);
    }
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        const pf_type_traits *tr = pf_type_get(k[i].t);
        CHECK(T, tr != NULL, "type %s", k[i].name);
        if (!tr) continue;
        CHECK(T, strcmp(tr->name, k[i].name) == 0 && strcmp(pf_type_name(k[i].t), k[i].name) == 0, "%s name", k[i].name);
        CHECK(T, tr->block_size == k[i].bs && tr->type_size == k[i].ts, "%s geometry %lld/%zu", k[i].name,
              (long long)tr->block_size, tr->type_size);
        CHECK(T, tr->is_quantized == k[i].quant && tr->is_weight == k[i].weight && tr->vec_dot_type == k[i].vdt,
              "%s flags", k[i].name);
        CHECK(T, tr->to_float && tr->from_float && (tr->vec_dot != NULL) == k[i].weight, "%s functions", k[i].name);
        pf_type back = PF_TYPE_COUNT;
        char lower[16];
        size_t j = 0;
        for (; k[i].name[j] && j < sizeof lower - 1; j++) lower[j] = (char)(k[i].name[j] | (k[i].name[j] >= 'A' && k[i].name[j] <= 'Z' ? 0x20 : 0));
        lower[j] = 0;
        CHECK(T, pf_type_from_name(lower, &back) == PF_OK && back == k[i].t, "from_name(%s)", lower);
        CHECK(T, pf_row_size(k[i].t, 4096) == (size_t)(4096 / k[i].bs) * k[i].ts, "%s row size", k[i].name);
    }
    pf_type t = PF_TYPE_F32;
    CHECK(T, pf_type_from_name("q4_k", &t) == PF_OK && t == PF_TYPE_Q4_K, "q4_k");
    CHECK(T, pf_type_from_name("Iq4_Nl", &t) == PF_OK && t == PF_TYPE_IQ4_NL, "Iq4_Nl");
    CHECK(T, pf_type_from_name("q4_k_m", &t) == PF_ERR_NOT_FOUND, "q4_k_m is a mix, not a type");
    CHECK(T, pf_type_from_name("", &t) == PF_ERR_NOT_FOUND && pf_type_from_name(NULL, &t) == PF_ERR_NOT_FOUND, "empty");
    CHECK(T, pf_row_size(PF_TYPE_Q4_K, 3072) == 12 * 144 && pf_row_size(PF_TYPE_F16, 3) == 6, "row sizes");
    CHECK(T, pf_row_size(PF_TYPE_Q4_0, 33) == 0 && pf_row_size(PF_TYPE_Q6_K, 128) == 0, "partial blocks give 0");
}

static float f32_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static void test_halves(pf_test *T) {
    /* Every non-NaN binary16 / bfloat16 pattern survives a round trip through f32. */
    long bad16 = -1, badbf = -1;
    for (uint32_t h = 0; h < 65536; h++) {
        bool nan16 = (h & 0x7C00) == 0x7C00 && (h & 0x03FF), nanbf = (h & 0x7F80) == 0x7F80 && (h & 0x007F);
        if (!nan16 && bad16 < 0 && pf_fp32_to_fp16(pf_fp16_to_fp32((uint16_t)h)) != h) bad16 = (long)h;
        if (!nanbf && badbf < 0 && pf_fp32_to_bf16(pf_bf16_to_fp32((uint16_t)h)) != h) badbf = (long)h;
        if (nan16 && !isnan(pf_fp16_to_fp32((uint16_t)h)) && bad16 < 0) bad16 = (long)h;
    }
    CHECK(T, bad16 < 0, "fp16 round trip fails at 0x%04lx", bad16);
    CHECK(T, badbf < 0, "bf16 round trip fails at 0x%04lx", badbf);

    /* fp32 -> fp16, hand-computed (ulp of 1.0 in fp16 is 2^-10; the smallest subnormal 2^-24). */
    static const struct { uint32_t f; uint16_t h; const char *what; } c16[] = {
        {0x3F800000u, 0x3C00, "1.0"},
        {0xC0000000u, 0xC000, "-2.0"},
        {0x80000000u, 0x8000, "-0.0"},
        {0x477FE000u, 0x7BFF, "65504 (max half)"},
        {0x477FEFFFu, 0x7BFF, "just below 65520 rounds down"},
        {0x477FF000u, 0x7C00, "65520: tie between 65504 and 2^16, even -> inf"},
        {0x49742400u, 0x7C00, "1e6 overflows to inf"},
        {0xC9742400u, 0xFC00, "-1e6 overflows to -inf"},
        {0x7F800000u, 0x7C00, "inf"},
        {0x3F801000u, 0x3C00, "1 + 2^-11: tie, even -> 1"},
        {0x3F803000u, 0x3C02, "1 + 3*2^-11: tie, even -> 1 + 2^-9"},
        {0x3F801001u, 0x3C01, "1 + 2^-11 + 2^-23: above the tie"},
        {0x33800000u, 0x0001, "2^-24, smallest subnormal"},
        {0x33000000u, 0x0000, "2^-25: tie between 0 and 2^-24, even -> 0"},
        {0x33000001u, 0x0001, "just above 2^-25"},
        {0x33C00000u, 0x0002, "3*2^-25: tie, even -> 2*2^-24"},
        {0x387FC000u, 0x03FF, "1023*2^-24, largest subnormal"},
        {0x387FE000u, 0x0400, "1023.5*2^-24: tie, even -> 2^-14"},
        {0x38800000u, 0x0400, "2^-14, smallest normal"},
        {0x2F800000u, 0x0000, "2^-32 underflows to 0"},
    };
    for (size_t i = 0; i < sizeof c16 / sizeof c16[0]; i++) {
        uint16_t h = pf_fp32_to_fp16(f32_of(c16[i].f));
        CHECK(T, h == c16[i].h, "fp16(%s) = 0x%04x, want 0x%04x", c16[i].what, h, c16[i].h);
    }
    uint16_t hn = pf_fp32_to_fp16(NAN);
    CHECK(T, (hn & 0x7C00) == 0x7C00 && (hn & 0x03FF) != 0, "fp16(NaN) = 0x%04x is NaN", hn);
    CHECK(T, pf_fp16_to_fp32(0x0001) == f32_of(0x33800000u) && pf_fp16_to_fp32(0x7BFF) == 65504.0f &&
             pf_fp16_to_fp32(0xC000) == -2.0f && isinf(pf_fp16_to_fp32(0xFC00)), "fp16 -> fp32 values");

    static const struct { uint32_t f; uint16_t h; const char *what; } cbf[] = {
        {0x3F800000u, 0x3F80, "1.0"},
        {0x3F808000u, 0x3F80, "1 + 2^-8: tie, even -> 1"},
        {0x3F818000u, 0x3F82, "1 + 3*2^-8: tie, even -> 1 + 2^-6"},
        {0x3F808001u, 0x3F81, "above the tie"},
        {0x7F7FFFFFu, 0x7F80, "FLT_MAX rounds to inf"},
        {0x00000001u, 0x0000, "smallest f32 subnormal -> 0"},
    };
    for (size_t i = 0; i < sizeof cbf / sizeof cbf[0]; i++) {
        uint16_t h = pf_fp32_to_bf16(f32_of(cbf[i].f));
        CHECK(T, h == cbf[i].h, "bf16(%s) = 0x%04x, want 0x%04x", cbf[i].what, h, cbf[i].h);
    }
    uint16_t bn = pf_fp32_to_bf16(f32_of(0x7F800001u)); /* signalling NaN with a low payload */
    CHECK(T, (bn & 0x7F80) == 0x7F80 && (bn & 0x007F) != 0, "bf16(sNaN) = 0x%04x stays NaN", bn);
}

/* Rows of zeros come back as exact zeros; a constant row comes back within fp16 rounding of
 * its scale; huge and tiny magnitudes never produce inf/NaN. */
static void test_special_rows(pf_test *T) {
    enum { N = 512 };
    float x[N], y[N];
    static uint8_t q[N * 4];
    const float consts[] = {0.0f, 0.37f, -2.5f, 1e-3f, 3000.0f};
    for (int k = 0; k < N_TYPES; k++) {
        const pf_type t = k_all_types[k];
        const pf_type_traits *tr = pf_type_get(t);
        for (size_t c = 0; c < sizeof consts / sizeof consts[0]; c++) {
            for (int i = 0; i < N; i++) x[i] = consts[c];
            tr->from_float(x, q, N);
            tr->to_float(q, y, N);
            double worst = 0;
            for (int i = 0; i < N; i++) worst = fmax(worst, fabs((double)y[i] - x[i]));
            /* Relative 1.1e-3 covers fp16 scale rounding (2^-11) and BF16's 2^-9 (4e-3). At
             * c = 1e-3 the K-quant super-scales (Q6_K: d = c/4096) are fp16 subnormals with a
             * 2^-24 step, so only ~3% resolution is left there (a limit of the format). */
            const double rel = t == PF_TYPE_BF16 ? 4e-3 : (fabsf(consts[c]) < 0.01f ? 0.03 : 1.1e-3);
            const double tol = fabs(consts[c]) * rel;
            CHECK(T, worst <= tol, "%s constant %g: max error %g > %g", tr->name, consts[c], worst, tol);
        }
        /* Magnitudes at the edges of the fp16 scale range: finite output. */
        const float mags[] = {1e-30f, 1e-7f, 1e5f, 3e8f};
        pf_test_rng r = {42};
        for (size_t m = 0; m < sizeof mags / sizeof mags[0]; m++) {
            for (int i = 0; i < N; i++) x[i] = mags[m] * pf_test_gauss(&r);
            tr->from_float(x, q, N);
            tr->to_float(q, y, N);
            bool fin = true;
            for (int i = 0; i < N; i++) fin = fin && (isfinite(y[i]) || (t == PF_TYPE_F16 && mags[m] > 6e4f));
            CHECK(T, fin, "%s magnitude %g: non-finite output", tr->name, mags[m]);
        }
    }
}

/* Inputs the searches must survive (sanitizer builds catch out-of-range conversions and table
 * reads): NaNs, infinities, values near FLT_MAX among ordinary ones, and rows whose offset
 * dwarfs their spread (fp16 scales then resolve poorly and the fast rounding's magnitude guard
 * sends groups down the exact slow path). Every quantized type must give finite output, and the
 * offset rows stay within 1e-3 of the offset (fp16 scale resolution) of the input. */
static void test_odd_rows(pf_test *T) {
    enum { N = 1024 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    for (int kind = 0; kind < 5; kind++) {
        pf_test_rng r = {0xC0FFEEull + (uint64_t)kind};
        for (int i = 0; i < N; i++) {
            const float g = pf_test_gauss(&r);
            switch (kind) {
            case 0: x[i] = (i % 37 == 5) ? NAN : g; break;
            case 1: x[i] = (i % 53 == 7) ? (i % 2 ? INFINITY : -INFINITY) : g; break;
            case 2: x[i] = (i % 64 == 0) ? 3e38f : g; break;
            case 3: x[i] = 1000.0f + 1e-3f * g; break;
            default: x[i] = -1000.0f + 1e-3f * g; break;
            }
        }
        for (int k = 0; k < N_TYPES; k++) {
            const pf_type_traits *tr = pf_type_get(k_all_types[k]);
            if (!tr->is_quantized) continue;
            tr->from_float(x, q, N);
            tr->to_float(q, y, N);
            bool fin = true;
            double worst = 0.0;
            for (int i = 0; i < N; i++) {
                fin = fin && isfinite(y[i]);
                worst = fmax(worst, fabs((double)y[i] - x[i]));
            }
            CHECK(T, fin, "%s odd row %d: non-finite output", tr->name, kind);
            if (kind >= 3) CHECK(T, worst <= 1.0, "%s offset row %d: max error %g > 1e-3 of 1000", tr->name, kind, worst);
        }
    }
}

int main(void) {
    pf_test t = {0, 0};
    test_traits(&t);
    test_halves(&t);
    test_golden(&t);
    test_rmse(&t);
    test_vec_dot(&t);
    test_special_rows(&t);
    test_odd_rows(&t);
    return TEST_REPORT(&t);
}
