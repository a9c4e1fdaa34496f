/* LoRA adapters (llama.cpp GGUF format) at inference: the llama.cpp golden of phi3-tiny-f16 with
 * phi3-tiny-lora-r4 at scale 1, scale 0 equal to the base model, scale 2 different, two adapters
 * adding up, detaching, incremental decoding, F16 / Q8_0 adapter tensors, malformed adapters
 * (errors naming the tensor or key) and `phiforge logits/generate --lora`. */
#include <math.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"

#define N_VOCAB 32064
static char g_tmpdir[64];

/* ---- helpers ------------------------------------------------------------------------------ */

/* Largest |a - b| relative to b's range over all positions. */
static double max_rel_diff(const float *a, const float *b, int n) {
    double worst = 0;
    for (int p = 0; p < n; p++) {
        pf_logit_stats r = pf_test_logit_row(a + (size_t)p * N_VOCAB, b + (size_t)p * N_VOCAB, N_VOCAB);
        worst = r.rel > worst ? r.rel : worst;
    }
    return worst;
}

/* ---- fixtures ----------------------------------------------------------------------------- */

typedef struct fixture {
    pf_model *m;
    pf_lora *a;
    char model_path[256], lora_path[256];
    int32_t ids[128];
    int n;
    float *want;  /* golden: llama.cpp, adapter at scale 1 */
    float *base;  /* ours, no adapter                     */
} fixture;

static bool setup(pf_test *t, fixture *f) {
    memset(f, 0, sizeof *f);
    if (!pf_test_data_path(f->model_path, sizeof f->model_path, "models", "phi3-tiny-f16.gguf") ||
        !pf_test_data_path(f->lora_path, sizeof f->lora_path, "models", "phi3-tiny-lora-r4.gguf") ||
        !(f->n = pf_test_read_ids("chat.ids", f->ids, 128)) ||
        !(f->want = pf_test_read_golden_f32("phi3-tiny-f16.lora-r4-scale1.logits.f32", (size_t)f->n * N_VOCAB))) {
        printf("SKIP: phi3-tiny-f16 / phi3-tiny-lora-r4 / golden logits not found\n");
        return false;
    }
    pf_error e = {0};
    int rc = pf_model_load(f->model_path, &f->m, &e);
    CHECK(t, rc == PF_OK, "load model: %s", e.msg);
    if (rc != PF_OK) return false;
    rc = pf_lora_load(f->lora_path, f->m, &f->a, &e);
    CHECK(t, rc == PF_OK, "load adapter: %s", e.msg);
    if (rc != PF_OK) return false;
    CHECK(t, pf_lora_alpha(f->a) == 8.0f, "alpha %g", pf_lora_alpha(f->a));
    CHECK(t, pf_lora_n_adapted(f->a) == 8, "adapted %lld", (long long)pf_lora_n_adapted(f->a));
    pf_context *ctx = pf_test_make_ctx(t, f->m, 64, 0, PF_TYPE_F16, 4);
    if (ctx) f->base = pf_test_batch_logits(t, ctx, f->ids, f->n);
    pf_context_free(ctx);
    return f->base != NULL;
}

static void teardown(fixture *f) {
    free(f->want);
    free(f->base);
    pf_lora_free(f->a);
    pf_model_free(f->m);
}

/* Logits with adapters[0..n) at scales attached to a fresh context (NULL on failure). */
static float *lora_logits(pf_test *t, const fixture *f, pf_lora *const *ad, const float *scales, int n,
                          int64_t n_batch, pf_type kv) {
    pf_context *ctx = pf_test_make_ctx(t, f->m, 64, n_batch, kv, 4);
    if (!ctx) return NULL;
    pf_error e = {0};
    int rc = pf_context_set_lora(ctx, ad, scales, n, &e);
    CHECK(t, rc == PF_OK, "set_lora: %s", e.msg);
    float *lg = rc == PF_OK ? pf_test_batch_logits(t, ctx, f->ids, f->n) : NULL;
    pf_context_free(ctx);
    return lg;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_golden(pf_test *t, fixture *f) {
    const float one = 1.0f;
    for (int kv = 0; kv < 2; kv++) {
        float *got = lora_logits(t, f, &f->a, &one, 1, 0, kv ? PF_TYPE_F32 : PF_TYPE_F16);
        char what[96];
        snprintf(what, sizeof what, "lora-r4 scale 1 vs llama.cpp (KV %s)", kv ? "F32" : "F16");
        if (got) pf_test_compare_logits(t, what, got, f->want, f->n, N_VOCAB, 0.99999, 0.002, true);
        free(got);
    }
    /* the adapter changes the logits noticeably: the golden is not the base model's */
    double d = max_rel_diff(f->base, f->want, f->n);
    CHECK(t, d > 0.01, "adapter golden too close to the base model (%.3g)", d);
    /* n_batch 5: internal batch splits */
    float *got = lora_logits(t, f, &f->a, NULL, 1, 5, PF_TYPE_F16);
    if (got) pf_test_compare_logits(t, "lora-r4 scale 1 (n_batch 5, scales NULL)", got, f->want, f->n, N_VOCAB, 0.99999, 0.002, true);
    free(got);
}

static void test_scales(pf_test *t, fixture *f) {
    const float zero = 0.0f, two = 2.0f, halves[2] = {0.5f, 0.5f};
    float *s0 = lora_logits(t, f, &f->a, &zero, 1, 0, PF_TYPE_F16);
    CHECK(t, s0 && !memcmp(s0, f->base, (size_t)f->n * N_VOCAB * sizeof(float)), "scale 0 != base logits");
    free(s0);
    float *s2 = lora_logits(t, f, &f->a, &two, 1, 0, PF_TYPE_F16);
    if (s2) {
        double d1 = max_rel_diff(s2, f->want, f->n), d0 = max_rel_diff(s2, f->base, f->n);
        CHECK(t, d1 > 0.01 && d0 > 0.01, "scale 2 too close to scale 1 (%.3g) or base (%.3g)", d1, d0);
        printf("scale 2: max|diff| %.3g of range vs scale 1, %.3g vs base\n", d1, d0);
    }
    free(s2);
    pf_lora *two_ad[2] = {f->a, f->a};
    float *sum = lora_logits(t, f, two_ad, halves, 2, 0, PF_TYPE_F16);
    if (sum) pf_test_compare_logits(t, "two adapters at 0.5 each vs golden", sum, f->want, f->n, N_VOCAB, 0.99999, 0.002, true);
    free(sum);

    /* attach, detach, re-attach on one context */
    pf_context *ctx = pf_test_make_ctx(t, f->m, 64, 0, PF_TYPE_F16, 4);
    if (!ctx) return;
    pf_error e = {0};
    int rc = pf_context_set_lora(ctx, &f->a, NULL, 1, &e);
    CHECK(t, rc == PF_OK, "attach: %s", e.msg);
    rc = pf_context_set_lora(ctx, NULL, NULL, 0, &e);
    CHECK(t, rc == PF_OK, "detach: %s", e.msg);
    float *lg = pf_test_batch_logits(t, ctx, f->ids, f->n);
    CHECK(t, lg && !memcmp(lg, f->base, (size_t)f->n * N_VOCAB * sizeof(float)), "detached != base logits");
    free(lg);
    rc = pf_context_set_lora(ctx, &f->a, NULL, 1, &e);
    CHECK(t, rc == PF_OK, "re-attach: %s", e.msg);
    /* token by token with the adapter equals the batch */
    float *inc = malloc((size_t)f->n * N_VOCAB * sizeof *inc);
    for (int i = 0; i < f->n && rc == PF_OK; i++) {
        rc = pf_decode(ctx, &f->ids[i], 1, i, inc + (size_t)i * N_VOCAB, PF_LOGITS_LAST, &e);
        CHECK(t, rc == PF_OK, "incremental %d: %s", i, e.msg);
    }
    if (rc == PF_OK) pf_test_compare_logits(t, "lora-r4 token by token vs golden", inc, f->want, f->n, N_VOCAB, 0.99999, 0.002, true);
    free(inc);
    /* bad arguments */
    pf_lora *null_ad = NULL;
    rc = pf_context_set_lora(ctx, &null_ad, NULL, 1, &e);
    CHECK(t, rc == PF_ERR_ARG, "NULL adapter: %d", rc);
    rc = pf_context_set_lora(ctx, NULL, NULL, 1, &e);
    CHECK(t, rc == PF_ERR_ARG, "NULL list: %d", rc);
    rc = pf_context_set_lora(NULL, &f->a, NULL, 1, &e);
    CHECK(t, rc == PF_ERR_ARG, "NULL context: %d", rc);
    pf_context_free(ctx);
    /* an adapter loaded for another model instance is refused */
    pf_model *m2 = NULL;
    if (pf_model_load(f->model_path, &m2, &e) == PF_OK) {
        pf_context *c2 = pf_test_make_ctx(t, m2, 64, 0, PF_TYPE_F16, 4);
        if (c2) {
            rc = pf_context_set_lora(c2, &f->a, NULL, 1, &e);
            CHECK(t, rc == PF_ERR_ARG && strstr(e.msg, "another model"), "foreign adapter: %d %s", rc, e.msg);
        }
        pf_context_free(c2);
        pf_model_free(m2);
    }
}

/* ---- adapter variants --------------------------------------------------------------------- */

typedef struct variant {
    const char *set_arch, *set_type, *drop_key, *drop_tensor, *rename_from, *rename_to;
    const char *reshape; /* tensor whose ne[1] becomes ne1 (data from a larger buffer) */
    int64_t ne1;
    const char *add_tensor; /* an extra F32 tensor [4] named so */
    pf_type conv;           /* PF_TYPE_F32: keep; F16: all to F16; Q8_0: lora_a tensors to Q8_0 */
} variant;

static int write_variant(const pf_gguf *src, const char *path, const variant *v, pf_error *e) {
    pf_gguf_writer *w = NULL;
    int rc = pf_gguf_writer_create(&w, e);
    void *bufs[64] = {0};
    int nb = 0;
    static const float zeros[4096];
    if (rc == PF_OK) rc = pf_gguf_writer_copy_kvs(w, src, e);
    if (rc == PF_OK && v->drop_key) pf_gguf_writer_remove(w, v->drop_key);
    if (rc == PF_OK && v->set_arch) rc = pf_gguf_writer_set_str(w, "general.architecture", v->set_arch, e);
    if (rc == PF_OK && v->set_type) rc = pf_gguf_writer_set_str(w, "adapter.type", v->set_type, e);
    for (int64_t i = 0; rc == PF_OK && i < pf_gguf_n_tensors(src); i++) {
        const pf_tensor_info *ti = pf_gguf_tensor(src, i);
        if (v->drop_tensor && !strcmp(ti->name, v->drop_tensor)) continue;
        const char *name = v->rename_from && !strcmp(ti->name, v->rename_from) ? v->rename_to : ti->name;
        int64_t ne[4] = {ti->ne[0], ti->ne[1], ti->ne[2], ti->ne[3]};
        const void *data = ti->data;
        pf_type type = ti->type;
        if (v->reshape && !strcmp(ti->name, v->reshape)) {
            ne[1] = v->ne1;
            void *big = calloc((size_t)(ne[0] * ne[1]), sizeof(float));
            memcpy(big, ti->data, ti->nbytes < (size_t)(ne[0] * ne[1]) * 4 ? ti->nbytes : (size_t)(ne[0] * ne[1]) * 4);
            data = bufs[nb++] = big;
        } else if (v->conv == PF_TYPE_F16) {
            const int64_t n = ne[0] * ne[1];
            uint16_t *h = malloc((size_t)n * 2);
            for (int64_t k = 0; k < n; k++) h[k] = pf_fp32_to_fp16(((const float *)ti->data)[k]);
            data = bufs[nb++] = h, type = PF_TYPE_F16;
        } else if (v->conv == PF_TYPE_Q8_0 && strstr(ti->name, ".lora_a")) {
            const pf_type_traits *tr = pf_type_get(PF_TYPE_Q8_0);
            void *q = malloc(pf_row_size(PF_TYPE_Q8_0, ne[0]) * (size_t)ne[1]);
            tr->from_float(ti->data, q, ne[0] * ne[1]);
            data = bufs[nb++] = q, type = PF_TYPE_Q8_0;
        }
        rc = pf_gguf_writer_add_tensor(w, name, type, ti->n_dims, ne, data, e);
    }
    if (rc == PF_OK && v->add_tensor) {
        int64_t ne[4] = {4, 1, 1, 1};
        rc = pf_gguf_writer_add_tensor(w, v->add_tensor, PF_TYPE_F32, 1, ne, zeros, e);
    }
    if (rc == PF_OK) rc = pf_gguf_writer_write(w, path, NULL, NULL, e);
    pf_gguf_writer_free(w);
    for (int i = 0; i < nb; i++) free(bufs[i]);
    return rc;
}

/* Writes the variant and loads it: the return code (adapter in *out when PF_OK). */
static int load_variant(pf_test *t, const fixture *f, const pf_gguf *src, const variant *v, pf_lora **out,
                        pf_error *e) {
    char path[128];
    snprintf(path, sizeof path, "%s/adapter.gguf", g_tmpdir);
    int rc = write_variant(src, path, v, e);
    CHECK(t, rc == PF_OK, "write variant: %s", e->msg);
    *out = NULL;
    rc = pf_lora_load(path, f->m, out, e);
    unlink(path);
    return rc;
}

static void bad_variant(pf_test *t, const fixture *f, const pf_gguf *src, const variant *v, const char *needle) {
    pf_error e = {0};
    pf_lora *a = NULL;
    int rc = load_variant(t, f, src, v, &a, &e);
    CHECK(t, rc != PF_OK && a == NULL, "variant loaded (%d)", rc);
    CHECK(t, strstr(e.msg, needle) != NULL, "message '%s' does not name '%s'", e.msg, needle);
    pf_lora_free(a);
}

static void test_variants(pf_test *t, fixture *f) {
    pf_gguf *src = NULL;
    pf_error e = {0};
    if (pf_gguf_open(f->lora_path, &src, &e) != PF_OK) {
        CHECK(t, 0, "open adapter: %s", e.msg);
        return;
    }
    bad_variant(t, f, src, &(variant){.set_arch = "llama"}, "arch");
    bad_variant(t, f, src, &(variant){.set_arch = "llama"}, "llama");
    bad_variant(t, f, src, &(variant){.set_type = "ia3"}, "adapter.type");
    bad_variant(t, f, src, &(variant){.drop_key = "general.type"}, "general.type");
    bad_variant(t, f, src, &(variant){.reshape = "blk.0.attn_qkv.weight.lora_b", .ne1 = 128},
                "blk.0.attn_qkv.weight.lora_a");
    bad_variant(t, f, src, &(variant){.reshape = "blk.1.ffn_down.weight.lora_a", .ne1 = 5},
                "blk.1.ffn_down.weight.lora_a");
    bad_variant(t, f, src, &(variant){.drop_tensor = "blk.1.ffn_up.weight.lora_b"}, "blk.1.ffn_up.weight.lora_b");
    bad_variant(t, f, src, &(variant){.drop_tensor = "blk.1.ffn_up.weight.lora_a"}, "blk.1.ffn_up.weight.lora_a");
    bad_variant(t, f, src, &(variant){.add_tensor = "blk.0.attn_qkv.weight.lora_c"}, "blk.0.attn_qkv.weight.lora_c");
    bad_variant(t, f, src,
                &(variant){.rename_from = "blk.0.ffn_up.weight.lora_a", .rename_to = "blk.7.ffn_up.weight.lora_a",
                           .drop_tensor = "blk.0.ffn_up.weight.lora_b"},
                "blk.7.ffn_up.weight");

    /* _norm.weight tensors are ignored; alpha missing -> scale = user scale (alpha/r = 2 here) */
    pf_lora *a = NULL;
    int rc = load_variant(t, f, src, &(variant){.add_tensor = "blk.0.attn_norm.weight"}, &a, &e);
    CHECK(t, rc == PF_OK, "norm tensor should be ignored: %s", e.msg);
    if (a) {
        float *got = lora_logits(t, f, &a, NULL, 1, 0, PF_TYPE_F16);
        if (got) pf_test_compare_logits(t, "adapter with an ignored _norm.weight", got, f->want, f->n, N_VOCAB, 0.99999, 0.002, true);
        free(got);
    }
    pf_lora_free(a);
    rc = load_variant(t, f, src, &(variant){.drop_key = "adapter.lora.alpha"}, &a, &e);
    CHECK(t, rc == PF_OK, "no alpha: %s", e.msg);
    if (a) {
        CHECK(t, pf_lora_alpha(a) == 0.0f, "alpha %g", pf_lora_alpha(a));
        const float two = 2.0f; /* alpha 8 / r 4 = 2: scale 2 without alpha is the golden */
        float *got = lora_logits(t, f, &a, &two, 1, 0, PF_TYPE_F16);
        if (got) pf_test_compare_logits(t, "no alpha, user scale 2 vs golden", got, f->want, f->n, N_VOCAB, 0.99999, 0.002, true);
        free(got);
    }
    pf_lora_free(a);

    /* F16 and Q8_0 adapter tensors */
    rc = load_variant(t, f, src, &(variant){.conv = PF_TYPE_F16}, &a, &e);
    CHECK(t, rc == PF_OK, "F16 adapter: %s", e.msg);
    if (a) {
        float *got = lora_logits(t, f, &a, NULL, 1, 0, PF_TYPE_F16);
        if (got) pf_test_compare_logits(t, "F16 adapter vs golden", got, f->want, f->n, N_VOCAB, 0.99999, 0.002, true);
        free(got);
    }
    pf_lora_free(a);
    rc = load_variant(t, f, src, &(variant){.conv = PF_TYPE_Q8_0}, &a, &e);
    CHECK(t, rc == PF_OK, "Q8_0 adapter: %s", e.msg);
    if (a) {
        float *got = lora_logits(t, f, &a, NULL, 1, 0, PF_TYPE_F16);
        if (got) pf_test_compare_logits(t, "Q8_0 lora_a adapter vs golden", got, f->want, f->n, N_VOCAB, 0.999, 0.02, false);
        free(got);
    }
    pf_lora_free(a);
    rc = pf_lora_load("tests/data/does-not-exist.gguf", f->m, &a, &e);
    CHECK(t, rc != PF_OK && a == NULL, "missing adapter file loads");
    rc = pf_lora_load(f->model_path, f->m, &a, &e); /* a model is not an adapter */
    CHECK(t, rc != PF_OK && a == NULL && strstr(e.msg, "general.type"), "model as adapter: %d %s", rc, e.msg);
    pf_gguf_close(src);
}

/* ---- CLI ---------------------------------------------------------------------------------- */

static int sh(const char *cmd) {
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(pf_test *t, fixture *f) {
    if (access("./build/phiforge", X_OK) != 0) {
        printf("SKIP: ./build/phiforge not built\n");
        return;
    }
    char cmd[4096], out[128], ids[1024] = "";
    for (int i = 0; i < f->n; i++) snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%d", i ? " " : "", f->ids[i]);
    snprintf(out, sizeof out, "%s/cli.f32", g_tmpdir);
    snprintf(cmd, sizeof cmd, "./build/phiforge logits -m %s --ids \"%s\" -o %s -t 2 --lora %s 2>/dev/null",
             f->model_path, ids, out, f->lora_path);
    CHECK(t, sh(cmd) == 0, "phiforge logits --lora failed");
    size_t size = 0;
    float *got = pf_test_read_file(out, &size);
    CHECK(t, got && size == (size_t)f->n * N_VOCAB * 4, "output size %zu", size);
    if (got && size == (size_t)f->n * N_VOCAB * 4)
        pf_test_compare_logits(t, "phiforge logits --lora (phi3-tiny-lora-r4)", got, f->want, f->n, N_VOCAB, 0.99999, 0.002, true);
    free(got);
    unlink(out);
    /* two adapters: 0.25 + 0.75 = the golden */
    snprintf(cmd, sizeof cmd,
             "./build/phiforge logits -m %s --ids \"%s\" -o %s --lora %s --lora-scale 0.25 --lora %s --lora-scale 0.75 "
             "2>/dev/null", f->model_path, ids, out, f->lora_path, f->lora_path);
    CHECK(t, sh(cmd) == 0, "phiforge logits with two --lora failed");
    got = pf_test_read_file(out, &size);
    if (got && size == (size_t)f->n * N_VOCAB * 4)
        pf_test_compare_logits(t, "phiforge logits --lora x2 (0.25 + 0.75)", got, f->want, f->n, N_VOCAB, 0.99999, 0.002, true);
    else CHECK(t, 0, "two-adapter output size %zu", size);
    free(got);
    unlink(out);
    snprintf(cmd, sizeof cmd, "./build/phiforge logits -m %s --ids 1 -o %s --lora-scale 2 2>/dev/null", f->model_path,
             out);
    CHECK(t, sh(cmd) == 1 && access(out, F_OK) != 0, "--lora-scale without --lora should fail");
    snprintf(cmd, sizeof cmd, "./build/phiforge logits -m %s --ids 1 -o %s --lora %s --lora-scale x 2>/dev/null",
             f->model_path, out, f->lora_path);
    CHECK(t, sh(cmd) == 1 && access(out, F_OK) != 0, "bad --lora-scale should fail");
    snprintf(cmd, sizeof cmd, "./build/phiforge logits -m %s --ids 1 -o %s --lora %s 2>/dev/null", f->model_path, out,
             f->model_path);
    CHECK(t, sh(cmd) == 1 && access(out, F_OK) != 0, "a model as --lora should fail");
    /* generate: greedy with the adapter at scale 0 equals without it; a missing adapter fails */
    char o1[128], o2[128];
    snprintf(o1, sizeof o1, "%s/g1.txt", g_tmpdir);
    snprintf(o2, sizeof o2, "%s/g2.txt", g_tmpdir);
    snprintf(cmd, sizeof cmd, "./build/phiforge generate -m %s -p hello -n 8 --temp 0 --print-ids > %s 2>/dev/null",
             f->model_path, o1);
    int r1 = sh(cmd);
    snprintf(cmd, sizeof cmd,
             "./build/phiforge generate -m %s -p hello -n 8 --temp 0 --print-ids --lora %s --lora-scale 0 > %s "
             "2>/dev/null", f->model_path, f->lora_path, o2);
    int r2 = sh(cmd);
    CHECK(t, r1 == 0 && r2 == 0, "generate failed (%d, %d)", r1, r2);
    size_t s1 = 0, s2 = 0;
    char *g1 = pf_test_read_file(o1, &s1), *g2 = pf_test_read_file(o2, &s2);
    CHECK(t, g1 && g2 && s1 == s2 && s1 > 0 && !memcmp(g1, g2, s1), "generate --lora-scale 0 differs from no adapter");
    free(g1);
    free(g2);
    snprintf(cmd, sizeof cmd, "./build/phiforge generate -m %s -p hello -n 4 --temp 0 --lora %s > %s 2>/dev/null",
             f->model_path, f->lora_path, o2);
    CHECK(t, sh(cmd) == 0, "generate --lora failed");
    snprintf(cmd, sizeof cmd, "./build/phiforge generate -m %s -p hello -n 4 --lora %s/none.gguf > %s 2>/dev/null",
             f->model_path, g_tmpdir, o2);
    CHECK(t, sh(cmd) == 1, "generate with a missing adapter should fail");
    unlink(o1);
    unlink(o2);
}

int main(void) {
    pf_test t = {0};
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/pf_test_lora_XXXXXX");
    if (mkdtemp(g_tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    fixture f;
    if (setup(&t, &f)) {
        test_golden(&t, &f);
        test_scales(&t, &f);
        test_variants(&t, &f);
        test_cli(&t, &f);
    }
    teardown(&f);
    rmdir(g_tmpdir);
    return TEST_REPORT(&t);
}
