/* Embedding models: llama.cpp's embeddings of two tiny BERT models (CLS and MEAN pooling), one
 * text at a time and batched; a random tiny nomic-bert written here with the GGUF writer, checked
 * against a naive double-precision reference forward (also run on the BERT models); empty and
 * over-long texts; hostile files (missing / misshaped tensors, unknown architecture, missing
 * keys); throughput on 2 threads. */
#include <cjson/cJSON.h>
#include <math.h>
#include <time.h>

#include "testing.h"

#define NTEXT 8

static char g_text_buf[4096];
static const char *g_texts[NTEXT];

static bool load_texts(void) {
    char path[256];
    size_t n = 0;
    char *raw = pf_test_data_path(path, sizeof path, "embed", "embed-texts.txt") ? pf_test_read_file(path, &n) : NULL;
    if (!raw || n >= sizeof g_text_buf) {
        free(raw);
        return false;
    }
    memcpy(g_text_buf, raw, n);
    free(raw);
    g_text_buf[n] = 0;
    char *s = g_text_buf;
    for (int i = 0; i < NTEXT; i++) {
        char *nl = strchr(s, '\n');
        if (!nl) return false;
        *nl = 0;
        g_texts[i] = s;
        s = nl + 1;
    }
    return true;
}

/* The golden embeddings: NTEXT × dim floats (malloc'd), NULL when unreadable. */
static float *load_golden(const char *model, int64_t dim) {
    char name[128], path[256];
    size_t n = 0;
    snprintf(name, sizeof name, "%s.embeddings.json", model);
    char *raw = pf_test_data_path(path, sizeof path, "embed", name) ? pf_test_read_file(path, &n) : NULL;
    cJSON *root = raw ? cJSON_ParseWithLength(raw, n) : NULL;
    free(raw);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    float *out = cJSON_GetArraySize(data) == NTEXT ? malloc((size_t)(NTEXT * dim) * sizeof(float)) : NULL;
    for (int i = 0; out && i < NTEXT; i++) {
        const cJSON *item = cJSON_GetArrayItem(data, i);
        const cJSON *emb = cJSON_GetObjectItemCaseSensitive(item, "embedding");
        int idx = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(item, "index"));
        if (cJSON_GetArraySize(emb) != dim || idx < 0 || idx >= NTEXT) {
            free(out);
            out = NULL;
            break;
        }
        for (int64_t k = 0; k < dim; k++) out[idx * dim + k] = (float)cJSON_GetNumberValue(cJSON_GetArrayItem(emb, (int)k));
    }
    cJSON_Delete(root);
    return out;
}

static double cosine(const float *a, const float *b, int64_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb + 1e-300);
}

static double cosine_d(const float *a, const double *b, int64_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) ab += a[i] * b[i], aa += (double)a[i] * a[i], bb += b[i] * b[i];
    return ab / sqrt(aa * bb + 1e-300);
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* ---- naive double-precision reference forward (spec 6.4), straight from the GGUF ------------ */

typedef struct ref_ctx {
    const pf_gguf *g;
    char arch[16];
    bool nomic;
    int64_t E, F, H, L;
    double eps, theta;
    int64_t pooling;
} ref_ctx;

/* Tensor `name` as doubles (malloc'd), NULL when absent. */
static double *ref_tensor(const ref_ctx *r, const char *name) {
    int64_t i = pf_gguf_find_tensor(r->g, name);
    if (i < 0) return NULL;
    const pf_tensor_info *ti = pf_gguf_tensor(r->g, i);
    int64_t n = pf_tensor_nelements(ti);
    float *f = malloc((size_t)n * sizeof(float));
    double *d = malloc((size_t)n * sizeof(double));
    pf_type_get(ti->type)->to_float(ti->data, f, n);
    for (int64_t k = 0; k < n; k++) d[k] = f[k];
    free(f);
    return d;
}

static int64_t ref_int(const ref_ctx *r, const char *key, int64_t def) {
    char full[96];
    int64_t v = def;
    snprintf(full, sizeof full, "%s.%s", r->arch, key);
    pf_gguf_get_int(r->g, full, &v, NULL);
    return v;
}

/* y[n][o] = Σ_i W[o][i] x[n][i] + b[o]; W has n_out rows of n_in. */
static void ref_linear(const double *W, const double *b, const double *x, int64_t n, int64_t n_in, int64_t n_out,
                       double *y) {
    for (int64_t t = 0; t < n; t++)
        for (int64_t o = 0; o < n_out; o++) {
            double acc = b ? b[o] : 0.0;
            for (int64_t i = 0; i < n_in; i++) acc += W[o * n_in + i] * x[t * n_in + i];
            y[t * n_out + o] = acc;
        }
}

static void ref_layernorm(double *x, const double *w, const double *b, int64_t n, int64_t E, double eps) {
    for (int64_t t = 0; t < n; t++) {
        double *v = x + t * E, mean = 0, var = 0;
        for (int64_t i = 0; i < E; i++) mean += v[i] / (double)E;
        for (int64_t i = 0; i < E; i++) var += (v[i] - mean) * (v[i] - mean) / (double)E;
        for (int64_t i = 0; i < E; i++) v[i] = (v[i] - mean) / sqrt(var + eps) * w[i] + b[i];
    }
}

/* NeoX rotation of one head at position p. */
static void ref_rope(double *x, int64_t d, int64_t p, double theta) {
    for (int64_t i = 0; i < d / 2; i++) {
        double a = (double)p * pow(theta, -2.0 * (double)i / (double)d), x0 = x[i], x1 = x[i + d / 2];
        x[i] = x0 * cos(a) - x1 * sin(a);
        x[i + d / 2] = x1 * cos(a) + x0 * sin(a);
    }
}

static double ref_gelu(double v) { return 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))); }

/* One encoder layer on x[n][E]. */
static void ref_layer(const ref_ctx *r, int64_t il, double *x, int64_t n) {
    const int64_t E = r->E, F = r->F, H = r->H, d = E / H;
    char nm[96];
#define W(s) (snprintf(nm, sizeof nm, "blk.%lld.%s", (long long)il, s), ref_tensor(r, nm))
    double *q = malloc(sizeof(double) * (size_t)(n * E)), *k = malloc(sizeof(double) * (size_t)(n * E));
    double *v = malloc(sizeof(double) * (size_t)(n * E)), *a = calloc((size_t)(n * E), sizeof(double));
    double *o = malloc(sizeof(double) * (size_t)(n * E)), *f = malloc(sizeof(double) * (size_t)(n * F));
    double *s = malloc(sizeof(double) * (size_t)n);
    if (r->nomic) {
        double *wqkv = W("attn_qkv.weight"), *qkv = malloc(sizeof(double) * (size_t)(3 * n * E));
        ref_linear(wqkv, NULL, x, n, E, 3 * E, qkv);
        for (int64_t t = 0; t < n; t++)
            for (int64_t i = 0; i < E; i++)
                q[t * E + i] = qkv[t * 3 * E + i], k[t * E + i] = qkv[t * 3 * E + E + i], v[t * E + i] = qkv[t * 3 * E + 2 * E + i];
        for (int64_t t = 0; t < n; t++)
            for (int64_t h = 0; h < H; h++) ref_rope(q + t * E + h * d, d, t, r->theta), ref_rope(k + t * E + h * d, d, t, r->theta);
        free(wqkv), free(qkv);
    } else {
        const char *nq[3][2] = {{"attn_q.weight", "attn_q.bias"}, {"attn_k.weight", "attn_k.bias"}, {"attn_v.weight", "attn_v.bias"}};
        double *dst[3] = {q, k, v};
        for (int j = 0; j < 3; j++) {
            double *w = W(nq[j][0]), *b = W(nq[j][1]);
            ref_linear(w, b, x, n, E, E, dst[j]);
            free(w), free(b);
        }
    }
    for (int64_t h = 0; h < H; h++)
        for (int64_t t = 0; t < n; t++) {
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < n; j++) {
                double dot = 0;
                for (int64_t i = 0; i < d; i++) dot += q[t * E + h * d + i] * k[j * E + h * d + i];
                s[j] = dot / sqrt((double)d);
                mx = fmax(mx, s[j]);
            }
            for (int64_t j = 0; j < n; j++) sum += (s[j] = exp(s[j] - mx));
            for (int64_t j = 0; j < n; j++)
                for (int64_t i = 0; i < d; i++) a[t * E + h * d + i] += s[j] / sum * v[j * E + h * d + i];
        }
    double *wo = W("attn_output.weight"), *bo = W("attn_output.bias");
    ref_linear(wo, bo, a, n, E, E, o);
    for (int64_t i = 0; i < n * E; i++) x[i] += o[i];
    double *nw = W("attn_output_norm.weight"), *nb = W("attn_output_norm.bias");
    ref_layernorm(x, nw, nb, n, E, r->eps);
    free(wo), free(bo), free(nw), free(nb);
    double *wu = W("ffn_up.weight"), *bu = W("ffn_up.bias"), *wd = W("ffn_down.weight"), *bd = W("ffn_down.bias");
    ref_linear(wu, bu, x, n, E, F, f);
    if (r->nomic) { /* f = up ⊙ silu(gate) */
        double *wg = W("ffn_gate.weight"), *gt = malloc(sizeof(double) * (size_t)(n * F));
        ref_linear(wg, NULL, x, n, E, F, gt);
        for (int64_t i = 0; i < n * F; i++) f[i] *= gt[i] / (1.0 + exp(-gt[i]));
        free(wg), free(gt);
    } else {
        for (int64_t i = 0; i < n * F; i++) f[i] = ref_gelu(f[i]);
    }
    ref_linear(wd, bd, f, n, F, E, o);
    for (int64_t i = 0; i < n * E; i++) x[i] += o[i];
    nw = W("layer_output_norm.weight"), nb = W("layer_output_norm.bias");
    ref_layernorm(x, nw, nb, n, E, r->eps);
    free(wu), free(bu), free(wd), free(bd), free(nw), free(nb);
#undef W
    free(q), free(k), free(v), free(a), free(o), free(f), free(s);
}

/* Pooled, L2-normalized embedding of ids[0..n) by the model in g. */
static int ref_embed(const pf_gguf *g, const int32_t *ids, int64_t n, double *out) {
    ref_ctx r = {.g = g};
    const char *arch = NULL;
    if (pf_gguf_get_str(g, "general.architecture", &arch, NULL) != PF_OK) return -1;
    snprintf(r.arch, sizeof r.arch, "%s", arch);
    r.nomic = !strcmp(arch, "nomic-bert");
    r.E = ref_int(&r, "embedding_length", 0), r.F = ref_int(&r, "feed_forward_length", 0);
    r.H = ref_int(&r, "attention.head_count", 1), r.L = ref_int(&r, "block_count", 0);
    r.pooling = ref_int(&r, "pooling_type", 1);
    char key[96];
    snprintf(key, sizeof key, "%s.attention.layer_norm_epsilon", arch);
    r.eps = 1e-12;
    pf_gguf_get_float(g, key, &r.eps, NULL);
    snprintf(key, sizeof key, "%s.rope.freq_base", arch);
    r.theta = 10000;
    pf_gguf_get_float(g, key, &r.theta, NULL);
    const int64_t E = r.E;
    double *te = ref_tensor(&r, "token_embd.weight"), *ty = ref_tensor(&r, "token_types.weight");
    double *pe = ref_tensor(&r, "position_embd.weight"), *x = malloc(sizeof(double) * (size_t)(n * E));
    for (int64_t t = 0; t < n; t++)
        for (int64_t i = 0; i < E; i++)
            x[t * E + i] = te[ids[t] * E + i] + (ty ? ty[i] : 0) + (pe ? pe[t * E + i] : 0);
    double *nw = ref_tensor(&r, "token_embd_norm.weight"), *nb = ref_tensor(&r, "token_embd_norm.bias");
    ref_layernorm(x, nw, nb, n, E, r.eps);
    free(te), free(ty), free(pe), free(nw), free(nb);
    for (int64_t il = 0; il < r.L; il++) ref_layer(&r, il, x, n);
    double ss = 0;
    for (int64_t i = 0; i < E; i++) {
        double acc = 0;
        if (r.pooling == 2) acc = x[i];
        else if (r.pooling == 3) acc = x[(n - 1) * E + i];
        else
            for (int64_t t = 0; t < n; t++) acc += x[t * E + i] / (double)n;
        out[i] = acc;
        ss += acc * acc;
    }
    for (int64_t i = 0; i < E; i++) out[i] /= sqrt(ss);
    free(x);
    return 0;
}

/* ---- goldens ------------------------------------------------------------------------------ */

/* Golden check of one tiny BERT: per-text cosine vs llama.cpp, batched == unbatched, and the
 * reference forward. Returns the min cosine vs the golden. */
static double test_golden(pf_test *t, const char *model, pf_pooling pooling) {
    char file[128], path[256];
    snprintf(file, sizeof file, "%s.gguf", model);
    pf_error err = {0};
    pf_embedder *e = NULL;
    if (!pf_test_data_path(path, sizeof path, "embed", file) || pf_embedder_load(path, 2, &e, &err) != PF_OK) {
        CHECK(t, false, "load %s: %s", file, err.msg);
        return 0;
    }
    const int64_t dim = pf_embedder_dim(e);
    CHECK(t, pf_embedder_pooling(e) == pooling && !strcmp(pf_embedder_arch(e), "bert") &&
                 pf_embedder_max_tokens(e) == 512 && !strcmp(pf_embedder_name(e), "bert-bge"),
          "%s: metadata", model);
    float *gold = load_golden(model, dim);
    CHECK(t, gold != NULL, "%s: golden json", model);
    float *one = calloc((size_t)(NTEXT * dim), sizeof(float)), *all = calloc((size_t)(NTEXT * dim), sizeof(float));
    double min_cos = 1.0, min_ref = 1.0, diff = 0.0;
    for (int i = 0; i < NTEXT; i++)
        CHECK(t, pf_embed(e, &g_texts[i], 1, one + i * dim, &err) == 0, "%s text %d: %s", model, i, err.msg);
    CHECK(t, pf_embed(e, g_texts, NTEXT, all, &err) == 0, "%s batched: %s", model, err.msg);
    diff = max_abs_diff(one, all, NTEXT * dim);
    CHECK(t, diff <= 1e-5, "%s: batched vs one at a time differ by %g", model, diff);
    /* several smaller batches (padding to different lengths) */
    pf_embedder_set_batch(e, 40, NULL);
    CHECK(t, pf_embed(e, g_texts, NTEXT, all, &err) == 0, "%s small batches: %s", model, err.msg);
    double diff2 = max_abs_diff(one, all, NTEXT * dim);
    CHECK(t, diff2 <= 1e-5, "%s: 40-row batches vs one at a time differ by %g", model, diff2);
    for (int i = 0; gold && i < NTEXT; i++) {
        double c = cosine(one + i * dim, gold + i * dim, dim);
        min_cos = fmin(min_cos, c);
        CHECK(t, c >= 0.9999, "%s text %d: cosine %.7f vs llama.cpp", model, i, c);
        double ss = 0;
        for (int64_t k = 0; k < dim; k++) ss += (double)one[i * dim + k] * one[i * dim + k];
        CHECK(t, fabs(ss - 1) < 1e-5, "%s text %d: |v|^2 = %g", model, i, ss);
    }
    /* independent double-precision reference on the same token ids */
    const pf_tokenizer *tok = pf_embedder_tokenizer(e);
    pf_gguf *g = NULL;
    CHECK(t, pf_gguf_open(path, &g, &err) == PF_OK, "reopen %s", path);
    for (int i = 0; g && i < NTEXT; i++) {
        int32_t ids[512];
        int64_t n = pf_tokenize_truncate(tok, g_texts[i], strlen(g_texts[i]), true, 512, ids, NULL, NULL);
        double ref[1024];
        CHECK(t, ref_embed(g, ids, n, ref) == 0, "%s: reference forward", model);
        double c = cosine_d(one + i * dim, ref, dim);
        min_ref = fmin(min_ref, c);
        CHECK(t, c >= 0.99999, "%s text %d: cosine %.7f vs reference", model, i, c);
    }
    pf_gguf_close(g);
    printf("%s: min cosine %.7f (1 - cos = %.2e) vs llama.cpp, %.8f vs double reference; batched - single max |diff| %.2g / %.2g\n",
           model, min_cos, 1.0 - min_cos, min_ref, diff, diff2);
    free(gold);
    free(one);
    free(all);
    pf_embedder_free(e);
    return min_cos;
}

/* ---- a random tiny nomic-bert ------------------------------------------------------------- */

#define NB_E 64
#define NB_H 4
#define NB_F 96
#define NB_L 2
#define NB_CTX 48

typedef struct tensor_list {
    void *data[64];
    int n;
} tensor_list;

/* Adds tensor `name` [ne0, ne1] (ne1 == 0: 1-D) of random values (scale * N(0,1) + offset),
 * stored as F16 for matrices and F32 for vectors. */
static void add_random(pf_gguf_writer *w, tensor_list *tl, pf_test_rng *rng, const char *name, int64_t ne0,
                       int64_t ne1, double scale, double offset) {
    const int64_t n = ne0 * (ne1 ? ne1 : 1);
    const pf_type type = ne1 ? PF_TYPE_F16 : PF_TYPE_F32;
    float *f = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) f[i] = (float)(offset + scale * pf_test_gauss(rng));
    void *data = f;
    if (type == PF_TYPE_F16) {
        data = malloc((size_t)n * 2);
        pf_type_get(PF_TYPE_F16)->from_float(f, data, n);
        free(f);
    }
    tl->data[tl->n++] = data;
    const int64_t ne[2] = {ne0, ne1 ? ne1 : 1};
    pf_gguf_writer_add_tensor(w, name, type, ne1 ? 2 : 1, ne, data, NULL);
}

static const char *const NB_WORDS[] = {"the", "pump", "operates", "at", "bar", "filter", "replace", "every", "hours",
                                       "what", "is", "torque", "for", "bolts", "safety", "wear", "gloves", "when"};

/* Writes the model to path; `skip` names a tensor to leave out (NULL: none). */
static int write_nomic(const char *path, const char *skip) {
    const char *toks[128];
    int32_t types[128];
    char buf[128][16];
    int nv = 0;
    static const char *const special[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (int i = 0; i < 5; i++) types[nv] = 3, toks[nv++] = special[i];
    for (size_t i = 0; i < sizeof NB_WORDS / sizeof *NB_WORDS; i++, nv++)
        snprintf(buf[nv], 16, "\xE2\x96\x81%s", NB_WORDS[i]), toks[nv] = buf[nv], types[nv] = 1;
    for (char c = 'a'; c <= 'z'; c++, nv++) snprintf(buf[nv], 16, "\xE2\x96\x81%c", c), toks[nv] = buf[nv], types[nv] = 1;
    for (char c = 'a'; c <= 'z'; c++, nv++) snprintf(buf[nv], 16, "%c", c), toks[nv] = buf[nv], types[nv] = 1;
    for (char c = '0'; c <= '9'; c++, nv++) snprintf(buf[nv], 16, "\xE2\x96\x81%c", c), toks[nv] = buf[nv], types[nv] = 1;
    for (const char *p = ".,!?:-^+=()"; *p; p++, nv++) snprintf(buf[nv], 16, "\xE2\x96\x81%c", *p), toks[nv] = buf[nv], types[nv] = 1;
    pf_gguf_writer *w = NULL;
    if (pf_gguf_writer_create(&w, NULL)) return -1;
    pf_gguf_writer_set_str(w, "general.architecture", "nomic-bert", NULL);
    pf_gguf_writer_set_str(w, "general.name", "nomic-tiny", NULL);
    pf_gguf_writer_set_u32(w, "nomic-bert.block_count", NB_L, NULL);
    pf_gguf_writer_set_u32(w, "nomic-bert.context_length", NB_CTX, NULL);
    pf_gguf_writer_set_u32(w, "nomic-bert.embedding_length", NB_E, NULL);
    pf_gguf_writer_set_u32(w, "nomic-bert.feed_forward_length", NB_F, NULL);
    pf_gguf_writer_set_u32(w, "nomic-bert.attention.head_count", NB_H, NULL);
    pf_gguf_writer_set_f32(w, "nomic-bert.attention.layer_norm_epsilon", 1e-12f, NULL);
    pf_gguf_writer_set_bool(w, "nomic-bert.attention.causal", false, NULL);
    pf_gguf_writer_set_u32(w, "nomic-bert.pooling_type", 1, NULL);
    pf_gguf_writer_set_f32(w, "nomic-bert.rope.freq_base", 1000.0f, NULL);
    pf_gguf_writer_set_str(w, "tokenizer.ggml.model", "bert", NULL);
    pf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, (uint64_t)nv, NULL);
    pf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", PF_GGUF_INT32, types, (uint64_t)nv, NULL);
    pf_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 1, NULL);
    pf_gguf_writer_set_u32(w, "tokenizer.ggml.cls_token_id", 2, NULL);
    pf_gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", 3, NULL);
    tensor_list tl = {0};
    pf_test_rng rng = {0x9E3779B97F4A7C15ull};
    const double s_e = 1.0 / sqrt(NB_E), s_f = 1.0 / sqrt(NB_F);
    char nm[64];
#define ADD(name, ne0, ne1, sc, off)                                                         \
    do {                                                                                     \
        snprintf(nm, sizeof nm, "%s", name);                                                 \
        if (!skip || strcmp(nm, skip)) add_random(w, &tl, &rng, nm, ne0, ne1, sc, off);      \
    } while (0)
    ADD("token_embd.weight", NB_E, nv, 1.0, 0);
    ADD("token_types.weight", NB_E, 2, 0.5, 0);
    ADD("token_embd_norm.weight", NB_E, 0, 0.1, 1);
    ADD("token_embd_norm.bias", NB_E, 0, 0.1, 0);
    for (int l = 0; l < NB_L; l++) {
        static const struct { const char *s; int ne0, ne1; double sc, off; } T[] = {
            {"attn_qkv.weight", NB_E, 3 * NB_E, 0, 0}, {"attn_output.weight", NB_E, NB_E, 0, 0},
            {"attn_output_norm.weight", NB_E, 0, 0.1, 1}, {"attn_output_norm.bias", NB_E, 0, 0.1, 0},
            {"ffn_up.weight", NB_E, NB_F, 0, 0}, {"ffn_gate.weight", NB_E, NB_F, 0, 0},
            {"ffn_down.weight", NB_F, NB_E, 0, 0}, {"layer_output_norm.weight", NB_E, 0, 0.1, 1},
            {"layer_output_norm.bias", NB_E, 0, 0.1, 0}};
        for (size_t k = 0; k < sizeof T / sizeof *T; k++) {
            char full[64];
            snprintf(full, sizeof full, "blk.%d.%s", l, T[k].s);
            double sc = T[k].ne1 ? 2.0 * (T[k].ne0 == NB_F ? s_f : s_e) : T[k].sc; /* matrices: 2/sqrt(n_in) */
            ADD(full, T[k].ne0, T[k].ne1, sc, T[k].off);
        }
    }
#undef ADD
    int rc = pf_gguf_writer_write(w, path, NULL, NULL, NULL);
    pf_gguf_writer_free(w);
    for (int i = 0; i < tl.n; i++) free(tl.data[i]);
    return rc;
}

static void test_nomic(pf_test *t) {
    const char *path = "build/tests/embed_nomic_tiny.gguf";
    CHECK(t, write_nomic(path, NULL) == PF_OK, "write %s", path);
    pf_error err = {0};
    pf_embedder *e = NULL;
    if (pf_embedder_load(path, 2, &e, &err) != PF_OK) {
        CHECK(t, false, "load nomic: %s", err.msg);
        return;
    }
    CHECK(t, !strcmp(pf_embedder_arch(e), "nomic-bert") && pf_embedder_dim(e) == NB_E &&
                 pf_embedder_max_tokens(e) == NB_CTX && pf_embedder_pooling(e) == PF_POOLING_MEAN &&
                 !strcmp(pf_embedder_name(e), "nomic-tiny"),
          "nomic metadata");
    enum { N = NTEXT + 2 };
    const char *texts[N];
    for (int i = 0; i < NTEXT; i++) texts[i] = g_texts[i];
    texts[NTEXT] = "";
    texts[NTEXT + 1] = "the pump the pump the pump the pump the pump the pump the pump the pump the pump the pump the "
                       "pump the pump the pump the pump the pump the pump the pump the pump the pump the pump the pump "
                       "the pump the pump the pump the pump the pump"; /* 52 words + [CLS][SEP] > 48 */
    float one[N * NB_E], all[N * NB_E];
    int64_t cut = 0, want_cut = 0;
    for (int i = 0; i < N; i++) { /* this vocabulary spells most words letter by letter */
        want_cut += pf_tokenize(pf_embedder_tokenizer(e), texts[i], strlen(texts[i]), true, false, NULL, 0, NULL) > NB_CTX;
        cut += pf_embed(e, &texts[i], 1, one + i * NB_E, &err);
    }
    CHECK(t, cut == want_cut && want_cut >= 1, "texts cut: %lld of %lld (%s)", (long long)cut, (long long)want_cut, err.msg);
    CHECK(t, pf_embed(e, texts, N, all, &err) == want_cut, "batched: texts cut (%s)", err.msg);
    double diff = max_abs_diff(one, all, N * NB_E), min_cos = 1;
    CHECK(t, diff <= 1e-5, "nomic batched vs single: %g", diff);
    pf_gguf *g = NULL;
    CHECK(t, pf_gguf_open(path, &g, &err) == PF_OK, "reopen");
    for (int i = 0; g && i < N; i++) {
        int32_t ids[NB_CTX];
        int64_t n = pf_tokenize_truncate(pf_embedder_tokenizer(e), texts[i], strlen(texts[i]), true, NB_CTX, ids, NULL, NULL);
        double ref[NB_E];
        ref_embed(g, ids, n, ref);
        double c = cosine_d(one + i * NB_E, ref, NB_E);
        min_cos = fmin(min_cos, c);
        CHECK(t, c >= 0.99999, "nomic text %d: cosine %.8f vs reference", i, c);
    }
    pf_gguf_close(g);
    printf("nomic-bert tiny: min cosine %.8f (1 - cos = %.2e) vs double reference, batched - single %.2g\n", min_cos,
           1 - min_cos, diff);
    pf_embedder_free(e);
}

/* ---- hostile files ------------------------------------------------------------------------ */

typedef struct variant {
    const char *skip;      /* tensor left out                          */
    const char *narrow;    /* tensor written with half its rows         */
    const char *key;       /* key changed (NULL: none) ...              */
    int kind;              /* 0 remove, 1 set u32 `val`, 2 set string, 3 set bool true */
    uint32_t val;
    const char *str;
} variant;

/* Copy of bert-tiny-cls with one change, loaded; returns the status, message in err. */
static int load_variant(const variant *v, pf_error *err) {
    char src[256];
    const char *path = "build/tests/embed_bad.gguf";
    pf_gguf *g = NULL;
    pf_gguf_writer *w = NULL;
    if (!pf_test_data_path(src, sizeof src, "embed", "bert-tiny-cls.gguf") || pf_gguf_open(src, &g, NULL) ||
        pf_gguf_writer_create(&w, NULL)) {
        pf_gguf_close(g);
        return -100;
    }
    pf_gguf_writer_copy_kvs(w, g, NULL);
    if (v->key && v->kind == 0) pf_gguf_writer_remove(w, v->key);
    if (v->key && v->kind == 1) pf_gguf_writer_set_u32(w, v->key, v->val, NULL);
    if (v->key && v->kind == 2) pf_gguf_writer_set_str(w, v->key, v->str, NULL);
    if (v->key && v->kind == 3) pf_gguf_writer_set_bool(w, v->key, true, NULL);
    for (int64_t i = 0; i < pf_gguf_n_tensors(g); i++) {
        const pf_tensor_info *ti = pf_gguf_tensor(g, i);
        int64_t ne[4] = {ti->ne[0], ti->ne[1], ti->ne[2], ti->ne[3]};
        if (v->skip && !strcmp(ti->name, v->skip)) continue;
        if (v->narrow && !strcmp(ti->name, v->narrow)) ne[ti->n_dims - 1] /= 2;
        pf_gguf_writer_add_tensor(w, ti->name, ti->type, ti->n_dims, ne, ti->data, NULL);
    }
    int rc = pf_gguf_writer_write(w, path, NULL, NULL, NULL);
    pf_gguf_writer_free(w);
    pf_gguf_close(g);
    if (rc) return -101;
    pf_embedder *e = NULL;
    rc = pf_embedder_load(path, 1, &e, err);
    pf_embedder_free(e);
    return rc;
}

static void test_hostile(pf_test *t) {
    static const struct {
        variant v;
        int rc;
        const char *needle;
    } cases[] = {
        {{.skip = "blk.1.attn_k.bias"}, PF_ERR_FORMAT, "tensor 'blk.1.attn_k.bias' is missing"},
        {{.skip = "position_embd.weight"}, PF_ERR_FORMAT, "'position_embd.weight' is missing"},
        {{.skip = "token_embd_norm.bias"}, PF_ERR_FORMAT, "'token_embd_norm.bias' is missing"},
        {{.narrow = "blk.0.ffn_up.weight"}, PF_ERR_FORMAT, "'blk.0.ffn_up.weight' has shape [64, 64], expected [64, 128]"},
        {{.narrow = "blk.1.layer_output_norm.weight"}, PF_ERR_FORMAT, "'blk.1.layer_output_norm.weight' has shape [32]"},
        {{.narrow = "token_embd.weight"}, PF_ERR_FORMAT, "'token_embd.weight' has shape [64, 15261], expected [64, 30522]"},
        {{.key = "general.architecture", .kind = 2, .str = "llama"}, PF_ERR_UNSUPPORTED, "'llama' is not an embedding"},
        {{.key = "general.architecture", .kind = 0}, PF_ERR_FORMAT, "general.architecture"},
        {{.key = "bert.block_count", .kind = 0}, PF_ERR_FORMAT, "missing hyperparameter key 'bert.block_count'"},
        {{.key = "bert.block_count", .kind = 1, .val = 3}, PF_ERR_FORMAT, "'blk.2.attn_q.weight' is missing"},
        {{.key = "bert.attention.head_count", .kind = 1, .val = 5}, PF_ERR_FORMAT, "does not split into 5"},
        {{.key = "bert.pooling_type", .kind = 1, .val = 0}, PF_ERR_UNSUPPORTED, "bert.pooling_type 0"},
        {{.key = "bert.pooling_type", .kind = 1, .val = 77}, PF_ERR_FORMAT, "bert.pooling_type 77"},
        {{.key = "bert.attention.causal", .kind = 3}, PF_ERR_UNSUPPORTED, "bert.attention.causal"},
        {{.key = "bert.context_length", .kind = 1, .val = 256}, PF_ERR_FORMAT, "'position_embd.weight' has shape [64, 512], expected [64, 256]"},
        {{.key = "tokenizer.ggml.model", .kind = 2, .str = "gpt2"}, PF_ERR_UNSUPPORTED, "gpt2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pf_error err = {0};
        int rc = load_variant(&cases[i].v, &err);
        CHECK(t, rc == cases[i].rc && strstr(err.msg, cases[i].needle) && strstr(err.msg, "embed_bad.gguf"),
              "hostile case %zu: rc %d, '%s' (want %d, '%s')", i, rc, err.msg, cases[i].rc, cases[i].needle);
    }
    pf_error err = {0};
    const char *nomic = "build/tests/embed_nomic_bad.gguf";
    pf_embedder *e = NULL;
    CHECK(t, write_nomic(nomic, "blk.1.ffn_gate.weight") == PF_OK, "write nomic variant");
    CHECK(t, pf_embedder_load(nomic, 1, &e, &err) == PF_ERR_FORMAT && strstr(err.msg, "'blk.1.ffn_gate.weight' is missing"),
          "nomic without ffn_gate: %s", err.msg);
    CHECK(t, pf_embedder_load("build/tests/no-such-file.gguf", 1, &e, &err) < 0 && !e && strstr(err.msg, "no-such-file"), "missing file: %s", err.msg);
    char path[256];
    pf_test_data_path(path, sizeof path, "models", "phi3-tiny-f16.gguf");
    CHECK(t, pf_embedder_load(path, 1, &e, &err) == PF_ERR_UNSUPPORTED && strstr(err.msg, "'phi3'"), "phi3: %s", err.msg);
}

/* ---- API edges: empty and over-long texts, bad arguments ------------------------------------ */

static void test_edges(pf_test *t) {
    char path[256];
    pf_error err = {0};
    pf_embedder *e = NULL;
    if (!pf_test_data_path(path, sizeof path, "embed", "bert-tiny-mean.gguf") || pf_embedder_load(path, 2, &e, &err)) {
        CHECK(t, false, "load: %s", err.msg);
        return;
    }
    const int64_t E = pf_embedder_dim(e);
    float a[96], b[96];
    const char *empty = "";
    const int32_t cls_sep[] = {101, 102}, *pcs = cls_sep;
    const int64_t two = 2;
    CHECK(t, pf_embed(e, &empty, 1, a, &err) == 0 && pf_embed_tokens(e, &pcs, &two, 1, b, &err) == 0, "empty: %s", err.msg);
    double ss = 0;
    for (int64_t i = 0; i < E; i++) ss += (double)a[i] * a[i];
    CHECK(t, max_abs_diff(a, b, E) == 0 && fabs(ss - 1) < 1e-5, "empty text = [CLS][SEP], unit norm");
    /* 600 words: cut to 511 tokens + [SEP], reported */
    size_t cap = 600 * 6 + 1, n = 0;
    char *long_text = malloc(cap);
    for (int i = 0; i < 600; i++) n += (size_t)snprintf(long_text + n, cap - n, "%s ", i % 2 ? "pump" : "valve");
    const char *texts[3] = {long_text, "short text", long_text};
    float out[3 * 96];
    CHECK(t, pf_embed(e, texts, 3, out, &err) == 2, "two texts cut: %s", err.msg);
    int32_t ids[512];
    bool cut = false;
    int64_t m = pf_tokenize_truncate(pf_embedder_tokenizer(e), long_text, n, true, 512, ids, &cut, NULL);
    const int32_t *pid = ids;
    CHECK(t, m == 512 && cut && ids[511] == 102 && pf_embed_tokens(e, &pid, &m, 1, b, &err) == 0, "truncated ids");
    CHECK(t, max_abs_diff(out, b, E) <= 1e-5 && max_abs_diff(out + 2 * E, b, E) <= 1e-5, "long text = its first 511 + [SEP]");
    free(long_text);
    /* bad arguments */
    const char *null_text[1] = {NULL};
    const int32_t bad[] = {101, 40000, 102}, *pbad = bad;
    const int64_t three = 3, big = 513;
    CHECK(t, pf_embed(e, null_text, 1, a, &err) == PF_ERR_ARG, "NULL text");
    CHECK(t, pf_embed_tokens(e, &pbad, &three, 1, a, &err) == PF_ERR_ARG && strstr(err.msg, "40000"), "bad id: %s", err.msg);
    CHECK(t, pf_embed_tokens(e, &pid, &big, 1, a, &err) == PF_ERR_ARG, "too many tokens");
    CHECK(t, pf_embed(e, NULL, 0, NULL, &err) == 0, "n = 0");
    CHECK(t, pf_embedder_set_batch(e, 0, &err) == PF_ERR_ARG, "batch 0");
    pf_embedder_free(e);
}

/* ---- throughput --------------------------------------------------------------------------- */

static void test_speed(pf_test *t) {
    char path[256];
    pf_error err = {0};
    pf_embedder *e = NULL;
    if (!pf_test_data_path(path, sizeof path, "embed", "bert-tiny-cls.gguf") || pf_embedder_load(path, 2, &e, &err)) {
        CHECK(t, false, "load: %s", err.msg);
        return;
    }
    enum { N = 64 };
    const char *texts[N];
    int64_t tokens = 0;
    for (int i = 0; i < N; i++) {
        texts[i] = g_texts[i % NTEXT];
        tokens += pf_tokenize(pf_embedder_tokenizer(e), texts[i], strlen(texts[i]), true, false, NULL, 0, NULL);
    }
    float *out = malloc(sizeof(float) * N * 64);
    pf_embed(e, texts, N, out, &err); /* warm-up: buffers sized */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int reps = 0, fails = 0;
    double sec = 0;
    while (sec < 0.3 && reps < 200) {
        fails += pf_embed(e, texts, N, out, &err) != 0;
        reps++;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    }
    CHECK(t, fails == 0, "speed runs: %s", err.msg);
    printf("bert-tiny-cls, 2 threads, batches of %d texts: %.0f texts/s, %.0f tokens/s\n", N, reps * N / sec,
           (double)(reps * tokens) / sec);
    free(out);
    pf_embedder_free(e);
}

/* ---- the command line --------------------------------------------------------------------- */

static void test_cli(pf_test *t) {
    char path[256], cmd[1024];
    pf_error err = {0};
    pf_embedder *e = NULL;
    if (!pf_test_data_path(path, sizeof path, "embed", "bert-tiny-cls.gguf") || pf_embedder_load(path, 1, &e, &err)) {
        CHECK(t, false, "load: %s", err.msg);
        return;
    }
    const char *texts[2] = {"Hello world", ""};
    float want[2 * 64];
    pf_embed(e, texts, 2, want, &err);
    snprintf(cmd, sizeof cmd, "printf 'Hello world\\n\\n' | ./build/phiforge embed -m %s --json -t 1 -f - 2>&1", path);
    FILE *p = popen(cmd, "r");
    char line[8192];
    int lines = 0;
    double worst = 0;
    while (p && fgets(line, sizeof line, p)) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *emb = cJSON_GetObjectItemCaseSensitive(o, "embedding");
        int idx = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(o, "index"));
        if (cJSON_GetArraySize(emb) == 64 && idx >= 0 && idx < 2) {
            for (int k = 0; k < 64; k++)
                worst = fmax(worst, fabs(cJSON_GetNumberValue(cJSON_GetArrayItem(emb, k)) - want[idx * 64 + k]));
            lines++;
        } else {
            fprintf(stderr, "cli: %s", line);
        }
        cJSON_Delete(o);
    }
    int rc = p ? pclose(p) : -1;
    CHECK(t, rc == 0 && lines == 2 && worst < 1e-6, "embed --json -f -: rc %d, %d lines, max diff %g", rc, lines, worst);
    snprintf(cmd, sizeof cmd, "./build/phiforge embed -m %s 'a b' c 2>&1", path);
    p = popen(cmd, "r");
    lines = 0;
    while (p && fgets(line, sizeof line, p)) {
        int n = 0;
        for (char *s = line, *end; strtof(s, &end), end != s; s = end) n++;
        lines += n == 64;
    }
    rc = p ? pclose(p) : -1;
    CHECK(t, rc == 0 && lines == 2, "embed TEXT TEXT: rc %d, %d vectors of 64", rc, lines);
    p = popen("./build/phiforge embed -m tests/data/ggml-vocab-bert-bge.gguf x 2>&1", "r");
    line[0] = 0;
    while (p && fgets(line, sizeof line, p)) {}
    rc = p ? pclose(p) : 0;
    CHECK(t, rc != 0 && strstr(line, "token_embd.weight"), "vocab-only file refused: %s", line);
    pf_embedder_free(e);
}

int main(void) {
    pf_test t = {0};
    CHECK(&t, load_texts(), "embed-texts.txt");
    test_golden(&t, "bert-tiny-cls", PF_POOLING_CLS);
    test_golden(&t, "bert-tiny-mean", PF_POOLING_MEAN);
    test_nomic(&t);
    test_hostile(&t);
    test_edges(&t);
    test_cli(&t);
    test_speed(&t);
    return TEST_REPORT(&t);
}
