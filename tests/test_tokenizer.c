/* SentencePiece-BPE tokenizer: llama.cpp's test vectors for the Phi-3 and Llama-2 vocabularies,
 * Phi-3 chat prompts (special tokens, RSTRIP), decoding rules, streaming UTF-8 safety, hostile
 * input, speed on 1 MB, and a line-by-line comparison with Google's sentencepiece. */
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testing.h"

static pf_tokenizer *load(const char *name) {
    char path[256];
    pf_error err = {0};
    pf_gguf *g = NULL;
    pf_tokenizer *tok = NULL;
    if (!pf_test_data_path(path, sizeof path, "tokenizer", name)) return NULL;
    if (pf_gguf_open(path, &g, &err) == PF_OK) pf_tokenizer_load(g, &tok, &err);
    if (!tok) fprintf(stderr, "load %s: %s\n", name, err.msg);
    pf_gguf_close(g);
    return tok;
}

/* ids of text; *n = count (at most cap, 1 << 16). Returns a static buffer. */
static int32_t *enc(const pf_tokenizer *tok, const char *s, size_t len, bool add_special, bool parse_special,
                    int64_t *n) {
    static int32_t ids[1 << 16];
    *n = pf_tokenize(tok, s, len, add_special, parse_special, ids, 1 << 16, NULL);
    return ids;
}

static bool ids_eq(const int32_t *a, int64_t na, const int32_t *b, int64_t nb) {
    return na == nb && (na == 0 || !memcmp(a, b, (size_t)na * sizeof *a));
}

static bool enc_is(const pf_tokenizer *tok, const char *s, bool add_special, bool parse_special, const int32_t *want,
                   int64_t nw) {
    int64_t n;
    const int32_t *got = enc(tok, s, strlen(s), add_special, parse_special, &n);
    return ids_eq(got, n, want, nw);
}

static void ids_str(const int32_t *v, int64_t n, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (int64_t i = 0; i < n && o + 16 < cap; i++) o += (size_t)snprintf(buf + o, cap - o, " %d", v[i]);
}

static bool valid_utf8(const char *s, int64_t n) {
    for (int64_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        int len = c < 0x80                 ? 1
                  : c >= 0xC2 && c <= 0xDF ? 2
                  : c >= 0xE0 && c <= 0xEF ? 3
                  : c >= 0xF0 && c <= 0xF4 ? 4
                                           : 0;
        if (!len || i + len > n) return false;
        unsigned c1 = len > 1 ? (unsigned char)s[i + 1] : 0x80;
        unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        if (len > 1 && (c1 < lo || c1 > hi)) return false;
        for (int k = 2; k < len; k++)
            if (((unsigned char)s[i + k] & 0xC0) != 0x80) return false;
        i += len;
    }
    return true;
}

/* A data file as a NUL-terminated string (pf_test_read_file does not terminate). */
static char *read_text(const char *name, size_t *len) {
    char path[256];
    size_t n = 0;
    char *raw = pf_test_data_path(path, sizeof path, "tokenizer", name) ? pf_test_read_file(path, &n) : NULL;
    char *s = raw ? realloc(raw, n + 1) : NULL;
    if (!s) {
        free(raw);
        return NULL;
    }
    s[n] = 0;
    if (len) *len = n;
    return s;
}

/* ---- llama.cpp's .inp/.out vectors ---------------------------------------------------------- */

static void test_vocab_vectors(pf_test *t, const char *gguf) {
    char name[128];
    pf_tokenizer *tok = load(gguf);
    CHECK(t, tok != NULL, "cannot load %s", gguf);
    snprintf(name, sizeof name, "%s.inp", gguf);
    char *inp = read_text(name, NULL);
    snprintf(name, sizeof name, "%s.out", gguf);
    char *out = read_text(name, NULL);
    CHECK(t, inp && out, "missing %s.inp/.out", gguf);
    if (!tok || !inp || !out) goto done;
    static const char MARK[] = "\n__ggml_vocab_test__\n";
    int cases = 0, exact = 0, round = 0;
    char *s = inp, *o = out, *m;
    while ((m = strstr(s, MARK)) != NULL) {
        size_t len = (size_t)(m - s);
        int32_t want[4096];
        int64_t nw = 0;
        char *eol = strchr(o, '\n');
        if (!eol) break;
        for (char *p = o; p < eol;) {
            char *e;
            long v = strtol(p, &e, 10);
            if (e == p) break;
            want[nw++] = (int32_t)v;
            p = e;
        }
        int64_t n;
        int32_t *got = enc(tok, s, len, false, false, &n);
        char a[2048], b[2048];
        ids_str(got, n, a, sizeof a);
        ids_str(want, nw, b, sizeof b);
        bool ok = ids_eq(got, n, want, nw);
        CHECK(t, ok, "%s case %d \"%.*s\":\n got %s\nwant %s", gguf, cases, (int)len, s, a, b);
        exact += ok;
        /* Decoding undoes encoding: the prefixed space is stripped from the first piece. */
        char dec[8192];
        int64_t dn = pf_detokenize(tok, got, n, false, dec, sizeof dec, NULL);
        bool rt = dn == (int64_t)len && !memcmp(dec, s, len);
        CHECK(t, rt, "%s case %d round trip: \"%.*s\" -> \"%.*s\"", gguf, cases, (int)len, s, (int)(dn > 0 ? dn : 0),
              dec);
        round += rt;
        cases++;
        s = m + sizeof MARK - 1;
        o = eol + 1;
    }
    CHECK(t, cases >= 40 && *s == 0, "%s: parsed %d cases", gguf, cases);
    printf("%s: %d/%d exact, %d/%d round trips\n", gguf, exact, cases, round, cases);
done:
    free(inp);
    free(out);
    pf_tokenizer_free(tok);
}

/* ---- Phi-3 special tokens --------------------------------------------------------------- */

typedef struct enc_case {
    const char *text;
    bool add_special, parse_special;
    int32_t want[32];
    int n;
} enc_case;

static void check_cases(pf_test *t, const pf_tokenizer *tok, const enc_case *c, size_t nc, const char *what) {
    for (size_t i = 0; i < nc; i++) {
        int64_t n;
        int32_t *got = enc(tok, c[i].text, strlen(c[i].text), c[i].add_special, c[i].parse_special, &n);
        char a[1024], b[1024];
        ids_str(got, n, a, sizeof a);
        ids_str(c[i].want, c[i].n, b, sizeof b);
        CHECK(t, ids_eq(got, n, c[i].want, c[i].n), "%s \"%s\" (special %d, parse %d):\n got %s\nwant %s", what,
              c[i].text, c[i].add_special, c[i].parse_special, a, b);
    }
}

static void test_phi3_chat(pf_test *t) {
    pf_tokenizer *tok = load("ggml-vocab-phi-3.gguf");
    CHECK(t, tok != NULL, "phi-3 vocab");
    if (!tok) return;
    static const enc_case cases[] = {
        {"<|user|>\nHello<|end|>\n<|assistant|>\n", true, true, {1, 32010, 15043, 32007, 32001}, 5},
        {"<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHow to explain Internet for a medieval "
         "knight?<|end|>\n<|assistant|>\n",
         true, true,
         {1, 32006, 887, 526, 263, 8444, 20255, 29889, 32007, 32010, 1128, 304, 5649, 4685, 363, 263, 27690, 889, 523,
          29973, 32007, 32001},
         22},
        {"<|endoftext|> x", true, true, {1, 32000, 29871, 921}, 4}, /* no RSTRIP on <|endoftext|> */
        /* </s> is promoted to a control token (llama.cpp's end-of-generation names): only matched
         * with special parsing, and then RSTRIP drops the space after it. */
        {"</s> x", true, false, {1, 1533, 29879, 29958, 921}, 5},
        {"</s> x", true, true, {1, 2, 921}, 3},
        {"<s>", false, true, {1}, 1},
        {"<unk> x", false, true, {0, 29871, 921}, 3}, /* <unk>, <s> keep the space after them */
        {"<|user|>", false, false, {529, 29989, 1792, 29989, 29958}, 5},
        {"", true, true, {1}, 1},
        {"", false, true, {0}, 0},
        {"<|end|><|end|>", false, true, {32007, 32007}, 2},
        {"a<|end|> \t\n b", false, true, {263, 32007, 289}, 3}, /* all whitespace after, then "▁b" */
        {"[PAD32011]", false, true, {32011}, 1},
    };
    check_cases(t, tok, cases, sizeof cases / sizeof *cases, "phi-3");

    CHECK(t, pf_tokenizer_n_vocab(tok) == 32064, "n_vocab %d", pf_tokenizer_n_vocab(tok));
    CHECK(t, pf_token_bos(tok) == 1 && pf_token_eos(tok) == 32000 && pf_token_eot(tok) == 32007, "bos/eos/eot %d %d %d",
          pf_token_bos(tok), pf_token_eos(tok), pf_token_eot(tok));
    CHECK(t, pf_tokenizer_add_bos(tok), "add_bos");
    int n_eog = 0;
    for (int32_t i = -5; i < 32100; i++) n_eog += pf_token_is_eog(tok, i);
    CHECK(t, n_eog == 4 && pf_token_is_eog(tok, 32007) && pf_token_is_eog(tok, 32000) && pf_token_is_eog(tok, 32001) &&
                 pf_token_is_eog(tok, 2),
          "phi-3 stop set should be {32007, 32000, 32001, 2}, %d ids", n_eog);
    CHECK(t, pf_token_lookup(tok, "<|user|>", 8) == 32010 && pf_token_lookup(tok, "nope-nope", 9) == -1, "lookup");
    size_t l = 0;
    const char *txt = pf_token_text(tok, 15043, &l);
    CHECK(t, txt && l == 8 && !strcmp(txt, "\xE2\x96\x81Hello") && !pf_token_text(tok, 32064, NULL), "token text");
    pf_tokenizer_free(tok);
}

/* Copies a vocab GGUF with some keys replaced, and loads the copy. */
static pf_tokenizer *load_variant(const char *name, const char *arch, const char *gname, const char *model,
                                  int *rc_out, pf_error *err) {
    char path[256], out[256];
    pf_gguf *g = NULL;
    pf_gguf_writer *w = NULL;
    pf_tokenizer *tok = NULL;
    snprintf(out, sizeof out, "build/tests/tok-variant-%d.gguf", (int)getpid());
    int rc = pf_test_data_path(path, sizeof path, "tokenizer", name) ? PF_OK : PF_ERR_NOT_FOUND;
    if (!rc) rc = pf_gguf_open(path, &g, err);
    if (!rc) rc = pf_gguf_writer_create(&w, err);
    if (!rc) rc = pf_gguf_writer_copy_kvs(w, g, err);
    if (!rc && arch) rc = pf_gguf_writer_set_str(w, "general.architecture", arch, err);
    if (!rc && gname) rc = pf_gguf_writer_set_str(w, "general.name", gname, err);
    if (!rc && model) rc = pf_gguf_writer_set_str(w, "tokenizer.ggml.model", model, err);
    if (!rc && model && !strcmp(model, "-")) pf_gguf_writer_remove(w, "tokenizer.ggml.model");
    if (!rc) rc = pf_gguf_writer_write(w, out, NULL, NULL, err);
    pf_gguf_writer_free(w);
    pf_gguf_close(g);
    g = NULL;
    if (!rc) rc = pf_gguf_open(out, &g, err);
    if (!rc) rc = pf_tokenizer_load(g, &tok, err);
    pf_gguf_close(g);
    remove(out);
    *rc_out = rc;
    return tok;
}

/* RSTRIP follows Hugging Face for every phi3-architecture file, whatever its general.name;
 * files of other architectures get it only from a name containing "phi3" / "phi-3" (llama.cpp). */
static void test_rstrip_gating(pf_test *t) {
    static const char chat[] = "<|user|>\nHello<|end|>\n<|assistant|>\n";
    static const int32_t strip[] = {1, 32010, 15043, 32007, 32001};
    static const int32_t keep[] = {1, 32010, 29871, 13, 10994, 32007, 29871, 13, 32001, 29871, 13}; /* spec 5.6 */
    int rc;
    pf_error err = {0};
    pf_tokenizer *tok = load_variant("ggml-vocab-phi-3.gguf", NULL, "Phi 3.5 Mini Instruct", NULL, &rc, &err);
    CHECK(t, tok != NULL, "variant: %s", err.msg);
    if (tok) CHECK(t, enc_is(tok, chat, true, true, strip, 5), "phi3 arch must strip");
    pf_tokenizer_free(tok);
    tok = load_variant("ggml-vocab-phi-3.gguf", "llama", "Phi 3.5 Mini Instruct", NULL, &rc, &err);
    if (tok) CHECK(t, enc_is(tok, chat, true, true, keep, 11), "non-phi3 name keeps \\n");
    pf_tokenizer_free(tok);
    tok = load_variant("ggml-vocab-phi-3.gguf", "llama", "my-phi-3-finetune", NULL, &rc, &err);
    if (tok) CHECK(t, enc_is(tok, chat, true, true, strip, 5), "phi-3 name must strip");
    pf_tokenizer_free(tok);

    tok = load_variant("ggml-vocab-phi-3.gguf", NULL, NULL, "gpt2", &rc, &err); /* "bert" is WordPiece now */
    CHECK(t, !tok && rc == PF_ERR_UNSUPPORTED && strstr(err.msg, "gpt2"), "gpt2: rc %d '%s'", rc, err.msg);
    tok = load_variant("ggml-vocab-phi-3.gguf", NULL, NULL, "-", &rc, &err);
    CHECK(t, !tok && rc == PF_ERR_NOT_FOUND, "no tokenizer: rc %d '%s'", rc, err.msg);
}

/* A hand-made vocabulary: no token types (all NORMAL), no byte tokens (unknown characters fall
 * back to <unk>), an empty entry and a duplicated text (the later id wins, as in llama.cpp). */
static pf_tokenizer *tiny_vocab(int n_scores, int *rc, pf_error *err) {
    static const char *const toks[] = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "ab", "", "ab"};
    static const float scores[] = {0, 0, 0, -5, -5, -5, -1, -2, 0, -0.5f};
    char out[256];
    snprintf(out, sizeof out, "build/tests/tok-tiny-%d.gguf", (int)getpid());
    pf_gguf_writer *w = NULL;
    pf_gguf *g = NULL;
    pf_tokenizer *tok = NULL;
    *rc = pf_gguf_writer_create(&w, err);
    if (!*rc) *rc = pf_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", err);
    if (!*rc) *rc = pf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 10, err);
    if (!*rc) *rc = pf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", PF_GGUF_FLOAT32, scores, (uint64_t)n_scores, err);
    if (!*rc) *rc = pf_gguf_writer_write(w, out, NULL, NULL, err);
    pf_gguf_writer_free(w);
    if (!*rc) *rc = pf_gguf_open(out, &g, err);
    if (!*rc) *rc = pf_tokenizer_load(g, &tok, err);
    pf_gguf_close(g);
    remove(out);
    return tok;
}

static void test_tiny_vocab(pf_test *t) {
    int rc;
    pf_error err = {0};
    pf_tokenizer *tok = tiny_vocab(10, &rc, &err);
    CHECK(t, tok != NULL, "tiny vocab: %s", err.msg);
    if (tok) {
        /* "▁ab▁c": "ab" (id 9, -0.5) beats "▁a" (-1); "c" is unknown and there are no byte tokens. */
        static const int32_t want[] = {3, 9, 3, 0};
        CHECK(t, enc_is(tok, "ab c", false, true, want, 4), "tiny vocab merge order / unk fallback");
        static const int32_t bos_a[] = {1, 6};
        CHECK(t, enc_is(tok, "a", true, true, bos_a, 2), "defaults: add_bos, bos 1");
        CHECK(t, pf_token_eos(tok) == 2 && pf_token_eot(tok) == -1 && pf_token_is_eog(tok, 2), "default eos");
    }
    pf_tokenizer_free(tok);
    tok = tiny_vocab(9, &rc, &err);
    CHECK(t, !tok && rc == PF_ERR_FORMAT && strstr(err.msg, "scores"), "short scores: rc %d '%s'", rc, err.msg);
}

/* ---- decoding ------------------------------------------------------------------------------ */

static void test_decode(pf_test *t) {
    pf_tokenizer *tok = load("ggml-vocab-phi-3.gguf");
    if (!tok) return;
    char buf[256];
    int64_t n;
    static const int32_t hw[] = {15043, 3186}, bos_hello[] = {1, 15043}, chat[] = {1, 32010, 15043, 32007};
    n = pf_detokenize(tok, hw, 2, false, buf, sizeof buf, NULL);
    CHECK(t, n == 11 && !memcmp(buf, "Hello world", 11), "[15043 3186] -> '%.*s'", (int)n, buf);
    n = pf_detokenize(tok, bos_hello, 2, false, buf, sizeof buf, NULL);
    CHECK(t, n == 6 && !memcmp(buf, " Hello", 6), "[1 15043] -> '%.*s'", (int)n, buf);
    n = pf_detokenize(tok, chat, 4, true, buf, sizeof buf, NULL);
    CHECK(t, n == 24 && !memcmp(buf, "<s><|user|> Hello<|end|>", 24), "render special -> '%.*s'", (int)n, buf);
    n = pf_detokenize(tok, chat, 4, false, buf, 3, NULL);
    CHECK(t, n == 6, "too small buffer reports the size: %lld", (long long)n);
    n = pf_token_to_piece(tok, 15043, false, buf, sizeof buf);
    CHECK(t, n == 6 && !memcmp(buf, " Hello", 6), "piece never strips");
    CHECK(t, pf_token_to_piece(tok, 1, false, buf, sizeof buf) == 0, "BOS hidden");
    CHECK(t, pf_token_to_piece(tok, 32007, true, buf, sizeof buf) == 7 && !memcmp(buf, "<|end|>", 7), "render <|end|>");
    CHECK(t, pf_token_to_piece(tok, 13, false, buf, sizeof buf) == 1 && buf[0] == '\n', "<0x0A> -> newline");
    CHECK(t, pf_token_to_piece(tok, 3 + 0xF0, false, buf, sizeof buf) == 1 && (unsigned char)buf[0] == 0xF0, "byte");
    CHECK(t, pf_token_to_piece(tok, 32064, false, buf, sizeof buf) < 0 && pf_token_to_piece(tok, -1, 0, buf, 9) < 0,
          "invalid id");
    static const int32_t bad[] = {15043, 99999};
    pf_error err = {0};
    CHECK(t, pf_detokenize(tok, bad, 2, false, buf, sizeof buf, &err) == PF_ERR_ARG && err.msg[0], "bad id");
    pf_tokenizer_free(tok);
}

/* Streams `ids` through a detokenizer; returns the concatenated output (static). */
static char *stream_all(pf_test *t, const pf_tokenizer *tok, const int32_t *ids, int n, bool strip, int64_t *len) {
    static char out[1 << 16];
    char buf[256];
    int64_t o = 0;
    pf_detok_stream s;
    pf_detok_stream_init(&s, tok, false, strip);
    int bad = -1; /* every push must return complete UTF-8 within the advertised bound */
    for (int i = 0; i < n; i++) {
        int64_t k = pf_detok_stream_push(&s, ids[i], buf, sizeof buf);
        if (k < 0 || k > pf_detok_stream_max(tok) || !valid_utf8(buf, k)) bad = bad < 0 ? i : bad;
        if (k > 0) memcpy(out + o, buf, (size_t)k), o += k;
    }
    int64_t k = pf_detok_stream_flush(&s, buf, sizeof buf);
    CHECK(t, bad < 0 && k >= 0 && k <= 3, "stream push %d (id %d) returned bad output", bad, bad < 0 ? 0 : ids[bad]);
    if (k > 0) memcpy(out + o, buf, (size_t)k), o += k;
    *len = o;
    return out;
}

static void test_stream(pf_test *t) {
    pf_tokenizer *tok = load("ggml-vocab-phi-3.gguf");
    if (!tok) return;
    /* " this is 🦙.cpp": the llama is four byte tokens F0 9F A6 99. */
    static const int32_t ids[] = {29871, 445, 338, 29871, 243, 162, 169, 156, 29889, 8223};
    pf_detok_stream s;
    char buf[64];
    pf_detok_stream_init(&s, tok, false, false);
    int64_t sizes[10];
    for (int i = 0; i < 10; i++) sizes[i] = pf_detok_stream_push(&s, ids[i], buf, sizeof buf);
    CHECK(t, sizes[4] == 0 && sizes[5] == 0 && sizes[6] == 0 && sizes[7] == 4, "emoji held until complete: %lld %lld "
          "%lld %lld", (long long)sizes[4], (long long)sizes[5], (long long)sizes[6], (long long)sizes[7]);
    int64_t n;
    char *out = stream_all(t, tok, ids, 10, true, &n);
    char whole[256];
    int64_t wn = pf_detokenize(tok, ids, 10, false, whole, sizeof whole, NULL);
    CHECK(t, n == wn && !memcmp(out, whole, (size_t)n) && n == 17 && !memcmp(out, " this is \xF0\x9F\xA6\x99.cpp", 17),
          "stream == detokenize: '%.*s'", (int)n, out);

    /* A broken sequence: F0 9F then '.' -> U+FFFD '.', and a dangling lead at the end -> U+FFFD. */
    static const int32_t broken[] = {243, 162, 29889, 3 + 0xE2};
    out = stream_all(t, tok, broken, 4, false, &n);
    CHECK(t, n == 7 && !memcmp(out, "\xEF\xBF\xBD.\xEF\xBF\xBD", 7), "broken -> '%.*s'", (int)n, out);
    /* A too-small buffer consumes nothing. */
    pf_detok_stream_init(&s, tok, false, false);
    CHECK(t, pf_detok_stream_push(&s, 15043, buf, 3) == 6 && pf_detok_stream_push(&s, 15043, buf, 6) == 6 &&
                 !memcmp(buf, " Hello", 6),
          "retry after a small buffer");
    CHECK(t, pf_detok_stream_push(&s, 40000, buf, sizeof buf) == PF_ERR_ARG, "invalid id");

    /* Random byte and text tokens: the output is always valid UTF-8 and, when the bytes were,
     * identical to detokenize. */
    pf_test_rng r = {0x9E3779B97F4A7C15ull};
    int ok = 0, same = 0, runs = 300;
    for (int it = 0; it < runs; it++) {
        int32_t v[64];
        int m = 1 + (int)(pf_test_next(&r) % 64);
        for (int i = 0; i < m; i++) {
            uint64_t x = pf_test_next(&r);
            v[i] = x % 3 ? 3 + (int32_t)((x >> 8) % 256) : (int32_t)((x >> 8) % 32064);
        }
        out = stream_all(t, tok, v, m, true, &n);
        ok += valid_utf8(out, n);
        char ref[1 << 14];
        int64_t rn = pf_detokenize(tok, v, m, false, ref, sizeof ref, NULL);
        if (valid_utf8(ref, rn)) same += rn == n && !memcmp(ref, out, (size_t)n);
        else same++;
    }
    CHECK(t, ok == runs && same == runs, "random streams: %d valid, %d equal of %d", ok, same, runs);
    pf_tokenizer_free(tok);
}

/* ---- odd input ------------------------------------------------------------------------- */

static void test_hostile(pf_test *t) {
    pf_tokenizer *tok = load("ggml-vocab-llama-spm.gguf");
    if (!tok) return;
    int64_t n;
    /* Invalid bytes are single characters that fall back to byte tokens <0xXX> (id 3 + byte). */
    static const char bad[] = "\xff\xfe\x80 a\xe2\x96 \xc0\xaf\xed\xa0\x80";
    int32_t *ids = enc(tok, bad, sizeof bad - 1, false, false, &n);
    CHECK(t, n >= 3 && ids[0] == 29871 && ids[1] == 3 + 0xFF && ids[2] == 3 + 0xFE, "invalid bytes -> byte tokens");
    char dec[1024];
    int64_t dn = pf_detokenize(tok, ids, n, false, dec, sizeof dec, NULL);
    CHECK(t, dn == (int64_t)sizeof bad - 1 && !memcmp(dec, bad, sizeof bad - 1), "invalid bytes round trip");
    /* Random byte strings (NULs included) always round-trip. */
    pf_test_rng r = {12345};
    int rt = 0;
    for (int it = 0; it < 200; it++) {
        char s[300];
        int len = (int)(pf_test_next(&r) % 300);
        for (int i = 0; i < len; i++) s[i] = (char)(pf_test_next(&r) % 7 ? pf_test_next(&r) : ' ');
        ids = enc(tok, s, (size_t)len, false, false, &n);
        dn = pf_detokenize(tok, ids, n, false, dec, sizeof dec, NULL);
        rt += dn == len && !memcmp(dec, s, (size_t)len);
    }
    CHECK(t, rt == 200, "random bytes round trip %d/200", rt);
    /* Sizing: cap 0 returns the count; a short buffer gets the first ids. */
    int32_t two[2];
    CHECK(t, pf_tokenize(tok, "Hello world", 11, true, false, NULL, 0, NULL) == 3, "cap 0 sizes");
    CHECK(t, pf_tokenize(tok, "Hello world", 11, true, false, two, 2, NULL) == 3 && two[0] == 1 && two[1] == 15043,
          "short buffer");
    pf_error err = {0};
    CHECK(t, pf_tokenize(tok, NULL, 3, false, false, two, 2, &err) == PF_ERR_ARG && err.msg[0], "NULL text");
    CHECK(t, pf_tokenize(tok, "x", 1, false, false, NULL, 5, &err) == PF_ERR_ARG, "NULL ids with cap");
    pf_tokenizer_free(tok);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* 1 MB in one fragment must be fast (the heap makes it O(n log n)); a quadratic merge would take
 * minutes. Also pathological runs of one character. */
static void test_long(pf_test *t) {
    pf_tokenizer *tok = load("ggml-vocab-phi-3.gguf");
    if (!tok) return;
    size_t len = 1 << 20;
    char *s = malloc(len);
    int32_t *ids = malloc(len * 2 * sizeof *ids);
    static const char *words[] = {"the ", "tokenizer ", "über ", "日本語 ", "🦙 ",
                                  "\n",   "  ",         "12345 ", "x",       "--"};
    pf_test_rng r = {777};
    for (size_t o = 0; o < len;) {
        const char *w = words[pf_test_next(&r) % 10];
        size_t l = strlen(w);
        if (o + l > len) l = len - o;
        memcpy(s + o, w, l);
        o += l;
    }
    double t0 = now();
    int64_t n = pf_tokenize(tok, s, len, true, true, ids, (int64_t)len * 2, NULL);
    double dt = now() - t0;
    CHECK(t, n > 100000 && dt < 10.0, "1 MB: %lld ids in %.2f s", (long long)n, dt);
    printf("1 MB mixed text: %lld ids in %.3f s (%.1f MB/s)\n", (long long)n, dt, (double)len / dt / 1e6);
    char *dec = malloc(len + 16);
    int64_t dn = pf_detokenize(tok, ids + 1, n - 1, false, dec, (int64_t)len + 16, NULL);
    CHECK(t, dn == (int64_t)len && !memcmp(dec, s, len), "1 MB round trip");
    static const char runs[] = {' ', 'a', '\n', '3'};
    for (int k = 0; k < 4; k++) {
        memset(s, runs[k], 300000);
        t0 = now();
        n = pf_tokenize(tok, s, 300000, false, false, ids, (int64_t)len * 2, NULL);
        dt = now() - t0;
        CHECK(t, n > 0 && dt < 5.0, "run of 300000 x '%c': %lld ids, %.2f s", runs[k], (long long)n, dt);
    }
    free(dec);
    free(ids);
    free(s);
    pf_tokenizer_free(tok);
}

/* ---- command line ------------------------------------------------------------------------ */

static void test_cli(pf_test *t) {
    static const struct { const char *args, *want; int rc; } cases[] = {
        {"'<|user|>\nHello<|end|>\n<|assistant|>\n'", "1 32010 15043 32007 32001\n", 0},
        {"--no-special '</s> x'", "1 1533 29879 29958 921\n", 0},
        {"'</s> x'", "1 2 921\n", 0},
        {"--no-bos 'Hello world'", "15043 3186\n", 0},
        {"--no-bos --no-special '<|end|>'", "529 29989 355 29989 29958\n", 0},
        {"''", "1\n", 0},
        {"", "phiforge tokenize: expected exactly one TEXT argument", 1},
        {"a b", "phiforge tokenize: expected exactly one TEXT argument", 1},
    };
    char cmd[512], out[4096];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        /* newlines inside single quotes reach the program as they are */
        snprintf(cmd, sizeof cmd, "./build/phiforge tokenize -m tests/data/ggml-vocab-phi-3.gguf %s 2>&1",
                 cases[i].args);
        int rc = pf_test_run(cmd, out, sizeof out);
        CHECK(t, rc == cases[i].rc && !strncmp(out, cases[i].want, strlen(cases[i].want)), "%s -> rc %d '%s'", cmd, rc,
              out);
    }
    int rc = pf_test_run("./build/phiforge tokenize -m tests/data/does-not-exist.gguf x 2>&1", out, sizeof out);
    CHECK(t, rc == 1 && strstr(out, "phiforge tokenize:") && strstr(out, "does-not-exist"), "missing model: '%s'", out);
    rc = pf_test_run("./build/phiforge tokenize -m tests/data/phi3-tiny-f16.gguf -h", out, sizeof out);
    CHECK(t, rc == 0 && strstr(out, "usage: phiforge tokenize"), "-h: rc %d", rc);
    rc = pf_test_run("printf 'Hello world\\n\\n this\\n' | ./build/phiforge tokenize -m tests/data/ggml-vocab-llama-spm.gguf "
             "--no-bos --lines -f -",
             out, sizeof out);
    CHECK(t, rc == 0 && !strcmp(out, "15043 3186\n\n29871 445\n"), "--lines: rc %d '%s'", rc, out);
}

/* ---- against sentencepiece ----------------------------------------------------------------- */

static void test_vs_sentencepiece(pf_test *t) {
    if (system("/usr/bin/python3 -c 'import sentencepiece' >/dev/null 2>&1") != 0) {
        bool required = getenv("PF_REQUIRE_SENTENCEPIECE") != NULL;
        printf("SKIP sentencepiece comparison: /usr/bin/python3 lacks sentencepiece (apt-get install "
               "python3-sentencepiece)\n");
        CHECK(t, !required, "PF_REQUIRE_SENTENCEPIECE is set but sentencepiece is missing");
        return;
    }
    pf_tokenizer *tok = load("ggml-vocab-llama-spm.gguf");
    size_t clen = 0;
    char *corpus = read_text("tokenizer_corpus.txt", &clen);
    FILE *p = popen("/usr/bin/python3 tests/tokenizer_vs_sentencepiece.py dump tests/data/llama2-tokenizer.model "
                    "tests/data/tokenizer_corpus.txt",
                    "r");
    CHECK(t, tok && corpus && p, "setup");
    if (!tok || !corpus || !p) goto done;
    static char line[1 << 16];
    int lines = 0, same = 0;
    for (size_t a = 0; a < clen && fgets(line, sizeof line, p); lines++) {
        const char *nl = memchr(corpus + a, '\n', clen - a);
        size_t b = nl ? (size_t)(nl - corpus) : clen;
        int32_t want[8192];
        int64_t nw = 0, n;
        for (char *q = line, *e;; q = e) {
            long v = strtol(q, &e, 10);
            if (e == q || nw == 8192) break;
            want[nw++] = (int32_t)v;
        }
        int32_t *got = enc(tok, corpus + a, b - a, false, false, &n);
        bool ok = ids_eq(got, n, want, nw);
        same += ok;
        if (!ok) {
            char x[1024], y[1024];
            ids_str(got, n, x, sizeof x);
            ids_str(want, nw, y, sizeof y);
            CHECK(t, ok, "corpus line %d \"%.*s\":\n got %s\nwant %s", lines + 1, (int)(b - a), corpus + a, x, y);
        }
        a = b + 1;
    }
    int st = pclose(p);
    p = NULL;
    CHECK(t, st == 0 && lines >= 3000 && same == lines, "sentencepiece: %d/%d lines identical (exit %d)", same, lines,
          st);
    printf("sentencepiece comparison: %d/%d corpus lines identical\n", same, lines);
done:
    if (p) pclose(p);
    free(corpus);
    pf_tokenizer_free(tok);
}

int main(void) {
    pf_test t = {0};
    test_vocab_vectors(&t, "ggml-vocab-phi-3.gguf");
    test_vocab_vectors(&t, "ggml-vocab-llama-spm.gguf");
    test_phi3_chat(&t);
    test_rstrip_gating(&t);
    test_tiny_vocab(&t);
    test_decode(&t);
    test_stream(&t);
    test_hostile(&t);
    test_long(&t);
    test_cli(&t);
    test_vs_sentencepiece(&t);
    return TEST_REPORT(&t);
}
