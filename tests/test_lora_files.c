/* LoRA adapter files: the llama.cpp golden adapter read into fp32 weights, written back as GGUF
 * (byte for byte), as PEFT (safetensors checked against the format spec here), loaded back
 * from both (logits equal the llama.cpp golden), round trips of random weights (F32 exact, F16
 * to fp16 rounding), rsLoRA scaling, adapters built from in-memory weights, and hostile
 * safetensors / adapter_config.json files (errors naming the file and key). */
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"

#define N_VOCAB 32064
static char g_tmp[64];

typedef struct fixture {
    pf_model *m;
    char model_path[256], lora_path[256];
    int32_t ids[128];
    int n;
    float *want; /* llama.cpp, golden adapter at scale 1 */
} fixture;

static const char *tmp_path(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", g_tmp, name);
    return buf;
}

/* Logits of every position with `a` attached at `scale` (a NULL: the base model). */
static float *logits(pf_test *t, const fixture *f, pf_lora *a, float scale) {
    pf_context_params p = pf_context_default_params();
    p.n_ctx = 64, p.n_threads = 2;
    pf_error e = {0};
    pf_context *ctx = NULL;
    float *lg = malloc((size_t)f->n * N_VOCAB * sizeof *lg);
    int rc = pf_context_create(f->m, &p, &ctx, &e);
    if (rc == PF_OK && a) rc = pf_context_set_lora(ctx, &a, &scale, 1, &e);
    if (rc == PF_OK) rc = pf_decode(ctx, f->ids, f->n, 0, lg, PF_LOGITS_ALL, &e);
    CHECK(t, rc == PF_OK, "logits: %s", e.msg);
    pf_context_free(ctx);
    if (rc != PF_OK) free(lg), lg = NULL;
    return lg;
}

static float *load_logits(pf_test *t, const fixture *f, const char *path) {
    pf_lora *a = NULL;
    pf_error e = {0};
    int rc = pf_lora_load(path, f->m, &a, &e);
    CHECK(t, rc == PF_OK, "pf_lora_load %s: %s", path, e.msg);
    float *lg = rc == PF_OK ? logits(t, f, a, 1.0f) : NULL;
    pf_lora_free(a);
    return lg;
}

static bool same_weights(const pf_lora_weights *x, const pf_lora_weights *y) {
    if (x->n != y->n) return false;
    for (int64_t i = 0; i < x->n; i++) {
        const pf_lora_pair *a = &x->pairs[i], *b = &y->pairs[i];
        if (strcmp(a->base, b->base) || a->n_in != b->n_in || a->n_out != b->n_out || a->r != b->r ||
            memcmp(a->a, b->a, (size_t)(a->r * a->n_in) * 4) || memcmp(a->b, b->b, (size_t)(a->n_out * a->r) * 4))
            return false;
    }
    return true;
}

/* ---- safetensors against the spec ---------------------------------------------------------- */

/* Checks a safetensors file as the format defines it and that every tensor's bytes are the
 * floats of the matching pair. */
static void check_safetensors(pf_test *t, const char *path, const pf_lora_weights *w) {
    size_t size;
    uint8_t *buf = pf_test_read_file(path, &size);
    CHECK(t, buf && size > 8, "read %s", path);
    if (!buf) return;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | buf[i];
    CHECK(t, n % 8 == 0 && 8 + n <= size, "header length %llu (8-aligned, inside the file)", (unsigned long long)n);
    const uint64_t hlen = n;
    char *h = malloc(n + 1);
    memcpy(h, buf + 8, n), h[n] = 0;
    while (n && h[n - 1] == ' ') h[--n] = 0; /* padding */
    CHECK(t, !strncmp(h, "{\"__metadata__\":{\"format\":\"pt\"},", 32), "header starts with the metadata: %.60s", h);
    /* keys in sorted order, offsets contiguous from 0 to the end of the file */
    const char *p = h + 32, *prev = NULL;
    size_t prev_len = 0;
    uint64_t expect_off = 0;
    int64_t count = 0, bad = 0;
    while (*p == '"') {
        const char *q = strchr(p + 1, '"');
        const size_t len = (size_t)(q - p - 1);
        if (prev) {
            const size_t m = len < prev_len ? len : prev_len;
            const int c = memcmp(prev, p + 1, m);
            bad += c > 0 || (c == 0 && prev_len > len);
        }
        prev = p + 1, prev_len = len;
        long long r0, r1;
        unsigned long long b, e;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)len, p + 1);
        if (sscanf(q, "\":{\"dtype\":\"F32\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]}", &r0, &r1, &b, &e) != 4) {
            CHECK(t, 0, "entry %s not in safetensors' form: %.80s", name, q);
            break;
        }
        bad += b != expect_off || e != b + (unsigned long long)(r0 * r1) * 4;
        expect_off = e;
        /* the bytes are the pair's A or B */
        const char *mod = name + strlen("base_model.model."), *ab = strstr(name, ".lora_");
        char module[160], base[96];
        snprintf(module, sizeof module, "%.*s", (int)(ab - mod), mod);
        bool found = false;
        if (pf_lora_gguf_base(module, base, sizeof base))
            for (int64_t i = 0; i < w->n; i++)
                if (!strcmp(w->pairs[i].base, base)) {
                    const pf_lora_pair *pr = &w->pairs[i];
                    const bool is_a = ab[6] == 'A';
                    found = is_a ? (r0 == pr->r && r1 == pr->n_in) : (r0 == pr->n_out && r1 == pr->r);
                    found = found && !memcmp(buf + 8 + hlen + b, is_a ? pr->a : pr->b, e - b);
                }
        bad += !found;
        count++;
        p = strchr(q, '}') + 1;
        if (*p == ',') p++;
    }
    CHECK(t, bad == 0 && count == 2 * w->n, "safetensors: %lld entries (want %lld), %lld bad", (long long)count,
          (long long)(2 * w->n), (long long)bad);
    CHECK(t, 8 + hlen + expect_off == size,
          "data area ends at the end of the file");
    free(h), free(buf);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_cli(pf_test *t, fixture *f, const char *peft_dir);

static void test_golden(pf_test *t, fixture *f) {
    pf_lora_weights w;
    pf_error e = {0};
    int rc = pf_lora_read(f->lora_path, f->m, &w, &e);
    CHECK(t, rc == PF_OK, "read golden: %s", e.msg);
    if (rc != PF_OK) return;
    CHECK(t, w.n == 8 && w.alpha == 8.0f && w.rank == 4 && !w.rslora, "golden: %lld pairs alpha %g rank %d", (long long)w.n,
          w.alpha, w.rank);
    CHECK(t, !strcmp(w.pairs[0].base, "blk.0.attn_qkv.weight") && w.pairs[0].n_in == 64 && w.pairs[0].n_out == 192,
          "golden pair 0: %s", w.pairs[0].base);
    /* GGUF written back is the reference file byte for byte */
    char p1[128], dir[128];
    rc = pf_lora_save_gguf(&w, f->m, tmp_path(p1, sizeof p1, "golden.gguf"), PF_TYPE_F32, &e);
    CHECK(t, rc == PF_OK, "save gguf: %s", e.msg);
    size_t n1, n2;
    void *a = pf_test_read_file(p1, &n1), *b = pf_test_read_file(f->lora_path, &n2);
    CHECK(t, a && b && n1 == n2 && !memcmp(a, b, n1), "GGUF written back differs from the golden (%zu vs %zu bytes)", n1, n2);
    free(a), free(b);
    /* PEFT: files per the spec, same floats back, same logits as the golden */
    rc = pf_lora_save_peft(&w, f->m, tmp_path(dir, sizeof dir, "peft"), &e);
    CHECK(t, rc == PF_OK, "save peft: %s", e.msg);
    char st[192], cfg[192];
    snprintf(st, sizeof st, "%s/adapter_model.safetensors", dir);
    snprintf(cfg, sizeof cfg, "%s/adapter_config.json", dir);
    check_safetensors(t, st, &w);
    size_t nc;
    char *c = pf_test_read_file(cfg, &nc);
    CHECK(t, c && strstr(c, "\"peft_type\": \"LORA\"") && strstr(c, "\"r\": 4,") && strstr(c, "\"lora_alpha\": 8,") &&
                 strstr(c, "\"target_modules\": [\n    \"qkv_proj\",\n    \"o_proj\",\n    \"gate_up_proj\",\n    \"down_proj\"\n  ]") &&
                 strstr(c, "\"task_type\": \"CAUSAL_LM\"") && strstr(c, "\"use_rslora\": false") &&
                 strstr(c, "\"bias\": \"none\"") && strstr(c, "\"fan_in_fan_out\": false"),
          "adapter_config.json:\n%s", c ? c : "(missing)");
    free(c);
    pf_lora_weights back;
    rc = pf_lora_read(dir, f->m, &back, &e);
    CHECK(t, rc == PF_OK, "read peft: %s", e.msg);
    if (rc == PF_OK)
        CHECK(t, same_weights(&w, &back) && back.alpha == 8.0f && back.rank == 4 && !back.rslora, "PEFT round trip changed the weights");
    pf_lora_weights_clear(&back);
    float *g_gguf = load_logits(t, f, f->lora_path), *g_peft = load_logits(t, f, dir), *g_rt = load_logits(t, f, p1);
    if (g_peft) pf_test_compare_logits(t, "PEFT dir vs llama.cpp golden", g_peft, f->want, f->n, N_VOCAB, 0.99999, 0.002, true);
    if (g_rt) pf_test_compare_logits(t, "re-written GGUF vs llama.cpp golden", g_rt, f->want, f->n, N_VOCAB, 0.99999, 0.002, true);
    CHECK(t, g_gguf && g_peft && !memcmp(g_gguf, g_peft, (size_t)f->n * N_VOCAB * 4), "PEFT and GGUF logits differ");
    /* in-memory weights give the same logits too */
    pf_lora *mem = NULL;
    rc = pf_lora_from_weights(&w, f->m, &mem, &e);
    CHECK(t, rc == PF_OK && pf_lora_n_adapted(mem) == 8, "from_weights: %s", e.msg);
    float *g_mem = rc == PF_OK ? logits(t, f, mem, 1.0f) : NULL;
    CHECK(t, g_gguf && g_mem && !memcmp(g_gguf, g_mem, (size_t)f->n * N_VOCAB * 4), "in-memory adapter logits differ");
    pf_lora_free(mem);
    free(g_gguf), free(g_peft), free(g_rt), free(g_mem);
    pf_lora_weights_clear(&w);
    test_cli(t, f, dir);
}

/* `--lora DIR` on the command line: logits with the PEFT copy of the golden at 0.5 plus the GGUF
 * at 0.5 equal the golden; bench accepts --lora too. */
static void test_cli(pf_test *t, fixture *f, const char *peft_dir) {
    if (access("./build/phiforge", X_OK) != 0) {
        printf("SKIP: ./build/phiforge not built\n");
        return;
    }
    char cmd[4096], out[128], ids[1024] = "";
    for (int i = 0; i < f->n; i++) snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%d", i ? " " : "", f->ids[i]);
    tmp_path(out, sizeof out, "cli.f32");
    snprintf(cmd, sizeof cmd,
             "./build/phiforge logits -m %s --ids \"%s\" -o %s -t 2 --lora %s --lora-scale 0.5 --lora %s --lora-scale 0.5 "
             "2>/dev/null", f->model_path, ids, out, peft_dir, f->lora_path);
    int st = system(cmd);
    CHECK(t, WIFEXITED(st) && WEXITSTATUS(st) == 0, "phiforge logits --lora DIR failed");
    size_t size = 0;
    float *got = pf_test_read_file(out, &size);
    if (got && size == (size_t)f->n * N_VOCAB * 4)
        pf_test_compare_logits(t, "phiforge logits --lora PEFT 0.5 + GGUF 0.5", got, f->want, f->n, N_VOCAB, 0.99999, 0.002, true);
    else CHECK(t, 0, "output size %zu", size);
    free(got);
    unlink(out);
    snprintf(cmd, sizeof cmd, "./build/phiforge bench -m %s -p 8 -n 2 -r 1 -t 2 --json --lora %s > %s 2>/dev/null",
             f->model_path, peft_dir, out);
    st = system(cmd);
    char *j = pf_test_read_file(out, &size);
    CHECK(t, WIFEXITED(st) && WEXITSTATUS(st) == 0 && j && strstr(j, "\"model\""), "phiforge bench --lora DIR: %s", j ? j : "");
    free(j);
    snprintf(cmd, sizeof cmd, "./build/phiforge bench -m %s -p 8 -n 2 -r 1 --lora %s/nonexistent 2>%s", f->model_path, g_tmp, out);
    st = system(cmd);
    j = pf_test_read_file(out, &size);
    CHECK(t, WIFEXITED(st) && WEXITSTATUS(st) == 1 && j && strstr(j, "nonexistent"), "bench with a missing adapter: %s", j ? j : "");
    free(j);
    unlink(out);
}

/* Random weights for every linear of the model (r 3, output included). */
static void random_weights(const fixture *f, pf_lora_weights *w, uint64_t seed, float amp) {
    memset(w, 0, sizeof *w);
    const pf_model_hparams *hp = pf_model_get_hparams(f->m);
    static const char *const kinds[4] = {"attn_qkv", "attn_output", "ffn_up", "ffn_down"};
    const int64_t n_qkv = hp->n_embd + 2 * hp->n_head_kv * (hp->n_embd / hp->n_head);
    const int64_t shapes[4][2] = {{hp->n_embd, n_qkv}, {hp->n_embd, hp->n_embd}, {hp->n_embd, 2 * hp->n_ff}, {hp->n_ff, hp->n_embd}};
    pf_test_rng rng = {seed};
    w->n = hp->n_layer * 4 + 1;
    w->pairs = calloc((size_t)w->n, sizeof *w->pairs);
    w->alpha = 6.0f, w->rank = 3, w->dropout = 0.05f;
    snprintf(w->base_model, sizeof w->base_model, "microsoft/Phi-3-mini-4k-instruct");
    for (int64_t i = 0; i < w->n; i++) {
        pf_lora_pair *p = &w->pairs[i];
        if (i == w->n - 1) snprintf(p->base, sizeof p->base, "output.weight"), p->n_in = hp->n_embd, p->n_out = N_VOCAB;
        else snprintf(p->base, sizeof p->base, "blk.%lld.%s.weight", (long long)(i / 4), kinds[i % 4]), p->n_in = shapes[i % 4][0], p->n_out = shapes[i % 4][1];
        p->r = 3;
        p->a = malloc((size_t)(p->r * p->n_in) * 4), p->b = malloc((size_t)(p->n_out * p->r) * 4);
        for (int64_t k = 0; k < p->r * p->n_in; k++) p->a[k] = amp * pf_test_uniform(&rng);
        for (int64_t k = 0; k < p->r * p->n_out; k++) p->b[k] = amp * pf_test_uniform(&rng);
    }
}

static void test_round_trips(pf_test *t, fixture *f) {
    pf_lora_weights w, back;
    pf_error e = {0};
    random_weights(f, &w, 99, 0.05f);
    char g32[128], g16[128], dir[128];
    tmp_path(g32, sizeof g32, "rand32.gguf"), tmp_path(g16, sizeof g16, "rand16.gguf"), tmp_path(dir, sizeof dir, "randpeft");
    int rc = pf_lora_save_gguf(&w, f->m, g32, PF_TYPE_F32, &e);
    CHECK(t, rc == PF_OK, "save: %s", e.msg);
    rc = pf_lora_read(g32, f->m, &back, &e);
    CHECK(t, rc == PF_OK && same_weights(&w, &back) && back.alpha == w.alpha, "GGUF F32 round trip: %s", e.msg);
    pf_lora_weights_clear(&back);
    rc = pf_lora_save_peft(&w, f->m, dir, &e);
    CHECK(t, rc == PF_OK, "save peft: %s", e.msg);
    rc = pf_lora_read(dir, f->m, &back, &e);
    CHECK(t, rc == PF_OK && same_weights(&w, &back) && back.alpha == w.alpha && fabsf(back.dropout - 0.05f) < 1e-7f &&
                 !strcmp(back.base_model, w.base_model),
          "PEFT round trip: %s", e.msg);
    pf_lora_weights_clear(&back);
    char cfg[192];
    snprintf(cfg, sizeof cfg, "%s/adapter_config.json", dir);
    size_t nc;
    char *c = pf_test_read_file(cfg, &nc);
    CHECK(t, c && strstr(c, "\"lora_dropout\": 0.05,") && strstr(c, "\"lora_alpha\": 6,") && strstr(c, "\"r\": 3,") &&
                 strstr(c, "\"base_model_name_or_path\": \"microsoft/Phi-3-mini-4k-instruct\"") && strstr(c, "\"lm_head\""),
          "random adapter_config.json:\n%s", c ? c : "");
    free(c);
    /* F16: every float comes back as its fp16 rounding */
    rc = pf_lora_save_gguf(&w, f->m, g16, PF_TYPE_F16, &e);
    CHECK(t, rc == PF_OK, "save f16: %s", e.msg);
    rc = pf_lora_read(g16, f->m, &back, &e);
    int64_t bad = 0;
    for (int64_t i = 0; rc == PF_OK && i < w.n; i++) {
        const pf_lora_pair *a = &w.pairs[i], *b = &back.pairs[i];
        for (int64_t k = 0; k < a->r * a->n_in; k++) bad += b->a[k] != pf_fp16_to_fp32(pf_fp32_to_fp16(a->a[k]));
        for (int64_t k = 0; k < a->r * a->n_out; k++) bad += b->b[k] != pf_fp16_to_fp32(pf_fp32_to_fp16(a->b[k]));
    }
    CHECK(t, rc == PF_OK && bad == 0, "F16 round trip: %lld values off (%s)", (long long)bad, e.msg);
    pf_lora_weights_clear(&back);
    /* the saved GGUF applies exactly like the in-memory weights (output.weight adapted too) */
    pf_lora *mem = NULL;
    rc = pf_lora_from_weights(&w, f->m, &mem, &e);
    CHECK(t, rc == PF_OK && pf_lora_n_adapted(mem) == w.n, "from_weights: %s", e.msg);
    float *l_mem = mem ? logits(t, f, mem, 1.0f) : NULL, *l_file = load_logits(t, f, g32), *l_peft = load_logits(t, f, dir);
    float *l_base = logits(t, f, NULL, 1.0f);
    CHECK(t, l_mem && l_file && !memcmp(l_mem, l_file, (size_t)f->n * N_VOCAB * 4), "saved GGUF logits != in-memory logits");
    CHECK(t, l_mem && l_peft && !memcmp(l_mem, l_peft, (size_t)f->n * N_VOCAB * 4), "saved PEFT logits != in-memory logits");
    if (l_mem && l_base) {
        double d = 0;
        for (int p = 0; p < f->n; p++) {
            pf_logit_stats s = pf_test_logit_row(l_mem + (size_t)p * N_VOCAB, l_base + (size_t)p * N_VOCAB, N_VOCAB);
            d = s.rel > d ? s.rel : d;
        }
        CHECK(t, d > 1e-3, "random adapter does not change the logits (%.3g)", d);
    }
    pf_lora_free(mem);
    free(l_mem), free(l_file), free(l_peft);

    /* rsLoRA: PEFT keeps the flag; the GGUF folds sqrt(r) into alpha for llama.cpp's alpha / r */
    w.rslora = true;
    rc = pf_lora_save_gguf(&w, f->m, g32, PF_TYPE_F32, &e);
    CHECK(t, rc == PF_OK, "save rslora: %s", e.msg);
    pf_gguf *g = NULL;
    double alpha = 0;
    if (pf_gguf_open(g32, &g, &e) == PF_OK) pf_gguf_get_float(g, "adapter.lora.alpha", &alpha, &e);
    CHECK(t, fabs(alpha - 6.0 * sqrt(3.0)) < 1e-5, "rsLoRA GGUF alpha %g, want 6·sqrt(3)", alpha);
    pf_gguf_close(g);
    rc = pf_lora_save_peft(&w, f->m, dir, &e);
    rc = rc ? rc : pf_lora_read(dir, f->m, &back, &e);
    CHECK(t, rc == PF_OK && back.rslora && fabsf(pf_lora_pair_scale(&back, &back.pairs[0]) - 6.0f / sqrtf(3.0f)) < 1e-6f,
          "rsLoRA PEFT: %s", e.msg);
    pf_lora_weights_clear(&back);
    rc = pf_lora_from_weights(&w, f->m, &mem, &e);
    float *r_mem = rc == PF_OK ? logits(t, f, mem, 1.0f) : NULL, *r_gguf = load_logits(t, f, g32), *r_peft = load_logits(t, f, dir);
    CHECK(t, r_mem && r_peft && !memcmp(r_mem, r_peft, (size_t)f->n * N_VOCAB * 4), "rsLoRA PEFT logits != in-memory");
    if (r_mem && r_gguf) /* alpha·sqrt(r)/r vs alpha/sqrt(r): equal up to float rounding of the factor */
        pf_test_compare_logits(t, "rsLoRA GGUF vs in-memory", r_gguf, r_mem, f->n, N_VOCAB, 0.9999999, 1e-5, true);
    /* and it differs from plain alpha / r */
    if (r_mem && l_base) {
        pf_logit_stats s = pf_test_logit_row(r_mem, l_base, N_VOCAB);
        CHECK(t, s.rel > 0, "rsLoRA logits equal the base");
    }
    pf_lora_free(mem);
    free(r_mem), free(r_gguf), free(r_peft), free(l_base);
    pf_lora_weights_clear(&w);
}

/* ---- hostile files ------------------------------------------------------------------------- */

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) fwrite(data, 1, n, f), fclose(f);
}

/* A safetensors file from a header string and a data area of `data_len` zero bytes. */
static void write_st(const char *dir, const char *header, size_t data_len, int64_t len_override) {
    char path[256];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    const size_t hn = strlen(header);
    uint8_t *buf = calloc(8 + hn + data_len + 1, 1);
    const uint64_t n = len_override >= 0 ? (uint64_t)len_override : hn;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(n >> (8 * i));
    memcpy(buf + 8, header, hn);
    write_file(path, buf, 8 + hn + data_len);
    free(buf);
}

static void write_cfg(const char *dir, const char *json) {
    char path[256];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    write_file(path, json, strlen(json));
}

static void test_hostile(pf_test *t, fixture *f) {
    char dir[128];
    tmp_path(dir, sizeof dir, "hostile");
    mkdir(dir, 0755);
    const char *cfg = "{\"peft_type\":\"LORA\",\"r\":4,\"lora_alpha\":8}";
    const char *A = "base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight";
    const char *B = "base_model.model.model.layers.0.self_attn.o_proj.lora_B.weight";
    char ok_hdr[512];
    snprintf(ok_hdr, sizeof ok_hdr,
             "{\"%s\":{\"dtype\":\"F32\",\"shape\":[4,64],\"data_offsets\":[0,1024]},"
             "\"%s\":{\"dtype\":\"F32\",\"shape\":[64,4],\"data_offsets\":[1024,2048]}}", A, B);
    struct { const char *hdr; size_t data; int64_t len; const char *want; int code; } cases[] = {
        {ok_hdr, 2048, -1, NULL, PF_OK},
        {"", 0, -1, "header length 0 does not fit", PF_ERR_FORMAT},
        {ok_hdr, 2048, 1 << 30, "header length", PF_ERR_FORMAT},
        {"[1,2]   ", 0, -1, "header does not start with '{'", PF_ERR_FORMAT},
        {"{\"a\":  ", 0, -1, "not a JSON object", PF_ERR_FORMAT},
        {"{\"x\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, -1, "tensor x: dtype I64", PF_ERR_UNSUPPORTED},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, -1, "tensor x: shape[0]", PF_ERR_FORMAT},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4000]}}", 8, -1, "tensor x: data_offsets [0, 4000] outside", PF_ERR_FORMAT},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, -1, "tensor x: 8 bytes for 3 elements", PF_ERR_FORMAT},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, -1, "overlaps", PF_ERR_FORMAT},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, -1, "tensor x: data_offsets must be", PF_ERR_FORMAT},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, -1, "tensor x: not a lora_A/lora_B weight", PF_ERR_UNSUPPORTED},
        {"{\"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         8, -1, "module model.layers.0.self_attn.q_proj is not a fused Phi-3 linear", PF_ERR_UNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_cfg(dir, cfg);
        write_st(dir, cases[i].hdr, cases[i].data, cases[i].len);
        pf_lora_weights w;
        pf_error e = {0};
        int rc = pf_lora_read(dir, f->m, &w, &e);
        CHECK(t, rc == cases[i].code && (cases[i].code == PF_OK || (strstr(e.msg, cases[i].want) && strstr(e.msg, "adapter_model.safetensors"))),
              "safetensors case %zu: rc %d '%s' (want '%s')", i, rc, e.msg, cases[i].want ? cases[i].want : "ok");
        if (rc == PF_OK) CHECK(t, w.n == 1 && !strcmp(w.pairs[0].base, "blk.0.attn_output.weight"), "ok case pair");
        pf_lora_weights_clear(&w);
    }
    /* pairing and shapes */
    char hdr[512];
    struct { const char *fmt; const char *want; int code; } pairs[] = {
        {"{\"%s\":{\"dtype\":\"F32\",\"shape\":[4,64],\"data_offsets\":[0,1024]}}", "lora_B.weight is missing", PF_ERR_FORMAT},
        {"{\"%2$s\":{\"dtype\":\"F32\",\"shape\":[64,4],\"data_offsets\":[0,1024]}}", "lora_A.weight is missing", PF_ERR_FORMAT},
        {"{\"%s\":{\"dtype\":\"F32\",\"shape\":[4,64],\"data_offsets\":[0,1024]},\"%s\":{\"dtype\":\"F32\",\"shape\":[64,3],"
         "\"data_offsets\":[1024,1792]}}", "are not [r, n_in] and [n_out, r]", PF_ERR_FORMAT},
        {"{\"%s\":{\"dtype\":\"F32\",\"shape\":[4,32],\"data_offsets\":[0,512]},\"%s\":{\"dtype\":\"F32\",\"shape\":[64,4],"
         "\"data_offsets\":[512,1536]}}", "does not fit the base weight", PF_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        snprintf(hdr, sizeof hdr, pairs[i].fmt, A, B);
        write_cfg(dir, cfg);
        write_st(dir, hdr, 2048, -1);
        pf_lora_weights w;
        pf_error e = {0};
        int rc = pf_lora_read(dir, f->m, &w, &e);
        CHECK(t, rc == pairs[i].code && strstr(e.msg, pairs[i].want), "pair case %zu: rc %d '%s'", i, rc, e.msg);
        pf_lora_weights_clear(&w);
    }
    /* adapter_config.json */
    struct { const char *cfg, *want; int code; } cfgs[] = {
        {"{\"r\":4}", "lora_alpha: missing", PF_ERR_FORMAT},
        {"not json", "not a JSON object", PF_ERR_FORMAT},
        {"{\"lora_alpha\":8,\"use_dora\":true}", "use_dora", PF_ERR_UNSUPPORTED},
        {"{\"lora_alpha\":8,\"peft_type\":\"IA3\"}", "peft_type", PF_ERR_UNSUPPORTED},
        {"{\"lora_alpha\":8,\"alpha_pattern\":{\"o_proj\":4}}", "alpha_pattern", PF_ERR_UNSUPPORTED},
        {"{\"lora_alpha\":8,\"bias\":\"all\"}", "bias", PF_ERR_UNSUPPORTED},
        {"{\"lora_alpha\":8,\"use_rslora\":\"yes\"}", "use_rslora: not a boolean", PF_ERR_FORMAT},
    };
    write_st(dir, ok_hdr, 2048, -1);
    for (size_t i = 0; i < sizeof cfgs / sizeof *cfgs; i++) {
        write_cfg(dir, cfgs[i].cfg);
        pf_lora_weights w;
        pf_error e = {0};
        int rc = pf_lora_read(dir, f->m, &w, &e);
        CHECK(t, rc == cfgs[i].code && strstr(e.msg, cfgs[i].want) && strstr(e.msg, "adapter_config.json"), "config case %zu: rc %d '%s'",
              i, rc, e.msg);
        pf_lora_weights_clear(&w);
    }
    /* a directory without files, and pf_lora_load on a bad directory */
    char empty[128];
    tmp_path(empty, sizeof empty, "empty");
    mkdir(empty, 0755);
    pf_lora *a = NULL;
    pf_error e = {0};
    int rc = pf_lora_load(empty, f->m, &a, &e);
    CHECK(t, rc == PF_ERR_IO && !a && strstr(e.msg, "adapter_config.json"), "empty dir: %d %s", rc, e.msg);
    rmdir(empty);
    /* a GGUF adapter made for another architecture */
    {
        pf_gguf *src = NULL;
        pf_gguf_writer *gw = NULL;
        char other[128];
        tmp_path(other, sizeof other, "llama-arch.gguf");
        int r2 = pf_gguf_open(f->lora_path, &src, &e);
        if (r2 == PF_OK) r2 = pf_gguf_writer_create(&gw, &e);
        if (r2 == PF_OK) r2 = pf_gguf_writer_copy_kvs(gw, src, &e);
        if (r2 == PF_OK) r2 = pf_gguf_writer_set_str(gw, "general.architecture", "llama", &e);
        for (int64_t i = 0; r2 == PF_OK && i < pf_gguf_n_tensors(src); i++) {
            const pf_tensor_info *ti = pf_gguf_tensor(src, i);
            r2 = pf_gguf_writer_add_tensor(gw, ti->name, ti->type, ti->n_dims, ti->ne, ti->data, &e);
        }
        if (r2 == PF_OK) r2 = pf_gguf_writer_write(gw, other, NULL, NULL, &e);
        pf_gguf_writer_free(gw);
        pf_gguf_close(src);
        pf_lora_weights w2;
        rc = r2 == PF_OK ? pf_lora_read(other, f->m, &w2, &e) : r2;
        CHECK(t, rc == PF_ERR_ARG && strstr(e.msg, "architecture 'llama'"), "arch mismatch: %d %s", rc, e.msg);
        rc = pf_lora_read(other, NULL, &w2, &e); /* without a base there is nothing to compare */
        CHECK(t, rc == PF_OK && w2.n == 8, "arch not checked without a base: %s", e.msg);
        pf_lora_weights_clear(&w2);
        unlink(other);
    }
    /* saving refuses what it cannot represent */
    pf_lora_weights w = {0};
    rc = pf_lora_save_gguf(&w, f->m, "/nonexistent/x.gguf", PF_TYPE_F32, &e);
    CHECK(t, rc == PF_ERR_ARG, "empty weights saved: %s", e.msg);
    random_weights(f, &w, 5, 0.01f);
    rc = pf_lora_save_gguf(&w, f->m, "/nonexistent/x.gguf", PF_TYPE_Q8_0, &e);
    CHECK(t, rc == PF_ERR_ARG && strstr(e.msg, "F32 or F16"), "Q8_0 save: %s", e.msg);
    snprintf(w.pairs[0].base, sizeof w.pairs[0].base, "blk.9.attn_qkv.weight");
    rc = pf_lora_save_peft(&w, f->m, dir, &e);
    CHECK(t, rc == PF_ERR_UNSUPPORTED && strstr(e.msg, "blk.9.attn_qkv.weight"), "unknown base: %s", e.msg);
    pf_lora_weights_clear(&w);
    char path[256];
    unlink(tmp_path(path, sizeof path, "hostile/adapter_model.safetensors"));
    unlink(tmp_path(path, sizeof path, "hostile/adapter_config.json"));
    rmdir(dir);
    /* names */
    char out[128];
    CHECK(t, pf_lora_peft_module("blk.12.ffn_up.weight", out, sizeof out) && !strcmp(out, "model.layers.12.mlp.gate_up_proj"), "%s", out);
    CHECK(t, pf_lora_gguf_base("lm_head", out, sizeof out) && !strcmp(out, "output.weight"), "%s", out);
    CHECK(t, !pf_lora_gguf_base("model.layers.x.mlp.down_proj", out, sizeof out), "bad layer accepted");
    CHECK(t, !pf_lora_peft_module("token_embd.weight", out, sizeof out), "token_embd mapped");
}

static void cleanup(void) {
    static const char *const files[] = {"golden.gguf", "peft/adapter_model.safetensors", "peft/adapter_config.json",
                                        "rand32.gguf", "rand16.gguf", "randpeft/adapter_model.safetensors",
                                        "randpeft/adapter_config.json"};
    char p[192];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) unlink(tmp_path(p, sizeof p, files[i]));
    rmdir(tmp_path(p, sizeof p, "peft")), rmdir(tmp_path(p, sizeof p, "randpeft")), rmdir(g_tmp);
}

int main(void) {
    pf_test t = {0};
    fixture f = {0};
    snprintf(g_tmp, sizeof g_tmp, "/tmp/pf_test_lora_files_XXXXXX");
    if (!mkdtemp(g_tmp)) return perror("mkdtemp"), 1;
    if (!pf_test_data_path(f.model_path, sizeof f.model_path, "models", "phi3-tiny-f16.gguf") ||
        !pf_test_data_path(f.lora_path, sizeof f.lora_path, "models", "phi3-tiny-lora-r4.gguf") ||
        !(f.n = pf_test_read_ids("chat.ids", f.ids, 128)) ||
        !(f.want = pf_test_read_golden_f32("phi3-tiny-f16.lora-r4-scale1.logits.f32", (size_t)f.n * N_VOCAB))) {
        printf("SKIP: phi3-tiny-f16 / phi3-tiny-lora-r4 / golden logits not found\n");
        rmdir(g_tmp);
        return TEST_REPORT(&t);
    }
    pf_error e = {0};
    int rc = pf_model_load(f.model_path, &f.m, &e);
    CHECK(&t, rc == PF_OK, "load model: %s", e.msg);
    if (rc == PF_OK) {
        test_golden(&t, &f);
        test_round_trips(&t, &f);
        test_hostile(&t, &f);
    }
    pf_model_free(f.m);
    free(f.want);
    cleanup();
    return TEST_REPORT(&t);
}
