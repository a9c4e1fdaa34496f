/* End-to-end checks of the command-line forms that external tools rely on:
 *   phiforge info FILE [--json], phiforge tensor -m F -t NAME -o OUT, phiforge quantize IN OUT TYPE. */
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#include "testing.h"

#define BIN "./build/phiforge"

static void test_info(pf_test *t) {
    static char out[1 << 20];
    int rc = pf_test_run(BIN " info tests/data/phi3-tiny-f16.gguf", out, sizeof out);
    CHECK(t, rc == 0, "info exit %d", rc);
    CHECK(t, strstr(out, "architecture:  phi3") != NULL, "architecture line missing:\n%.400s", out);
    CHECK(t, strstr(out, "SentencePiece BPE (llama), 32064 tokens") != NULL, "tokenizer line missing");
    CHECK(t, strstr(out, "block_count") != NULL, "hyperparameters missing");
    CHECK(t, strstr(out, "blk.1.attn_qkv.weight") && strstr(out, "[64, 192]"), "qkv tensor/shape missing");
    CHECK(t, strstr(out, "output_norm.weight") && strstr(out, "F32"), "norm tensor missing");

    rc = pf_test_run(BIN " info --json tests/data/phi3-tiny-f16.gguf | python3 -c 'import json,sys; d=json.load(sys.stdin);"
             " print(d[\"architecture\"], len(d[\"tensors\"]), d[\"tokenizer\"][\"n_tokens\"],"
             " d[\"hyperparameters\"][\"block_count\"], sum(x[\"n_elements\"] for x in d[\"tensors\"]) == d[\"n_params\"])'",
             out, sizeof out);
    CHECK(t, rc == 0 && !strcmp(out, "phi3 15 32064 2 True\n"), "info --json: rc %d, got '%s'", rc, out);

    rc = pf_test_run(BIN " info tests/data/does-not-exist.gguf 2>&1", out, sizeof out);
    CHECK(t, rc != 0 && strstr(out, "does-not-exist.gguf"), "missing file: rc %d '%s'", rc, out);
    rc = pf_test_run(BIN " info tests/data/chat.ids 2>&1; " BIN " info Makefile 2>&1", out, sizeof out);
    CHECK(t, strstr(out, "phiforge info:") != NULL, "non-GGUF input should fail with a message: '%s'", out);
    rc = pf_test_run(BIN " info -h", out, sizeof out);
    CHECK(t, rc == 0 && strstr(out, "usage: phiforge info"), "info -h");
}

/* tensor: the dequantized output must equal the golden dequantization byte for byte. */
static void test_tensor(pf_test *t) {
    static const char *types[] = {"F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K",
                                  "Q4_K", "Q5_K", "Q6_K", "IQ4_NL"};
    char cmd[512], path[256];
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        snprintf(cmd, sizeof cmd, BIN " tensor -m tests/data/quant-%s.gguf -t blk.0.ffn_down.weight -o build/tests/t.f32",
                 types[i]);
        int rc = pf_test_run(cmd, NULL, 0);
        snprintf(path, sizeof path, "tests/data/quant-%s.f32", types[i]);
        size_t na = 0, nb = 0;
        void *a = pf_test_read_file("build/tests/t.f32", &na), *b = pf_test_read_file(path, &nb);
        CHECK(t, rc == 0 && a && b && na == nb && !memcmp(a, b, na), "tensor %s differs from golden (rc %d)", types[i], rc);
        free(a);
        free(b);
    }
    char out[4096];
    int rc = pf_test_run(BIN " tensor -m tests/data/quant-Q8_0.gguf -t nope -o build/tests/t.f32 2>&1", out, sizeof out);
    CHECK(t, rc != 0 && strstr(out, "nope"), "unknown tensor must fail naming it: '%s'", out);
}

/* Reads tensor NAME of FILE dequantized through the CLI. */
static float *read_tensor(const char *file, const char *name, size_t *n) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, BIN " tensor -m %s -t %s -o build/tests/rt.f32", file, name);
    if (pf_test_run(cmd, NULL, 0) != 0) return NULL;
    float *p = pf_test_read_file("build/tests/rt.f32", n);
    *n /= sizeof(float);
    return p;
}

/* quantize: types chosen as documented, result loads, values close to the source. */
static void test_quantize(pf_test *t) {
    /* phi3-tiny has ne0 = 64 (qkv, ffn_up) and 128 (ffn_down): rows that do not split into
     * 256-blocks fall back as llama.cpp does (Q6_K -> Q8_0, Q4_K -> Q5_0; pf_quant_recipe_type). */
    static const struct { const char *type, *want_qkv, *want_down; double max_rel_rmse; } cases[] = {
        {"Q8_0", "Q8_0", "Q8_0", 0.01},  {"Q4_0", "Q4_0", "Q4_0", 0.15},       {"Q6_K", "Q8_0", "Q8_0", 0.01},
        {"IQ4_NL", "IQ4_NL", "IQ4_NL", 0.12}, {"bf16", "BF16", "BF16", 0.01}, {"Q4_K", "Q5_0", "Q5_0", 0.08},
    };
    char cmd[512], out[1 << 16];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(cmd, sizeof cmd, BIN " quantize tests/data/phi3-tiny-f16.gguf build/tests/q.gguf %s 2>&1", cases[i].type);
        int rc = pf_test_run(cmd, out, sizeof out);
        CHECK(t, rc == 0, "quantize %s failed: %s", cases[i].type, out);
        if (rc) continue;
        pf_gguf *g = NULL;
        pf_error err = {0};
        rc = pf_gguf_open("build/tests/q.gguf", &g, &err);
        CHECK(t, rc == 0, "quantized file does not load: %s", err.msg);
        if (rc) continue;
        const pf_tensor_info *qkv = pf_gguf_tensor(g, pf_gguf_find_tensor(g, "blk.0.attn_qkv.weight"));
        const pf_tensor_info *dn = pf_gguf_tensor(g, pf_gguf_find_tensor(g, "blk.0.ffn_down.weight"));
        const pf_tensor_info *nrm = pf_gguf_tensor(g, pf_gguf_find_tensor(g, "blk.0.attn_norm.weight"));
        CHECK(t, !strcmp(pf_type_name(qkv->type), cases[i].want_qkv), "%s: qkv got %s", cases[i].type,
              pf_type_name(qkv->type));
        CHECK(t, !strcmp(pf_type_name(dn->type), cases[i].want_down), "%s: ffn_down got %s", cases[i].type,
              pf_type_name(dn->type));
        CHECK(t, nrm->type == PF_TYPE_F32, "norms must stay F32");
        int64_t ft = -1;
        pf_gguf_get_int(g, "general.file_type", &ft, NULL);
        CHECK(t, ft >= 0, "general.file_type missing");
        pf_gguf_close(g);

        size_t na, nb;
        float *a = read_tensor("tests/data/phi3-tiny-f16.gguf", "blk.1.ffn_up.weight", &na);
        float *b = read_tensor("build/tests/q.gguf", "blk.1.ffn_up.weight", &nb);
        double se = 0, ss = 0;
        for (size_t j = 0; a && b && j < na && na == nb; j++) se += (a[j] - b[j]) * (double)(a[j] - b[j]), ss += a[j] * (double)a[j];
        double rel = a && b && na == nb ? sqrt(se / ss) : 1e9;
        CHECK(t, rel <= cases[i].max_rel_rmse, "%s: relative RMSE %.4f > %.4f", cases[i].type, rel, cases[i].max_rel_rmse);
        free(a);
        free(b);
    }
    /* The Q4_K_M recipe on a model whose rows fit 256-blocks (3 layers): attn_qkv Q5_K,
     * output Q6_K, ffn_down Q6_K only where use_more_bits holds (layer 2 of 3), the rest Q4_K. */
    char gqa[256];
    if (pf_test_data_path(gqa, sizeof gqa, "models", "phi3-tiny-gqa-Q4_K_M.gguf")) {
        snprintf(cmd, sizeof cmd, BIN " quantize %s build/tests/qm.gguf Q4_K_M 2>&1", gqa);
        int rc = pf_test_run(cmd, out, sizeof out);
        CHECK(t, rc == 0, "Q4_K_M failed: %s", out);
        pf_gguf *g = NULL;
        if (rc == 0 && pf_gguf_open("build/tests/qm.gguf", &g, NULL) == PF_OK) {
            static const char *want[][2] = {{"blk.0.attn_qkv.weight", "Q5_K"}, {"output.weight", "Q6_K"},
                                            {"blk.0.ffn_down.weight", "Q4_K"}, {"blk.2.ffn_down.weight", "Q6_K"},
                                            {"blk.1.ffn_up.weight", "Q4_K"},   {"token_embd.weight", "Q4_K"},
                                            {"blk.1.attn_norm.weight", "F32"}};
            for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
                int64_t ti = pf_gguf_find_tensor(g, want[k][0]);
                const char *got = ti >= 0 ? pf_type_name(pf_gguf_tensor(g, ti)->type) : "(absent)";
                CHECK(t, !strcmp(got, want[k][1]), "Q4_K_M: %s is %s, want %s", want[k][0], got, want[k][1]);
            }
            int64_t ft = -1;
            pf_gguf_get_int(g, "general.file_type", &ft, NULL);
            CHECK(t, ft == 15, "Q4_K_M file_type %lld", (long long)ft);
            pf_gguf_close(g);
        }
    } else {
        printf("note: phi3-tiny-gqa-Q4_K_M.gguf not found (needs ../shared), Q4_K_M recipe not checked\n");
    }
    /* A quantize of an already-quantized model is allowed (dequantize + requantize). */
    int rc = pf_test_run(BIN " quantize build/tests/q.gguf build/tests/q2.gguf Q8_0 2>&1", out, sizeof out);
    CHECK(t, rc == 0, "requantize failed: %s", out);
    rc = pf_test_run(BIN " quantize tests/data/phi3-tiny-f16.gguf build/tests/q.gguf Q8_K 2>&1", out, sizeof out);
    CHECK(t, rc != 0 && strstr(out, "Q8_K"), "activation-only type must be refused: %s", out);
}

int main(void) {
    pf_test t = {0};
    if (access(BIN, X_OK) != 0) {
        fprintf(stderr, "FAIL: %s not built\n", BIN);
        return 1;
    }
    test_info(&t);
    test_tensor(&t);
    test_quantize(&t);
    return TEST_REPORT(&t);
}
