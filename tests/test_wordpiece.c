/* WordPiece (BERT) tokenizer: llama.cpp's test vectors for the bge vocabulary, [CLS]/[SEP],
 * truncation keeping [SEP], decoding, normalizer flags, hostile input and speed. */
#include <stdint.h>
#include <time.h>

#include "testing.h"

#define VOCAB "ggml-vocab-bert-bge.gguf"

static pf_tokenizer *load_tok(const char *name) {
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

static char *read_text(const char *name) {
    char path[256];
    size_t n = 0;
    char *raw = pf_test_data_path(path, sizeof path, "tokenizer", name) ? pf_test_read_file(path, &n) : NULL;
    char *s = raw ? realloc(raw, n + 1) : NULL;
    if (!s) {
        free(raw);
        return NULL;
    }
    s[n] = 0;
    return s;
}

static int64_t enc(const pf_tokenizer *tok, const char *s, bool add_special, int32_t *ids, int64_t cap) {
    return pf_tokenize(tok, s, strlen(s), add_special, false, ids, cap, NULL);
}

static bool enc_is(const pf_tokenizer *tok, const char *s, bool add_special, const int32_t *want, int64_t nw) {
    int32_t ids[256];
    int64_t n = enc(tok, s, add_special, ids, 256);
    return n == nw && (n == 0 || !memcmp(ids, want, (size_t)n * sizeof *ids));
}

static void ids_str(const int32_t *v, int64_t n, char *buf, size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (int64_t i = 0; i < n && o + 16 < cap; i++) o += (size_t)snprintf(buf + o, cap - o, " %d", v[i]);
}

/* ---- llama.cpp's .inp/.out vectors (add_special = false) --------------------------------- */

static void test_vectors(pf_test *t, const pf_tokenizer *tok) {
    char *inp = read_text(VOCAB ".inp"), *out = read_text(VOCAB ".out");
    CHECK(t, inp && out, "missing %s.inp/.out", VOCAB);
    static const char MARK[] = "\n__ggml_vocab_test__\n";
    int cases = 0, exact = 0;
    char *s = inp, *o = out, *m;
    while (inp && out && (m = strstr(s, MARK)) != NULL) {
        size_t len = (size_t)(m - s);
        int32_t want[1024], got[1024];
        int64_t nw = 0;
        char *eol = strchr(o, '\n');
        if (!eol) break;
        for (char *p = o; p < eol && nw < 1024;) {
            char *e;
            long v = strtol(p, &e, 10);
            if (e == p) break;
            want[nw++] = (int32_t)v;
            p = e;
        }
        int64_t n = pf_tokenize(tok, s, len, false, false, got, 1024, NULL);
        bool ok = n == nw && (n == 0 || !memcmp(got, want, (size_t)n * sizeof *got));
        char a[4096], b[4096];
        ids_str(got, n, a, sizeof a);
        ids_str(want, nw, b, sizeof b);
        CHECK(t, ok, "case %d \"%.*s\":\n got%s\nwant%s", cases, (int)len, s, a, b);
        exact += ok;
        cases++;
        s = m + sizeof MARK - 1;
        o = eol + 1;
    }
    CHECK(t, cases >= 40 && s && *s == 0, "parsed %d cases", cases);
    printf("%s: %d/%d exact\n", VOCAB, exact, cases);
    free(inp);
    free(out);
}

/* ---- specials, truncation, decoding ------------------------------------------------------ */

static void test_specials(pf_test *t, const pf_tokenizer *tok) {
    CHECK(t, !strcmp(pf_tokenizer_model(tok), "bert"), "model %s", pf_tokenizer_model(tok));
    CHECK(t, pf_token_bos(tok) == 101 && pf_token_eos(tok) == 102, "cls %d sep %d", pf_token_bos(tok), pf_token_eos(tok));
    CHECK(t, pf_token_is_control(tok, 101) && pf_token_is_control(tok, 100) && !pf_token_is_control(tok, 7592),
          "control flags");
    CHECK(t, pf_token_is_eog(tok, 102) && !pf_token_is_eog(tok, 2), "eog: [SEP] only");
    CHECK(t, enc_is(tok, "Hello world", true, (const int32_t[]){101, 7592, 2088, 102}, 4), "[CLS] hello world [SEP]");
    CHECK(t, enc_is(tok, "", true, (const int32_t[]){101, 102}, 2), "empty -> [CLS][SEP]");
    CHECK(t, enc_is(tok, " \t\n ", true, (const int32_t[]){101, 102}, 2), "blank -> [CLS][SEP]");
    CHECK(t, enc_is(tok, "", false, NULL, 0), "empty, no specials");
    /* Special texts are matched only with parse_special. */
    int32_t ids[64];
    int64_t n = pf_tokenize(tok, "a [SEP] b", 9, false, true, ids, 64, NULL);
    CHECK(t, n == 3 && ids[1] == 102, "parse_special [SEP]: n %lld", (long long)n);
    CHECK(t, enc_is(tok, "a [SEP] b", false, (const int32_t[]){1037, 1031, 19802, 1033, 1038}, 5),
          "[SEP] as text");
    /* Accents and case: "Café RÉSUMÉ" == "cafe resume". */
    int32_t a[32], b[32];
    int64_t na = enc(tok, "Café RÉSUMÉ naïve", false, a, 32), nb = enc(tok, "cafe resume naive", false, b, 32);
    CHECK(t, na == nb && na > 0 && !memcmp(a, b, (size_t)na * 4), "accents stripped, lower-cased");
    /* CJK ideographs are one word each; other punctuation splits. */
    na = enc(tok, "中文", false, a, 32);
    nb = enc(tok, "中 文", false, b, 32);
    CHECK(t, na == 2 && nb == 2 && !memcmp(a, b, 8), "CJK split: %lld", (long long)na);
    CHECK(t, enc(tok, "a-b", false, a, 32) == 3 && a[1] == 1011, "hyphen splits");
}

static void test_truncate(pf_test *t, const pf_tokenizer *tok) {
    int32_t ids[16];
    bool cut = false;
    const char *text = "one two three four five six seven eight nine ten";
    int64_t n = pf_tokenize_truncate(tok, text, strlen(text), true, 6, ids, &cut, NULL);
    int32_t full[32];
    int64_t nf = enc(tok, text, true, full, 32);
    CHECK(t, nf == 12, "full length %lld", (long long)nf);
    CHECK(t, n == 6 && cut && ids[0] == 101 && ids[5] == 102 && !memcmp(ids, full, 5 * 4),
          "truncated to 6 keeping [SEP]: n %lld cut %d last %d", (long long)n, cut, ids[n > 0 ? n - 1 : 0]);
    n = pf_tokenize_truncate(tok, text, strlen(text), true, 12, ids, &cut, NULL);
    CHECK(t, n == 12 && !cut && !memcmp(ids, full, 12 * 4), "exact fit is not cut");
    n = pf_tokenize_truncate(tok, text, strlen(text), false, 3, ids, &cut, NULL);
    CHECK(t, n == 3 && cut && ids[0] == full[1] && ids[2] == full[3], "no specials: first 3 ids");
    pf_error err = {0};
    CHECK(t, pf_tokenize_truncate(tok, text, strlen(text), true, 1, ids, &cut, &err) == PF_ERR_ARG,
          "max 1 cannot hold [SEP]");
}

static bool dec_is(const pf_tokenizer *tok, const char *text, bool add_special, const char *want) {
    int32_t ids[256];
    char buf[1024];
    int64_t n = enc(tok, text, add_special, ids, 256);
    int64_t m = pf_detokenize(tok, ids, n, false, buf, sizeof buf - 1, NULL);
    if (m < 0) return false;
    buf[m] = 0;
    if (strcmp(buf, want)) fprintf(stderr, "decode \"%s\" -> \"%s\"\n", text, buf);
    return !strcmp(buf, want);
}

static void test_decode(pf_test *t, const pf_tokenizer *tok) {
    CHECK(t, dec_is(tok, "Hello World", false, "hello world"), "join with spaces");
    CHECK(t, dec_is(tok, "Äpfel and w048", false, "apfel and w048"), "## pieces glued");
    CHECK(t, dec_is(tok, "Hello, world!", false, "hello , world !"), "punctuation is a word");
    CHECK(t, dec_is(tok, "Hello", true, " hello"), "hidden [CLS]: the word keeps its space (as after a BOS)");
    char piece[32];
    CHECK(t, pf_token_to_piece(tok, 7592, false, piece, 32) == 6 && !memcmp(piece, " hello", 6), "piece ' hello'");
    CHECK(t, pf_token_to_piece(tok, 2140, false, piece, 32) == 1 && piece[0] == 'l', "piece of ##l is 'l'");
    CHECK(t, pf_token_to_piece(tok, 101, false, piece, 32) == 0, "[CLS] hidden");
    CHECK(t, pf_token_to_piece(tok, 101, true, piece, 32) == 5 && !memcmp(piece, "[CLS]", 5), "[CLS] rendered");
}

/* ---- normalizer flags on a small vocabulary ---------------------------------------------- */

static pf_tokenizer *small_vocab(bool set_lower, bool lower) {
    static const char *const toks[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "\xE2\x96\x81" "caf\xC3\xA9",
                                       "\xE2\x96\x81" "cafe", "\xE2\x96\x81" "Cafe", "s", "\xE2\x96\x81" "!"};
    const int32_t types[] = {3, 3, 3, 3, 1, 1, 1, 1, 1};
    pf_gguf_writer *w = NULL;
    pf_gguf *g = NULL;
    pf_tokenizer *tok = NULL;
    const char *path = "build/tests/wpm_small.gguf";
    if (pf_gguf_writer_create(&w, NULL)) return NULL;
    pf_gguf_writer_set_str(w, "general.architecture", "bert", NULL);
    pf_gguf_writer_set_str(w, "tokenizer.ggml.model", "bert", NULL);
    pf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 9, NULL);
    pf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", PF_GGUF_INT32, types, 9, NULL);
    pf_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 1, NULL);
    pf_gguf_writer_set_u32(w, "tokenizer.ggml.cls_token_id", 2, NULL);
    pf_gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", 3, NULL);
    if (set_lower) pf_gguf_writer_set_bool(w, "tokenizer.ggml.normalizer.lowercase", lower, NULL);
    if (pf_gguf_writer_write(w, path, NULL, NULL, NULL) == PF_OK && pf_gguf_open(path, &g, NULL) == PF_OK)
        pf_tokenizer_load(g, &tok, NULL);
    pf_gguf_close(g);
    pf_gguf_writer_free(w);
    return tok;
}

static void test_flags(pf_test *t) {
    pf_tokenizer *uncased = small_vocab(false, true), *cased = small_vocab(true, false);
    CHECK(t, uncased && cased, "small vocabularies load");
    if (uncased && cased) {
        CHECK(t, enc_is(uncased, "CAFÉS!", true, (const int32_t[]){2, 5, 7, 8, 3}, 5), "uncased: cafe ##s !");
        CHECK(t, enc_is(cased, "Cafe café", false, (const int32_t[]){6, 4}, 2), "cased keeps case and accents");
        CHECK(t, enc_is(cased, "CAFE", false, (const int32_t[]){1}, 1), "cased: CAFE is [UNK]");
        CHECK(t, enc_is(uncased, "cafexyz cafe", false, (const int32_t[]){1, 5}, 2), "uncoverable word -> [UNK]");
    }
    pf_tokenizer_free(uncased);
    pf_tokenizer_free(cased);
}

/* ---- hostile input and speed -------------------------------------------------------------- */

static void test_hostile(pf_test *t, const pf_tokenizer *tok) {
    int32_t ids[64];
    const char bad[] = "ab\xFF\xC3(cd\x00"
                       "ef\xED\xA0\x80gh\x01\x7F";
    int64_t n = pf_tokenize(tok, bad, sizeof bad - 1, false, false, ids, 64, NULL);
    int32_t want[64];
    int64_t nw = enc(tok, "ab ( cdefgh", false, want, 64);
    /* invalid bytes, NUL and controls are dropped; "(" splits */
    CHECK(t, n > 0 && n <= 64 && n == nw && !memcmp(ids, want, (size_t)n * 4), "hostile bytes dropped: %lld vs %lld",
          (long long)n, (long long)nw);
    /* A 1 MB word of one letter and 1 MB of mixed text: linear time, ids sized by count. */
    size_t len = 1 << 20;
    char *s = malloc(len);
    for (size_t i = 0; i < len; i++) s[i] = 'a';
    clock_t c0 = clock();
    int64_t cnt = pf_tokenize(tok, s, len, true, false, NULL, 0, NULL);
    double sec = (double)(clock() - c0) / CLOCKS_PER_SEC;
    CHECK(t, cnt > 2, "long word counted: %lld", (long long)cnt);
    const char *words = "The XR-7 hydraulic pump operates at 350 bar; résumé naïve 中文! ";
    for (size_t i = 0, k = strlen(words); i < len; i++) s[i] = words[i % k];
    s[len - 1] = ' ';
    c0 = clock();
    cnt = pf_tokenize(tok, s, len, true, false, NULL, 0, NULL);
    double sec2 = (double)(clock() - c0) / CLOCKS_PER_SEC;
    CHECK(t, cnt > 100000, "text counted: %lld", (long long)cnt);
    printf("wordpiece speed: 1 MB word %.3f s, 1 MB text %.3f s (%.1f MB/s)\n", sec, sec2, 1.0 / (sec2 > 0 ? sec2 : 1e-9));
    CHECK(t, sec < 10 && sec2 < 10, "speed");
    free(s);
}

int main(void) {
    pf_test t = {0};
    pf_tokenizer *tok = load_tok(VOCAB);
    CHECK(&t, tok != NULL, "load %s", VOCAB);
    if (tok) {
        test_vectors(&t, tok);
        test_specials(&t, tok);
        test_truncate(&t, tok);
        test_decode(&t, tok);
        test_hostile(&t, tok);
    }
    test_flags(&t);
    pf_tokenizer_free(tok);
    return TEST_REPORT(&t);
}
