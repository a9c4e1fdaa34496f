/* Answer metrics of extractive QA as SQuAD's official evaluation script defines them, the
 * yardstick `phiforge eval` reports:
 *   normalize(s) = lower case, ASCII punctuation removed, the articles a/an/the removed as whole
 *                  words, whitespace runs collapsed;
 *   exact match  = normalize(prediction) == normalize(reference);
 *   token F1     = harmonic mean of precision and recall of the bag of normalized tokens
 *                  (common = multiset intersection), 0 when either side has no token.
 * Characters are Unicode code points as in the reference's Python str: lower-casing, \b and
 * split() follow Unicode (utf8proc's tables) and only ASCII punctuation is removed. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "phiforge.h"

/* Python's string.punctuation: the 32 ASCII punctuation characters. */
static bool is_punct(int32_t c) { return c < 128 && c > 32 && c != 127 && !(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z'); }

/* Python's \w on str: Unicode letters and digits (L*, N*) and '_'. */
static bool is_word(int32_t c) {
    if (c == '_') return true;
    utf8proc_category_t k = utf8proc_category(c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) || (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* Python's str.split() separators: ASCII whitespace, \x1c-\x1f, \x85 and Unicode Z* spaces. */
static bool is_space(int32_t c) {
    if ((c >= 9 && c <= 13) || c == ' ' || (c >= 0x1c && c <= 0x1f) || c == 0x85) return true;
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_ZS || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP;
}

static bool is_article_at(const int32_t *c, size_t n, size_t i, size_t *len) {
    static const char *const arts[3] = {"a", "an", "the"}; /* the reference's alternation order */
    if (i > 0 && is_word(c[i - 1])) return false;
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(arts[k]), j = 0;
        while (j < l && i + j < n && c[i + j] == arts[k][j]) j++;
        if (j == l && (i + l == n || !is_word(c[i + l]))) {
            *len = l;
            return true;
        }
    }
    return false;
}

int64_t pf_answer_normalize(const char *s, char *out, int64_t cap) {
    if (s == NULL) return PF_ERR_ARG;
    const size_t n = strlen(s);
    int32_t *c = malloc((n + 1) * sizeof *c);
    if (c == NULL) return PF_ERR_NOMEM;
    /* 1. decode (invalid bytes become U+FFFD), lower-case, drop punctuation */
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) cp = 0xFFFD, k = 1;
        i += (size_t)k;
        if (!is_punct(cp)) c[m++] = utf8proc_tolower(cp);
    }
    /* 2. articles as whole words become spaces (\b(a|an|the)\b, left to right) */
    for (size_t i = 0, l; i < m; i++)
        if (is_article_at(c, m, i, &l))
            for (size_t j = 0; j < l; j++) c[i + j] = ' ';
    /* 3. words joined by single spaces, encoded back to UTF-8 */
    int64_t len = 0;
    for (size_t i = 0; i < m;) {
        while (i < m && is_space(c[i])) i++;
        if (i == m) break;
        if (len > 0) {
            if (len < cap) out[len] = ' ';
            len++;
        }
        for (; i < m && !is_space(c[i]); i++) {
            utf8proc_uint8_t buf[4];
            utf8proc_ssize_t k = utf8proc_encode_char(c[i], buf);
            for (utf8proc_ssize_t j = 0; j < k; j++, len++)
                if (len < cap) out[len] = (char)buf[j];
        }
    }
    if (len < cap) out[len] = '\0';
    free(c);
    return len;
}

/* The normalized form in a fresh buffer, or NULL on OOM. */
static char *normalized(const char *s) {
    int64_t n = pf_answer_normalize(s, NULL, 0);
    if (n < 0) return NULL;
    char *buf = malloc((size_t)n + 1);
    if (buf && pf_answer_normalize(s, buf, n + 1) != n) {
        free(buf);
        return NULL;
    }
    return buf;
}

int pf_answer_exact_match(const char *prediction, const char *reference, bool *match) {
    if (prediction == NULL || reference == NULL || match == NULL) return PF_ERR_ARG;
    char *a = normalized(prediction), *b = normalized(reference);
    int rc = a && b ? PF_OK : PF_ERR_NOMEM;
    if (rc == PF_OK) *match = strcmp(a, b) == 0;
    free(a);
    free(b);
    return rc;
}

/* Cuts a normalized string (words joined by single spaces) into its words, in place; w has
 * room for every word (spaces + 1). Returns the count (0 for ""). */
static size_t split_words(char *s, char **w) {
    if (*s == '\0') return 0;
    size_t n = 0;
    w[n++] = s;
    for (char *p = s; *p; p++)
        if (*p == ' ') *p = '\0', w[n++] = p + 1;
    return n;
}

static size_t count_words_max(const char *s) {
    size_t n = 1;
    for (; *s; s++) n += *s == ' ';
    return n;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int pf_answer_f1(const char *prediction, const char *reference, double *f1) {
    if (prediction == NULL || reference == NULL || f1 == NULL) return PF_ERR_ARG;
    char *a = normalized(prediction), *b = normalized(reference);
    int rc = PF_ERR_NOMEM;
    char **wa = NULL, **wb = NULL;
    if (a == NULL || b == NULL) goto done;
    wa = malloc(count_words_max(a) * sizeof *wa);
    wb = malloc(count_words_max(b) * sizeof *wb);
    if (wa == NULL || wb == NULL) goto done;
    const size_t na = split_words(a, wa), nb = split_words(b, wb);
    rc = PF_OK;
    if (na == 0 || nb == 0) {
        *f1 = 0.0;
        goto done;
    }
    /* multiset intersection of two sorted lists */
    qsort(wa, na, sizeof *wa, cmp_str);
    qsort(wb, nb, sizeof *wb, cmp_str);
    size_t common = 0;
    for (size_t i = 0, j = 0; i < na && j < nb;) {
        int c = strcmp(wa[i], wb[j]);
        if (c == 0) common++, i++, j++;
        else if (c < 0) i++;
        else j++;
    }
    if (common == 0) {
        *f1 = 0.0;
    } else {
        double p = (double)common / (double)na, r = (double)common / (double)nb;
        *f1 = 2.0 * p * r / (p + r);
    }
done:
    free(wa);
    free(wb);
    free(a);
    free(b);
    return rc;
}
