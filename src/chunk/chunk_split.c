/* Cutting a section's text into atoms: sentences, with the strength of each boundary taken from
 * the whitespace between them (blank line, line break, plain space). A sentence longer than the
 * target is cut into words, a word longer than the target into character runs (the last resort:
 * long URLs, base64, unspaced scripts without sentence punctuation). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chunk/chunk_internal.h"

int64_t ck_count(ck_ctx *c, int64_t a, int64_t b) {
    return pf_tokenize(c->tok, c->text + a, (size_t)(b - a), false, false, NULL, 0, c->err);
}

static int push(ck_ctx *c, int64_t a, int64_t b, int64_t tok, int32_t sec, int before) {
    if (c->n == c->cap) {
        int64_t cap = c->cap ? 2 * c->cap : 256;
        ck_atom *v = realloc(c->v, (size_t)cap * sizeof *v);
        if (!v) return pf_error_set(c->err, PF_ERR_NOMEM, "chunk: out of memory (%lld atoms)", (long long)cap);
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = (ck_atom){a, b, (int32_t)tok, sec, (int8_t)before};
    return PF_OK;
}

static bool lower_ascii(char ch) { return ch >= 'a' && ch <= 'z'; }
static bool alpha_ascii(char ch) { return lower_ascii(ch) || (ch >= 'A' && ch <= 'Z'); }

/* A period after an initial ("J.") or a common abbreviation does not end a sentence. */
static bool abbreviation(const char *t, int64_t from, int64_t dot) {
    int64_t w = dot;
    while (w > from && !ck_space(t[w - 1]) && t[w - 1] != '(' && t[w - 1] != '"') w--;
    int64_t n = dot - w;
    if (n == 1 && alpha_ascii(t[w])) return true;
    static const char *const abbr[] = {"mr", "mrs", "ms", "dr", "prof", "st", "no", "vs", "etc", "e.g", "i.e",
                                       "fig", "al", "inc", "ltd", "jr", "sr", "cf", "approx", "vol", "pp", "eq"};
    for (size_t k = 0; k < sizeof abbr / sizeof abbr[0]; k++)
        if ((int64_t)strlen(abbr[k]) == n && !strncasecmp(t + w, abbr[k], (size_t)n)) return true;
    return false;
}

/* Bytes of a closing quote/bracket at t[k] (ASCII or ’ ” »), 0 if none. */
static int closer(const char *t, int64_t k, int64_t b) {
    char ch = t[k];
    if (ch == ')' || ch == ']' || ch == '"' || ch == '\'') return 1;
    if (k + 1 < b && (unsigned char)ch == 0xC2 && (unsigned char)t[k + 1] == 0xBB) return 2;
    if (k + 2 < b && (unsigned char)ch == 0xE2 && (unsigned char)t[k + 1] == 0x80 &&
        ((unsigned char)t[k + 2] == 0x99 || (unsigned char)t[k + 2] == 0x9D))
        return 3;
    return 0;
}

/* Fullwidth sentence enders: 。！？ (3 bytes each), 0 if none at t[j]. */
static int cjk_end(const char *t, int64_t j, int64_t b) {
    if (j + 2 >= b) return 0;
    const unsigned char *u = (const unsigned char *)t + j;
    if (u[0] == 0xE3 && u[1] == 0x80 && u[2] == 0x82) return 3;
    if (u[0] == 0xEF && u[1] == 0xBC && (u[2] == 0x81 || u[2] == 0x9F)) return 3;
    return 0;
}

/* Whitespace run from k: sets *next past it and returns the boundary strength it makes. */
static int gap(const char *t, int64_t k, int64_t b, int64_t *next, int plain) {
    int nl = 0;
    while (k < b && ck_space(t[k])) nl += t[k++] == '\n';
    *next = k;
    return nl >= 2 ? CK_PARA : nl == 1 ? CK_LINE : plain;
}

/* The piece (sentence or line) starting at non-space t[i]: returns its end (trimmed), sets
 * *next to the start of the following piece and *strength to the boundary between them. */
static int64_t piece_end(const char *t, int64_t i, int64_t b, int64_t *next, int *strength) {
    for (int64_t j = i; j < b; j++) {
        char ch = t[j];
        if (ch == '\n') {
            int64_t e = j;
            while (e > i && ck_space(t[e - 1])) e--;
            *strength = gap(t, j, b, next, CK_LINE);
            return e;
        }
        int64_t k = j;
        if (ch == '.' || ch == '!' || ch == '?') {
            k = j + 1;
            for (int n; k < b && (n = closer(t, k, b)) > 0;) k += n;
            if (k < b && !ck_space(t[k])) continue;
            if (ch == '.' && abbreviation(t, i, j)) continue;
        } else {
            int n = cjk_end(t, j, b);
            if (!n) continue;
            k = j + n;
        }
        int64_t after = k;
        while (after < b && ck_space(t[after])) after++;
        if (after < b && lower_ascii(t[after]) && ch != (char)0xE3 && ch != (char)0xEF) continue;
        *strength = gap(t, k, b, next, CK_SENT);
        return k;
    }
    int64_t e = b;
    while (e > i && ck_space(t[e - 1])) e--;
    *next = b;
    *strength = CK_PARA;
    return e;
}

static int64_t char_floor(const char *t, int64_t lo, int64_t p) {
    while (p > lo && ((unsigned char)t[p] & 0xC0) == 0x80) p--;
    return p;
}

/* A word longer than the target: character runs of at most `target` tokens each. */
static int split_chars(ck_ctx *c, int64_t a, int64_t b, int32_t sec, int before, int32_t target) {
    int64_t pos = a;
    while (pos < b) {
        /* A token covers at most a few dozen bytes, so a run of target tokens is far shorter
         * than target * 64 bytes: bound the search window to keep huge words linear. */
        int64_t hi = b - pos > (int64_t)target * 64 ? char_floor(c->text, pos, pos + (int64_t)target * 64) : b;
        int64_t n = ck_count(c, pos, hi);
        if (n < 0) return (int)n;
        int64_t best = hi, best_n = n;
        if (n > target) { /* largest end in (pos, hi) whose run fits */
            int64_t lo = pos; /* invariant: [pos, lo) fits (empty at first), [pos, hi) does not */
            best = -1;
            while (hi - lo > 1) {
                int64_t mid = char_floor(c->text, pos, lo + (hi - lo) / 2);
                if (mid <= lo) mid = lo + 1;
                while (mid < hi && ((unsigned char)c->text[mid] & 0xC0) == 0x80) mid++;
                if (mid >= hi) break;
                int64_t m = ck_count(c, pos, mid);
                if (m < 0) return (int)m;
                if (m <= target) lo = mid, best = mid, best_n = m;
                else hi = mid;
            }
            if (best < 0) { /* one character: at most 4 byte tokens, below any valid target */
                best = pos + 1;
                while (best < b && ((unsigned char)c->text[best] & 0xC0) == 0x80) best++;
                if ((best_n = ck_count(c, pos, best)) < 0) return (int)best_n;
            }
        }
        int rc = push(c, pos, best, best_n, sec, pos == a ? before : CK_CHAR);
        if (rc) return rc;
        pos = best;
    }
    return PF_OK;
}

/* A sentence longer than the target: words (whitespace-separated), then characters. */
static int split_words(ck_ctx *c, int64_t a, int64_t b, int32_t sec, int before, int32_t target) {
    int64_t i = a;
    while (i < b) {
        int64_t j = i;
        while (j < b && !ck_space(c->text[j])) j++;
        int64_t n = ck_count(c, i, j);
        if (n < 0) return (int)n;
        int s = i == a ? before : CK_WORD;
        int rc = n <= target ? push(c, i, j, n, sec, s) : split_chars(c, i, j, sec, s, target);
        if (rc) return rc;
        while (j < b && ck_space(c->text[j])) j++;
        i = j;
    }
    return PF_OK;
}

int ck_atomize(ck_ctx *c, int64_t a, int64_t b, int32_t sec, int32_t target) {
    const char *t = c->text;
    int64_t i = a;
    while (i < b && ck_space(t[i])) i++;
    int before = CK_PARA;
    while (i < b) {
        int64_t next;
        int strength;
        int64_t e = piece_end(t, i, b, &next, &strength);
        int64_t n = ck_count(c, i, e);
        if (n < 0) return (int)n;
        int rc = n <= target ? push(c, i, e, n, sec, before) : split_words(c, i, e, sec, before, target);
        if (rc) return rc;
        before = strength;
        i = next;
    }
    return PF_OK;
}
