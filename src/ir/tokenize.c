/* A tokenizer with the behaviour of FTS5's "unicode61 remove_diacritics 2": token characters are
 * Unicode letters, numbers and private-use characters, every other code point separates tokens;
 * tokens are lower-cased (simple case mapping, not full folding: FTS5 keeps "ß") and stripped of
 * diacritics by canonical decomposition minus combining marks. Keeping the two in step matters:
 * the terms of the queries we build and of the test's baseline must be the index's terms. */
#include <string.h>
#include <utf8proc.h>

#include "ir/ir.h"

static bool is_token_cat(utf8proc_category_t c) {
    switch (c) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
    case UTF8PROC_CATEGORY_CO:
        return true;
    default:
        return false;
    }
}

static bool is_mark(utf8proc_category_t c) {
    return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_MC || c == UTF8PROC_CATEGORY_ME;
}

/* Appends the folded form of cp to buf (at most PF_IR_MAX_TOKEN bytes kept). */
static void fold_append(char *buf, size_t *n, utf8proc_int32_t cp) {
    utf8proc_int32_t dec[16];
    utf8proc_ssize_t nd = 1;
    dec[0] = cp;
    if (cp >= 0x80) { /* ASCII needs no decomposition: keep the common case fast */
        int last = 0;
        nd = utf8proc_decompose_char(cp, dec, 16, UTF8PROC_DECOMPOSE | UTF8PROC_STRIPMARK, &last);
        if (nd < 0 || nd > 16) { dec[0] = cp; nd = 1; }
    }
    for (utf8proc_ssize_t i = 0; i < nd; i++) {
        utf8proc_int32_t c = dec[i];
        if (c < 0x80) {
            if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
            if (*n < PF_IR_MAX_TOKEN) buf[(*n)++] = (char)c;
            continue;
        }
        c = utf8proc_tolower(c);
        utf8proc_uint8_t enc[4];
        utf8proc_ssize_t ne = utf8proc_encode_char(c, enc);
        if (*n + (size_t)ne > PF_IR_MAX_TOKEN) continue;
        memcpy(buf + *n, enc, (size_t)ne);
        *n += (size_t)ne;
    }
}

int pf_ir_tokenize(const char *text, size_t len, pf_ir_token_fn fn, void *ctx) {
    char buf[PF_IR_MAX_TOKEN + 1];
    size_t n = 0, tok_start = 0, tok_end = 0;
    bool in_tok = false;
    size_t i = 0;
    while (i <= len) {
        utf8proc_int32_t cp = -1;
        utf8proc_ssize_t step = 1;
        bool tokch = false, mark = false;
        if (i < len) {
            unsigned char c0 = (unsigned char)text[i];
            if (c0 < 0x80) { /* fast path */
                cp = c0;
                tokch = (c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z') || (c0 >= '0' && c0 <= '9');
            } else {
                step = utf8proc_iterate((const utf8proc_uint8_t *)text + i, (utf8proc_ssize_t)(len - i), &cp);
                if (step < 1) { step = 1; cp = -1; }
                else {
                    utf8proc_category_t cat = utf8proc_category(cp);
                    tokch = is_token_cat(cat);
                    mark = is_mark(cat);
                }
            }
        }
        if (tokch) {
            if (!in_tok) { in_tok = true; n = 0; tok_start = i; }
            fold_append(buf, &n, cp);
            tok_end = i + (size_t)step;
        } else if (mark && in_tok) {
            tok_end = i + (size_t)step; /* a combining mark is part of the token, then stripped */
        } else if (in_tok) {
            in_tok = false;
            if (n > 0) {
                buf[n] = '\0';
                int rc = fn(ctx, buf, n, tok_start, tok_end);
                if (rc) return rc;
            }
        }
        if (i == len) break;
        i += (size_t)step;
    }
    return 0;
}

/* Lucene's EnglishAnalyzer stopword set (33 words), sorted for bsearch. */
static const char *const STOPWORDS[] = {
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they",
    "this", "to", "was", "will", "with",
};

bool pf_ir_is_stopword(const char *tok, size_t len) {
    size_t lo = 0, hi = sizeof STOPWORDS / sizeof STOPWORDS[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *s = STOPWORDS[mid];
        size_t sl = strlen(s);
        int c = strncmp(tok, s, len < sl ? len : sl);
        if (c == 0) c = (len > sl) - (len < sl);
        if (c == 0) return true;
        if (c < 0) hi = mid; else lo = mid + 1;
    }
    return false;
}
