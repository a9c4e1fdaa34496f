/* Random-weight models (`phiforge init`) and the end-to-end benchmark (`phiforge bench`):
 * layouts and metadata against the spec and the golden files, loading, determinism, sane
 * logits, the command lines. Only small models are written (full-size layouts are checked
 * through pf_init_tensors and --vocab-only files). */
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "testing.h"

#define BIN "./build/phiforge"

/* A 2-layer model big enough for the K-quants (rows of 256), with GQA and LongRoPE. */
static const float k_small_long[32] = {1, 1, 1, 1, 1.1f, 1.2f, 1.5f, 2, 2.5f, 3, 4, 5, 6, 8, 10, 12,
                                       16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 62, 63, 64, 64};
static const float k_small_short[32] = {1, 1, 1, 1, 1, 1, 1, 1, 1.05f, 1.05f, 1.1f, 1.1f, 1.2f, 1.2f, 1.3f, 1.4f,
                                        1.5f, 1.6f, 1.7f, 1.8f, 1.9f, 2, 2, 2, 2, 2, 2, 2, 2.1f, 2.2f, 2.5f, 2.8f};
static const pf_init_preset k_small = {"small", "test", "Phi3", 2048, 256, 256, 512, 2, 4, 2, 0,
                                       k_small_long, k_small_short, true, NULL};

static int write_model(const pf_init_preset *p, const char *type, uint64_t seed, int threads, bool vocab_only,
                       const char *path, pf_error *err) {
    pf_init_params ip = pf_init_default_params();
    ip.preset = p, ip.seed = seed, ip.n_threads = threads, ip.vocab_only = vocab_only;
    int rc = pf_quant_recipe_parse(type, &ip.recipe, err);
    return rc ? rc : pf_init_write(&ip, path, err);
}

static int count_type(const pf_init_tensor *ts, int64_t n, pf_type t) {
    int c = 0;
    for (int64_t i = 0; i < n; i++) c += ts[i].type == t;
    return c;
}

static const pf_init_tensor *find(const pf_init_tensor *ts, int64_t n, const char *name) {
    for (int64_t i = 0; i < n; i++)
        if (!strcmp(ts[i].name, name)) return &ts[i];
    return NULL;
}

static void test_recipes_and_layouts(pf_test *t) {
    pf_quant_recipe r;
    pf_error err = {0};
    CHECK(t, !pf_quant_recipe_parse("q4_k_m", &r, &err) && r.base == PF_TYPE_Q4_K && r.mix_m && r.file_type == 15, "Q4_K_M");
    CHECK(t, !pf_quant_recipe_parse("Q8_0", &r, &err) && r.file_type == 7 && !strcmp(pf_file_type_name(7), "Q8_0"), "Q8_0");
    CHECK(t, pf_quant_recipe_parse("Q8_K", &r, &err) == PF_ERR_NOT_FOUND && strstr(err.msg, "Q8_K"), "Q8_K: %s", err.msg);
    CHECK(t, !strcmp(pf_file_type_name(15), "Q4_K_M") && !strcmp(pf_file_type_name(999), "unknown"), "ftype names");

    static pf_init_tensor ts[400];
    static const struct { const char *preset; int64_t n; } counts[] = {
        {"phi3-mini", 195}, {"phi3-mini-128k", 197}, {"phi3-medium", 243}, {"phi3.5-mini", 197}, {"tiny", 15}};
    pf_quant_recipe_parse("F16", &r, &err);
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        int64_t n = pf_init_tensors(pf_init_preset_find(counts[i].preset), &r, 32064, ts, 400, &err);
        CHECK(t, n == counts[i].n, "%s: %lld tensors, want %lld", counts[i].preset, (long long)n, (long long)counts[i].n);
    }
    /* phi3-mini Q4_K_M: spec 4.6's published mix (65 f32, 81 q4_K, 32 q5_K, 17 q6_K, ~2.39 GB) */
    pf_quant_recipe_parse("Q4_K_M", &r, &err);
    int64_t n = pf_init_tensors(pf_init_preset_find("phi3-mini"), &r, 32064, ts, 400, &err);
    double bytes = 0;
    for (int64_t i = 0; i < n; i++) bytes += (double)ts[i].nbytes;
    CHECK(t, count_type(ts, n, PF_TYPE_F32) == 65 && count_type(ts, n, PF_TYPE_Q4_K) == 81 &&
                 count_type(ts, n, PF_TYPE_Q5_K) == 32 && count_type(ts, n, PF_TYPE_Q6_K) == 17,
          "Q4_K_M mix");
    CHECK(t, bytes > 2.35e9 && bytes < 2.40e9, "Q4_K_M bytes %.0f", bytes);
    const pf_init_tensor *q = find(ts, n, "blk.31.attn_qkv.weight"), *u = find(ts, n, "blk.0.ffn_up.weight"),
                         *d = find(ts, n, "blk.5.ffn_down.weight"), *d6 = find(ts, n, "blk.6.ffn_down.weight");
    CHECK(t, q && q->ne[0] == 3072 && q->ne[1] == 9216 && u && u->ne[1] == 16384 && d && d->ne[0] == 8192 &&
                 d->type == PF_TYPE_Q4_K && d6 && d6->type == PF_TYPE_Q6_K,
          "mini shapes / use_more_bits");
    CHECK(t, !strcmp(ts[0].name, "token_embd.weight") && ts[0].ne[1] == 32064 && !strcmp(ts[n - 1].name, "output.weight") &&
                 !strcmp(ts[1].name, "blk.0.attn_norm.weight"),
          "order");
    pf_quant_recipe_parse("Q4_0", &r, &err);
    n = pf_init_tensors(pf_init_preset_find("phi3-medium"), &r, 32064, ts, 400, &err);
    q = find(ts, n, "blk.39.attn_qkv.weight");
    CHECK(t, q && q->ne[0] == 5120 && q->ne[1] == 7680 && ts[n - 1].type == PF_TYPE_Q6_K && ts[0].type == PF_TYPE_Q4_0,
          "medium: GQA qkv, output Q6_K");
    n = pf_init_tensors(pf_init_preset_find("phi3.5-mini"), &r, 32064, ts, 400, &err);
    CHECK(t, !strcmp(ts[1].name, "rope_factors_long.weight") && ts[1].ne[0] == 48 && ts[2].type == PF_TYPE_F32,
          "rope factors");
    /* rows that do not split into 256-blocks fall back as llama.cpp does */
    CHECK(t, pf_quant_recipe_type(&(pf_quant_recipe){PF_TYPE_Q4_K, false, 14}, "blk.0.ffn_up.weight", 2, 64,
                                  PF_TYPE_F16, 2) == PF_TYPE_Q5_0 &&
                 pf_quant_recipe_type(&(pf_quant_recipe){PF_TYPE_Q4_0, false, 2}, "output.weight", 2, 64, PF_TYPE_F16,
                                      2) == PF_TYPE_Q8_0,
          "fallbacks");
}

/* Metadata of the full-size presets, through --vocab-only files (no tensor data). */
static void test_metadata(pf_test *t) {
    pf_error err = {0};
    const char *path = "build/tests/init-meta.gguf";
    pf_gguf *g = NULL, *v = NULL;
    int rc = write_model(pf_init_preset_find("phi3-mini"), "Q4_K_M", 0, 1, true, path, &err);
    CHECK(t, rc == 0 && !pf_gguf_open(path, &g, &err), "phi3-mini metadata: %s", err.msg);
    CHECK(t, !pf_gguf_open("data/phi3-vocab.gguf", &v, &err), "shipped vocab: %s", err.msg);
    if (!g || !v) { pf_gguf_close(g); pf_gguf_close(v); return; }
    static const struct { const char *key; int64_t v; } ints[] = {
        {"phi3.context_length", 4096}, {"phi3.rope.scaling.original_context_length", 4096},
        {"phi3.embedding_length", 3072}, {"phi3.feed_forward_length", 8192}, {"phi3.block_count", 32},
        {"phi3.attention.head_count", 32}, {"phi3.attention.head_count_kv", 32}, {"phi3.rope.dimension_count", 96},
        {"general.file_type", 15}, {"general.quantization_version", 2}, {"tokenizer.ggml.bos_token_id", 1},
        {"tokenizer.ggml.eos_token_id", 32000}, {"tokenizer.ggml.unknown_token_id", 0},
        {"tokenizer.ggml.padding_token_id", 32000}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        const pf_gguf_value *val = pf_gguf_get(g, ints[i].key);
        CHECK(t, val && val->type == PF_GGUF_UINT32 && (int64_t)val->v.u == ints[i].v, "%s", ints[i].key);
    }
    const pf_gguf_value *eps = pf_gguf_get(g, "phi3.attention.layer_norm_rms_epsilon");
    const pf_gguf_value *base = pf_gguf_get(g, "phi3.rope.freq_base");
    CHECK(t, eps && eps->type == PF_GGUF_FLOAT32 && (float)eps->v.f == 1e-5f && base && base->v.f == 10000.0, "floats");
    const char *s = NULL;
    bool b = false;
    CHECK(t, !pf_gguf_get_str(g, "general.architecture", &s, NULL) && !strcmp(s, "phi3"), "arch");
    CHECK(t, !pf_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, NULL) && b, "add_bos");
    CHECK(t, pf_gguf_find_key(g, "phi3.rope.scaling.attn_factor") < 0 && pf_gguf_n_tensors(g) == 0, "4k: no attn_factor");
    /* every key of the real vocab file (tokenizer, hyperparameters) in the same order and bytes,
     * but general.file_type */
    int64_t same = 0;
    for (int64_t i = 0; i < pf_gguf_n_kv(v) && i < pf_gguf_n_kv(g); i++) {
        const pf_gguf_value *a = pf_gguf_value_at(v, i), *c = pf_gguf_value_at(g, i);
        bool eq = !strcmp(pf_gguf_key(v, i), pf_gguf_key(g, i)) && a->type == c->type;
        if (eq && a->type == PF_GGUF_ARRAY)
            eq = a->v.arr.n == c->v.arr.n && (a->v.arr.type == PF_GGUF_STRING
                                                  ? !strcmp(a->v.arr.items[31999].v.str.ptr, c->v.arr.items[31999].v.str.ptr)
                                                  : !memcmp(a->v.arr.data, c->v.arr.data,
                                                            a->v.arr.n * pf_gguf_type_size(a->v.arr.type)));
        else if (eq && a->type == PF_GGUF_STRING) eq = !strcmp(a->v.str.ptr, c->v.str.ptr);
        else if (eq) eq = a->v.u == c->v.u || !strcmp(pf_gguf_key(v, i), "general.file_type");
        same += eq;
    }
    CHECK(t, pf_gguf_n_kv(g) == pf_gguf_n_kv(v) && same == pf_gguf_n_kv(v), "%lld of %lld keys as the vocab file",
          (long long)same, (long long)pf_gguf_n_kv(v));
    pf_gguf_close(g);
    pf_gguf_close(v);

    /* Phi-3.5-mini: LongRoPE magnitude sqrt(17/12), sliding window, no BOS, system template */
    g = NULL;
    rc = write_model(pf_init_preset_find("phi3.5-mini"), "Q8_0", 0, 1, true, path, &err);
    CHECK(t, rc == 0 && !pf_gguf_open(path, &g, &err), "phi3.5-mini metadata: %s", err.msg);
    if (g) {
        int64_t ctx = 0, sw = 0;
        double af = 0;
        CHECK(t, !pf_gguf_get_int(g, "phi3.context_length", &ctx, NULL) && ctx == 131072, "ctx %lld", (long long)ctx);
        CHECK(t, !pf_gguf_get_int(g, "phi3.attention.sliding_window", &sw, NULL) && sw == 262144, "sliding window");
        CHECK(t, !pf_gguf_get_float(g, "phi3.rope.scaling.attn_factor", &af, NULL) && (float)af == (float)sqrt(17.0 / 12.0),
              "attn_factor %.9g", af);
        CHECK(t, !pf_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, NULL) && !b, "3.5: add_bos false");
        CHECK(t, !pf_gguf_get_str(g, "tokenizer.chat_template", &s, NULL) && strstr(s, "'<|system|>\n'"), "3.5 template");
        pf_gguf_close(g);
    }
    g = NULL;
    rc = write_model(pf_init_preset_find("phi3-medium"), "F16", 0, 1, true, path, &err);
    CHECK(t, rc == 0 && !pf_gguf_open(path, &g, &err), "phi3-medium metadata: %s", err.msg);
    if (g) {
        int64_t kv = 0, rd = 0;
        CHECK(t, !pf_gguf_get_int(g, "phi3.attention.head_count_kv", &kv, NULL) && kv == 10 &&
                     !pf_gguf_get_int(g, "phi3.rope.dimension_count", &rd, NULL) && rd == 128,
              "medium GQA");
        CHECK(t, !pf_gguf_get_str(g, "tokenizer.chat_template", &s, NULL) && strncmp(s, "{{ bos_token }}", 15), "medium template");
        pf_gguf_close(g);
    }
}

/* Everything before the tensor data (metadata, tensor infos, padding) equals the golden file's. */
static void check_header(pf_test *t, const char *mine, const char *golden) {
    pf_gguf *g = NULL;
    pf_error err = {0};
    size_t na = 0, nb = 0;
    uint8_t *a = pf_test_read_file(mine, &na), *b = pf_test_read_file(golden, &nb);
    CHECK(t, a && b && !pf_gguf_open(golden, &g, &err), "read %s, %s", mine, golden);
    if (a && b && g) {
        size_t off = pf_gguf_data_offset(g);
        CHECK(t, na == nb && !memcmp(a, b, off), "%s: header (%zu bytes) differs from %s", mine, off, golden);
    }
    pf_gguf_close(g);
    free(a);
    free(b);
}

static void test_golden_layouts(pf_test *t) {
    pf_error err = {0};
    int rc = write_model(pf_init_preset_find("tiny"), "F16", 0, 2, false, "build/tests/init-tiny-f16.gguf", &err);
    CHECK(t, rc == 0, "tiny F16: %s", err.msg);
    check_header(t, "build/tests/init-tiny-f16.gguf", "tests/data/phi3-tiny-f16.gguf");
    char path[512];
    if (!pf_test_data_path(path, sizeof path, "models", "phi3-tiny-longrope-f16.gguf")) {
        printf("skipped: phi3-tiny-longrope-f16.gguf not found (../shared/golden/models)\n");
        return;
    }
    static const float f8[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    pf_init_preset lp = *pf_init_preset_find("tiny");
    lp.n_ctx_train = 512, lp.n_ctx_orig = 16, lp.n_ff = 160, lp.rope_long = f8, lp.rope_short = f8;
    rc = write_model(&lp, "F16", 0, 2, false, "build/tests/init-tiny-long.gguf", &err);
    CHECK(t, rc == 0, "tiny LongRoPE: %s", err.msg);
    check_header(t, "build/tests/init-tiny-long.gguf", path);
}

/* 64 random tokens through the model: finite logits, spread like O(1) activations, varied argmax. */
static void check_logits(pf_test *t, const char *path, const char *what) {
    pf_model *m = NULL;
    pf_context *ctx = NULL;
    pf_error err = {0};
    pf_context_params cp = pf_context_default_params();
    cp.n_ctx = 64, cp.n_threads = 2;
    int rc = pf_model_load(path, &m, &err);
    if (!rc) rc = pf_context_create(m, &cp, &ctx, &err);
    CHECK(t, rc == 0, "%s: load: %s", what, err.msg);
    if (rc) { pf_model_free(m); return; }
    const int64_t V = pf_model_get_hparams(m)->n_vocab;
    int32_t ids[64];
    pf_test_rng rng = {12345};
    for (int i = 0; i < 64; i++) ids[i] = (int32_t)(pf_test_next(&rng) % 32000);
    float *lg = malloc(sizeof(float) * 64 * (size_t)V);
    rc = pf_decode(ctx, ids, 64, 0, lg, PF_LOGITS_ALL, &err);
    CHECK(t, rc == 0, "%s: decode: %s", what, err.msg);
    bool finite = true;
    double min_sd = 1e30, max_sd = 0;
    int distinct = 0, argmax[64];
    for (int p = 0; rc == 0 && p < 64; p++) {
        const float *r = lg + (size_t)p * (size_t)V;
        double s = 0, ss = 0;
        argmax[p] = 0;
        for (int64_t i = 0; i < V; i++) {
            finite &= isfinite(r[i]) != 0;
            s += r[i], ss += (double)r[i] * r[i];
            if (r[i] > r[argmax[p]]) argmax[p] = (int)i;
        }
        double sd = sqrt(ss / (double)V - (s / (double)V) * (s / (double)V));
        min_sd = sd < min_sd ? sd : min_sd, max_sd = sd > max_sd ? sd : max_sd;
        bool seen = false;
        for (int q = 0; q < p; q++) seen |= argmax[q] == argmax[p];
        distinct += !seen;
    }
    CHECK(t, rc || (finite && min_sd > 0.2 && max_sd < 20 && distinct >= 16),
          "%s: finite %d, logit sd %.3g..%.3g, %d distinct argmax", what, finite, min_sd, max_sd, distinct);
    free(lg);
    pf_context_free(ctx);
    pf_model_free(m);
}

static void test_load_and_logits(pf_test *t) {
    static const char *tiny_types[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q5_1", "Q4_K_M", "IQ4_NL"};
    static const char *small_types[] = {"Q4_K_M", "Q5_K_M", "Q2_K", "Q3_K", "Q6_K"};
    pf_error err = {0};
    char path[128];
    for (size_t i = 0; i < sizeof tiny_types / sizeof tiny_types[0]; i++) {
        snprintf(path, sizeof path, "build/tests/init-tiny-%s.gguf", tiny_types[i]);
        CHECK(t, !write_model(pf_init_preset_find("tiny"), tiny_types[i], 7, 2, false, path, &err), "%s", err.msg);
        check_logits(t, path, path);
        unlink(path);
    }
    for (size_t i = 0; i < sizeof small_types / sizeof small_types[0]; i++) {
        snprintf(path, sizeof path, "build/tests/init-small-%s.gguf", small_types[i]);
        CHECK(t, !write_model(&k_small, small_types[i], 7, 2, false, path, &err), "%s", err.msg);
        check_logits(t, path, path);
        if (i == 0) {
            pf_gguf *g = NULL;
            CHECK(t, !pf_gguf_open(path, &g, &err), "%s", err.msg);
            int64_t q = g ? pf_gguf_find_tensor(g, "blk.0.attn_qkv.weight") : -1, o = g ? pf_gguf_find_tensor(g, "output.weight") : -1;
            CHECK(t, q >= 0 && o >= 0 && pf_gguf_tensor(g, q)->type == PF_TYPE_Q5_K && pf_gguf_tensor(g, o)->type == PF_TYPE_Q6_K &&
                         pf_gguf_tensor(g, q)->ne[1] == 256 + 2 * 128,
                  "small Q4_K_M types");
            pf_gguf_close(g);
        }
        unlink(path);
    }
}

static void test_determinism(pf_test *t) {
    pf_error err = {0};
    const char *a = "build/tests/init-det-a.gguf", *b = "build/tests/init-det-b.gguf", *c = "build/tests/init-det-c.gguf";
    CHECK(t, !write_model(&k_small, "Q4_K_M", 11, 1, false, a, &err), "%s", err.msg);
    CHECK(t, !write_model(&k_small, "Q4_K_M", 11, 2, false, b, &err), "%s", err.msg);
    CHECK(t, !write_model(&k_small, "Q4_K_M", 12, 2, false, c, &err), "%s", err.msg);
    size_t na = 0, nb = 0, nc = 0;
    uint8_t *da = pf_test_read_file(a, &na), *db = pf_test_read_file(b, &nb), *dc = pf_test_read_file(c, &nc);
    CHECK(t, da && db && na == nb && !memcmp(da, db, na), "same seed, 1 vs 2 threads: files differ");
    CHECK(t, da && dc && na == nc && memcmp(da, dc, na), "another seed gives the same bytes");
    free(da), free(db), free(dc);
    unlink(a), unlink(b), unlink(c);
}

static void test_cli(pf_test *t) {
    static char out[1 << 16];
    const char *f = "build/tests/init-cli.gguf";
    int rc = pf_test_run(BIN " init --preset tiny --type Q4_0 -o build/tests/init-cli.gguf --seed 5 -t 2 2>&1", out, sizeof out);
    CHECK(t, rc == 0 && strstr(out, "15 tensors"), "init: rc %d '%s'", rc, out);
    rc = pf_test_run(BIN " info build/tests/init-cli.gguf", out, sizeof out);
    CHECK(t, rc == 0 && strstr(out, "blk.1.ffn_down.weight") && strstr(out, "[128, 64]") && strstr(out, "Q4_0") &&
                 strstr(out, "general.file_type                          UINT32  2"),
          "info: rc %d", rc);
    rc = pf_test_run(BIN " bench -m build/tests/init-cli.gguf -p 8 -n 4 -r 1 -t 2 --json | python3 -c 'import json,sys; "
                 "d=json.load(sys.stdin); k=[\"pp_tps\",\"tg_tps\",\"bandwidth_gbs\",\"tg_bound_tps\",\"tg_pct_of_bound\","
                 "\"weight_bytes_per_token\",\"kv_bytes_per_token\",\"peak_rss_bytes\",\"file_bytes\",\"kv_cache_bytes\"];"
                 " print(all(d[x] > 0 for x in k), d[\"n_prompt\"], d[\"n_gen\"], d[\"file_type\"])'",
             out, sizeof out);
    CHECK(t, rc == 0 && !strcmp(out, "True 8 4 Q4_0\n"), "bench --json: rc %d '%s'", rc, out);
    rc = pf_test_run(BIN " bench -m build/tests/init-cli.gguf -p 4 -n 2 -r 1", out, sizeof out);
    CHECK(t, rc == 0 && strstr(out, "pp4") && strstr(out, "tg2") && strstr(out, "peak RSS"), "bench table: '%s'", out);
    unlink(f);

    rc = pf_test_run("PHIFORGE_VOCAB=/nonexistent/v.gguf " BIN " init --preset tiny --type F16 -o build/tests/x.gguf 2>&1", out,
             sizeof out);
    CHECK(t, rc != 0 && strstr(out, "PHIFORGE_VOCAB") && access("build/tests/x.gguf", F_OK) != 0, "missing vocab: '%s'", out);
    rc = pf_test_run(BIN " init --preset phi9 --type F16 -o build/tests/x.gguf 2>&1", out, sizeof out);
    CHECK(t, rc != 0 && strstr(out, "unknown preset 'phi9'"), "bad preset: '%s'", out);
    rc = pf_test_run(BIN " init --preset tiny --type Q9_9 -o build/tests/x.gguf 2>&1", out, sizeof out);
    CHECK(t, rc != 0 && strstr(out, "Q9_9"), "bad type: '%s'", out);
    rc = pf_test_run(BIN " bench -m build/tests/none.gguf 2>&1", out, sizeof out);
    CHECK(t, rc != 0 && strstr(out, "none.gguf"), "bench missing file: '%s'", out);

    char vp[4096];
    pf_error err = {0};
    unsetenv("PHIFORGE_VOCAB");
    CHECK(t, !pf_init_find_vocab(vp, sizeof vp, &err) && strstr(vp, "data/phi3-vocab.gguf"), "find vocab: %s", err.msg);
}

int main(void) {
    pf_test t = {0};
    test_recipes_and_layouts(&t);
    test_metadata(&t);
    test_golden_layouts(&t);
    test_load_and_logits(&t);
    test_determinism(&t);
    test_cli(&t);
    unlink("build/tests/init-meta.gguf");
    unlink("build/tests/init-tiny-f16.gguf");
    unlink("build/tests/init-tiny-long.gguf");
    return TEST_REPORT(&t);
}
