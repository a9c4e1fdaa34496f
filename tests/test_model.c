/* Phi-3 forward pass: llama.cpp golden logits (F16 MHA, LongRoPE with long factors and
 * attn_factor, GQA Q4_K_M mix), F16 and F32 KV caches, incremental decoding against one batch
 * (token by token, two chunks, internal batch splitting, rewinding), context overflow and bad
 * arguments, malformed model files (errors naming the tensor or key), the LongRoPE policy and
 * attn_factor fallback, and the `phiforge logits` command. */
#include <math.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"

#define N_VOCAB 32064
static char g_tmpdir[64];

/* ---- helpers ------------------------------------------------------------------------------ */

static pf_model *load(pf_test *t, const char *name) {
    char path[256];
    if (!pf_test_data_path(path, sizeof path, "models", name)) {
        printf("SKIP: %s not found in tests/data or ../shared/golden/models\n", name);
        return NULL;
    }
    pf_error e = {0};
    pf_model *m = NULL;
    int rc = pf_model_load(path, &m, &e);
    CHECK(t, rc == PF_OK, "load %s: %s", path, e.msg);
    return m;
}

/* ---- goldens ------------------------------------------------------------------------------ */

static void golden(pf_test *t, const char *model, const char *ids_name, const char *logits_name, int64_t n_ctx,
                   double min_corr, double max_rel, bool argmax, bool expect_long) {
    int32_t ids[128];
    int n = pf_test_read_ids(ids_name, ids, 128);
    float *want = n ? pf_test_read_golden_f32(logits_name, (size_t)n * N_VOCAB) : NULL;
    if (!want) {
        printf("SKIP: %s / %s not found\n", ids_name, logits_name);
        return;
    }
    pf_model *m = load(t, model);
    if (m) {
        CHECK(t, pf_model_get_hparams(m)->n_vocab == N_VOCAB, "n_vocab %lld", (long long)pf_model_get_hparams(m)->n_vocab);
        for (int kv = 0; kv < 2; kv++) {
            pf_context *ctx = pf_test_make_ctx(t, m, n_ctx, 0, kv ? PF_TYPE_F32 : PF_TYPE_F16, 4);
            if (!ctx) continue;
            CHECK(t, pf_context_long_rope(ctx) == expect_long, "%s: long rope %d", model, pf_context_long_rope(ctx));
            float *got = pf_test_batch_logits(t, ctx, ids, n);
            char what[128];
            snprintf(what, sizeof what, "%s (KV %s)", model, kv ? "F32" : "F16");
            if (got) pf_test_compare_logits(t, what, got, want, n, N_VOCAB, min_corr, max_rel, argmax);
            free(got);
            pf_context_free(ctx);
        }
        pf_model_free(m);
    }
    free(want);
}

static void test_goldens(pf_test *t) {
    golden(t, "phi3-tiny-f16.gguf", "chat.ids", "phi3-tiny-f16.logits.f32", 0, 0.99999, 0.002, true, false);
    /* context 512 > original_context_length 16: long factors, attn_factor 1.5 */
    golden(t, "phi3-tiny-longrope-f16.gguf", "long.ids", "phi3-tiny-longrope-f16.logits.f32", 512, 0.99999, 0.002, true,
           true);
    /* llama.cpp quantizes activations to 8 bits and (flash attention) accumulates P·V in F16 */
    golden(t, "phi3-tiny-gqa-Q4_K_M.gguf", "chat.ids", "phi3-tiny-gqa-Q4_K_M.logits.f32", 0, 0.999, 0.02, false, false);
}

/* ---- incremental decoding ----------------------------------------------------------------- */

/* Token by token, two chunks, n_batch 5 (internal splits), rewind: all equal to one batch. */
static void incremental(pf_test *t, const char *model, pf_type kv, int threads) {
    int32_t ids[64];
    int n = pf_test_read_ids("chat.ids", ids, 64);
    pf_model *m = n ? load(t, model) : NULL;
    if (!m) return;
    pf_context *ctx = pf_test_make_ctx(t, m, 64, 0, kv, threads), *small = pf_test_make_ctx(t, m, 64, 5, kv, threads);
    float *ref = ctx ? pf_test_batch_logits(t, ctx, ids, n) : NULL;
    float *got = malloc((size_t)n * N_VOCAB * sizeof *got);
    pf_error e = {0};
    char what[160];
    if (ref && small) {
        int rc = PF_OK;
        for (int i = 0; i < n && rc == PF_OK; i++) rc = pf_decode(ctx, ids + i, 1, i, got + (size_t)i * N_VOCAB, PF_LOGITS_LAST, &e);
        CHECK(t, rc == PF_OK && pf_context_n_past(ctx) == n, "token by token: %s", e.msg);
        snprintf(what, sizeof what, "%s KV %s token by token", model, pf_type_name(kv));
        pf_test_compare_logits(t, what, got, ref, n, N_VOCAB, 0.9999999, 1e-4, true);

        const int split = 9;
        rc = pf_decode(ctx, ids, split, 0, got, PF_LOGITS_ALL, &e);
        if (rc == PF_OK) rc = pf_decode(ctx, ids + split, n - split, split, got + (size_t)split * N_VOCAB, PF_LOGITS_ALL, &e);
        CHECK(t, rc == PF_OK, "two chunks: %s", e.msg);
        snprintf(what, sizeof what, "%s KV %s two chunks", model, pf_type_name(kv));
        pf_test_compare_logits(t, what, got, ref, n, N_VOCAB, 0.9999999, 1e-4, true);

        rc = pf_decode(ctx, ids + 15, n - 15, 15, got + (size_t)15 * N_VOCAB, PF_LOGITS_ALL, &e); /* rewind to 15 */
        CHECK(t, rc == PF_OK && pf_context_n_past(ctx) == n, "rewind: %s", e.msg);
        snprintf(what, sizeof what, "%s KV %s rewind", model, pf_type_name(kv));
        pf_test_compare_logits(t, what, got, ref, n, N_VOCAB, 0.9999999, 1e-4, true);

        rc = pf_decode(small, ids, n, 0, got, PF_LOGITS_ALL, &e);
        CHECK(t, rc == PF_OK, "n_batch 5: %s", e.msg);
        snprintf(what, sizeof what, "%s KV %s n_batch 5", model, pf_type_name(kv));
        pf_test_compare_logits(t, what, got, ref, n, N_VOCAB, 0.9999999, 1e-4, true);

        rc = pf_decode(small, ids, n, 0, got, PF_LOGITS_LAST, &e);
        CHECK(t, rc == PF_OK, "last only: %s", e.msg);
        pf_logit_stats r = pf_test_logit_row(got, ref + (size_t)(n - 1) * N_VOCAB, N_VOCAB);
        CHECK(t, r.rel <= 1e-4, "last row differs: %.3g", r.rel);
        rc = pf_decode(small, ids, n, 0, NULL, PF_LOGITS_LAST, &e);
        CHECK(t, rc == PF_OK && pf_context_n_past(small) == n, "no logits: %s", e.msg);
    }
    free(ref);
    free(got);
    pf_context_free(ctx);
    pf_context_free(small);
    pf_model_free(m);
}

static void test_incremental(pf_test *t) {
    incremental(t, "phi3-tiny-f16.gguf", PF_TYPE_F16, 3);
    incremental(t, "phi3-tiny-f16.gguf", PF_TYPE_F32, 1);
    incremental(t, "phi3-tiny-gqa-Q4_K_M.gguf", PF_TYPE_F16, 1); /* single thread: no pool */
}

/* ---- errors ------------------------------------------------------------------------------- */

static void test_errors(pf_test *t) {
    pf_model *m = load(t, "phi3-tiny-f16.gguf");
    if (!m) return;
    pf_error e = {0};
    pf_context *ctx = NULL;
    pf_context_params p = pf_context_default_params();
    p.n_ctx = pf_model_get_hparams(m)->n_ctx_train + 1;
    int rc = pf_context_create(m, &p, &ctx, &e);
    CHECK(t, rc == PF_ERR_ARG && ctx == NULL && strstr(e.msg, "context length"), "n_ctx too large: %d %s", rc, e.msg);
    p = pf_context_default_params();
    p.kv_type = PF_TYPE_Q8_0;
    rc = pf_context_create(m, &p, &ctx, &e);
    CHECK(t, rc == PF_ERR_ARG && strstr(e.msg, "Q8_0"), "KV Q8_0: %d %s", rc, e.msg);

    ctx = pf_test_make_ctx(t, m, 8, 0, PF_TYPE_F16, 2);
    if (ctx) {
        const int32_t ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        float *lg = malloc(9 * N_VOCAB * sizeof *lg);
        rc = pf_decode(ctx, ids, 9, 0, lg, PF_LOGITS_ALL, &e);
        CHECK(t, rc == PF_ERR_ARG && strstr(e.msg, "context full"), "overflow in one batch: %d %s", rc, e.msg);
        rc = pf_decode(ctx, ids, 8, 0, lg, PF_LOGITS_ALL, &e);
        CHECK(t, rc == PF_OK, "8 tokens in n_ctx 8: %s", e.msg);
        rc = pf_decode(ctx, ids, 1, 8, lg, PF_LOGITS_LAST, &e);
        CHECK(t, rc == PF_ERR_ARG && strstr(e.msg, "context full"), "overflow by one: %d %s", rc, e.msg);
        CHECK(t, pf_context_n_past(ctx) == 8, "n_past after overflow %lld", (long long)pf_context_n_past(ctx));
        rc = pf_decode(ctx, ids, 1, 7, lg, PF_LOGITS_LAST, &e);
        CHECK(t, rc == PF_OK, "rewrite last position: %s", e.msg);
        rc = pf_decode(ctx, ids, 1, 9, lg, PF_LOGITS_LAST, &e);
        CHECK(t, rc == PF_ERR_ARG && strstr(e.msg, "pos0"), "gap: %d %s", rc, e.msg);
        const int32_t bad[2] = {5, N_VOCAB};
        rc = pf_decode(ctx, bad, 2, 0, lg, PF_LOGITS_ALL, &e);
        CHECK(t, rc == PF_ERR_ARG && strstr(e.msg, "index 1"), "bad id: %d %s", rc, e.msg);
        rc = pf_decode(ctx, ids, 0, 0, lg, PF_LOGITS_ALL, &e);
        CHECK(t, rc == PF_ERR_ARG, "n = 0: %d", rc);
        free(lg);
        pf_context_free(ctx);
    }
    pf_model_free(m);
    rc = pf_model_load("tests/data/does-not-exist.gguf", &m, &e);
    CHECK(t, rc != PF_OK && m == NULL, "missing file loads");
}

/* ---- malformed files ---------------------------------------------------------------------- */

typedef struct variant {
    const char *drop_key, *drop_tensor, *reshape; /* reshape: tensor whose ne[1] becomes ne1 */
    int64_t ne1;
    const char *set_arch;
} variant;

/* Writes a copy of SRC with the changes of v to PATH. */
static int write_variant(const pf_gguf *src, const char *path, const variant *v, pf_error *e) {
    pf_gguf_writer *w = NULL;
    int rc = pf_gguf_writer_create(&w, e);
    if (rc == PF_OK) rc = pf_gguf_writer_copy_kvs(w, src, e);
    if (rc == PF_OK && v->drop_key) pf_gguf_writer_remove(w, v->drop_key);
    if (rc == PF_OK && v->set_arch) rc = pf_gguf_writer_set_str(w, "general.architecture", v->set_arch, e);
    for (int64_t i = 0; rc == PF_OK && i < pf_gguf_n_tensors(src); i++) {
        const pf_tensor_info *ti = pf_gguf_tensor(src, i);
        if (v->drop_tensor && !strcmp(ti->name, v->drop_tensor)) continue;
        int64_t ne[4] = {ti->ne[0], ti->ne[1], ti->ne[2], ti->ne[3]};
        if (v->reshape && !strcmp(ti->name, v->reshape)) ne[1] = v->ne1; /* data is the original's (large enough) */
        rc = pf_gguf_writer_add_tensor(w, ti->name, ti->type, ti->n_dims, ne, ti->data, e);
    }
    if (rc == PF_OK) rc = pf_gguf_writer_write(w, path, NULL, NULL, e);
    pf_gguf_writer_free(w);
    return rc;
}

/* Loading the variant fails with `code` and a message containing `needle`. */
static void bad_variant(pf_test *t, const pf_gguf *src, const variant *v, int code, const char *needle) {
    char path[128];
    snprintf(path, sizeof path, "%s/variant.gguf", g_tmpdir);
    pf_error e = {0};
    int rc = write_variant(src, path, v, &e);
    CHECK(t, rc == PF_OK, "write variant: %s", e.msg);
    pf_model *m = NULL;
    rc = pf_model_load(path, &m, &e);
    CHECK(t, rc == code && m == NULL, "expected %d, got %d (%s)", code, rc, e.msg);
    CHECK(t, strstr(e.msg, needle) != NULL, "message '%s' does not name '%s'", e.msg, needle);
    pf_model_free(m);
    unlink(path);
}

static void test_bad_files(pf_test *t) {
    char src_path[256];
    pf_error e = {0};
    pf_gguf *g = NULL;
    if (!pf_test_data_path(src_path, sizeof src_path, "models", "phi3-tiny-f16.gguf") ||
        pf_gguf_open(src_path, &g, &e) != PF_OK) {
        CHECK(t, 0, "open phi3-tiny-f16.gguf: %s", e.msg);
        return;
    }
    bad_variant(t, g, &(variant){.reshape = "blk.1.attn_qkv.weight", .ne1 = 128}, PF_ERR_FORMAT,
                "tensor 'blk.1.attn_qkv.weight' has shape [64, 128], expected [64, 192]");
    bad_variant(t, g, &(variant){.reshape = "blk.0.ffn_up.weight", .ne1 = 160}, PF_ERR_FORMAT, "blk.0.ffn_up.weight");
    bad_variant(t, g, &(variant){.drop_tensor = "blk.1.ffn_down.weight"}, PF_ERR_FORMAT,
                "tensor 'blk.1.ffn_down.weight' is missing");
    bad_variant(t, g, &(variant){.drop_tensor = "output_norm.weight"}, PF_ERR_FORMAT, "output_norm.weight");
    bad_variant(t, g, &(variant){.drop_key = "phi3.embedding_length"}, PF_ERR_FORMAT, "phi3.embedding_length");
    bad_variant(t, g, &(variant){.set_arch = "llama"}, PF_ERR_UNSUPPORTED, "llama");

    /* a file cut in half: the GGUF reader refuses it */
    size_t size = 0;
    void *bytes = pf_test_read_file(src_path, &size);
    char path[128];
    snprintf(path, sizeof path, "%s/truncated.gguf", g_tmpdir);
    FILE *f = fopen(path, "wb");
    if (f && bytes) fwrite(bytes, 1, size / 2, f);
    if (f) fclose(f);
    pf_model *m = NULL;
    int rc = pf_model_load(path, &m, &e);
    CHECK(t, rc != PF_OK && m == NULL && e.msg[0], "truncated file: %d", rc);
    printf("truncated file: %s\n", e.msg);
    unlink(path);
    free(bytes);
    pf_gguf_close(g);
}

/* LongRoPE: short factors when n_ctx <= original_context_length; attn_factor computed as
 * sqrt(1 + ln(ctx/orig)/ln(orig)) = sqrt(1 + ln 32 / ln 16) = 1.5 when the key is absent. */
static void test_longrope_policy(pf_test *t) {
    pf_model *m = load(t, "phi3-tiny-longrope-f16.gguf");
    if (!m) return;
    const pf_model_hparams *hp = pf_model_get_hparams(m);
    CHECK(t, hp->has_rope_factors && hp->n_ctx_orig == 16 && hp->n_ctx_train == 512 && hp->rope_attn_factor == 1.5f,
          "hparams: factors %d orig %lld train %lld m %g", hp->has_rope_factors, (long long)hp->n_ctx_orig,
          (long long)hp->n_ctx_train, hp->rope_attn_factor);
    pf_context *c16 = pf_test_make_ctx(t, m, 16, 0, PF_TYPE_F16, 2), *c17 = pf_test_make_ctx(t, m, 17, 0, PF_TYPE_F16, 2);
    CHECK(t, c16 && !pf_context_long_rope(c16), "n_ctx 16 should use the short factors");
    CHECK(t, c17 && pf_context_long_rope(c17), "n_ctx 17 should use the long factors");
    pf_context_free(c16);
    pf_context_free(c17);

    char path[128];
    snprintf(path, sizeof path, "%s/no-attn-factor.gguf", g_tmpdir);
    pf_error e = {0};
    int rc = write_variant(pf_model_gguf(m), path, &(variant){.drop_key = "phi3.rope.scaling.attn_factor"}, &e);
    pf_model *m2 = NULL;
    if (rc == PF_OK) rc = pf_model_load(path, &m2, &e);
    CHECK(t, rc == PF_OK, "no attn_factor: %s", e.msg);
    if (m2) {
        float f = pf_model_get_hparams(m2)->rope_attn_factor;
        CHECK(t, fabsf(f - 1.5f) < 1e-6f, "computed attn_factor %.9g, expected 1.5", f);
    }
    pf_model_free(m2);
    unlink(path);
    pf_model_free(m);
}

/* ---- CLI ---------------------------------------------------------------------------------- */

static void test_cli(pf_test *t) {
    if (access("./build/phiforge", X_OK) != 0) {
        printf("SKIP: ./build/phiforge not built\n");
        return;
    }
    float *want = pf_test_read_golden_f32("phi3-tiny-f16.logits.f32", 23 * (size_t)N_VOCAB);
    char cmd[512], out[128];
    snprintf(out, sizeof out, "%s/cli.f32", g_tmpdir);
    snprintf(cmd, sizeof cmd,
             "./build/phiforge logits -m tests/data/phi3-tiny-f16.gguf --ids \"$(cat tests/data/chat.ids)\" -o %s -t 2 "
             "2>/dev/null", out);
    int st = system(cmd);
    CHECK(t, WIFEXITED(st) && WEXITSTATUS(st) == 0, "phiforge logits failed (%d)", st);
    size_t size = 0;
    float *got = pf_test_read_file(out, &size);
    CHECK(t, got && size == 23 * (size_t)N_VOCAB * 4, "output size %zu", size);
    if (got && want && size == 23 * (size_t)N_VOCAB * 4)
        pf_test_compare_logits(t, "phiforge logits (phi3-tiny-f16)", got, want, 23, N_VOCAB, 0.99999, 0.002, true);
    free(got);
    free(want);
    unlink(out);
    snprintf(cmd, sizeof cmd, "./build/phiforge logits -m tests/data/phi3-tiny-f16.gguf --ids 1 -o %s --lora x.gguf "
             "2>/dev/null", out);
    st = system(cmd);
    CHECK(t, WIFEXITED(st) && WEXITSTATUS(st) == 1 && access(out, F_OK) != 0, "--lora should be refused (%d)", st);
    snprintf(cmd, sizeof cmd, "./build/phiforge logits -m tests/data/phi3-tiny-f16.gguf --ids \"1 99999\" -o %s "
             "2>/dev/null", out);
    st = system(cmd);
    CHECK(t, WIFEXITED(st) && WEXITSTATUS(st) == 1, "out-of-range id should fail (%d)", st);
    unlink(out);
}

int main(void) {
    pf_test t = {0};
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/pf_test_model_XXXXXX");
    if (mkdtemp(g_tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_goldens(&t);
    test_incremental(&t);
    test_errors(&t);
    test_bad_files(&t);
    test_longrope_policy(&t);
    test_cli(&t);
    rmdir(g_tmpdir);
    return TEST_REPORT(&t);
}
