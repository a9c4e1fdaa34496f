/* Porter's stemmer, written from M.F. Porter, "An algorithm for suffix stripping", Program 14(3),
 * 1980, with the two amendments of Porter's own reference implementation that SQLite FTS5's
 * "porter" tokenizer also has (step 2: BLI -> BLE replaces ABLI -> ABLE, and LOGI -> LOG is
 * added). Matching FTS5 term for term is the point: the Okapi baseline must index the same terms
 * as chunks_fts (one FTS5 detail is copied too: SSES and IES need a non-empty stem). Words are
 * lower-case ASCII letters; other bytes count as consonants, as in FTS5.
 *
 * Notation of the paper: C = consonant run, V = vowel run, a word is [C](VC)^m[V] and m is its
 * measure; *v* = the stem holds a vowel, *d = ends in a double consonant, *o = ends consonant-
 * vowel-consonant with the last consonant not w, x or y. */
#include <string.h>

#include "ir/ir.h"

static bool cons(const char *w, size_t i) {
    switch (w[i]) {
    case 'a': case 'e': case 'i': case 'o': case 'u': return false;
    case 'y': return i == 0 ? true : !cons(w, i - 1);
    default: return true;
    }
}

/* m of w[0..n) */
static int measure(const char *w, size_t n) {
    size_t i = 0;
    int m = 0;
    while (i < n && cons(w, i)) i++;
    for (;;) {
        while (i < n && !cons(w, i)) i++;
        if (i >= n) return m;
        while (i < n && cons(w, i)) i++;
        m++;
    }
}

static bool has_vowel(const char *w, size_t n) {
    for (size_t i = 0; i < n; i++) if (!cons(w, i)) return true;
    return false;
}

static bool double_cons(const char *w, size_t n) {
    return n >= 2 && w[n - 1] == w[n - 2] && cons(w, n - 1);
}

static bool cvc(const char *w, size_t n) {
    if (n < 3 || !cons(w, n - 3) || cons(w, n - 2) || !cons(w, n - 1)) return false;
    char c = w[n - 1];
    return c != 'w' && c != 'x' && c != 'y';
}

static bool ends(const char *w, size_t n, const char *suf) {
    size_t l = strlen(suf);
    return l <= n && memcmp(w + n - l, suf, l) == 0;
}

/* Replaces suffix of length `sl` by `rep` (w has room: replacements are never longer than 3
 * more bytes than a suffix they replace, and the buffer holds the original word). */
static size_t replace(char *w, size_t n, size_t sl, const char *rep) {
    size_t rl = strlen(rep);
    memcpy(w + n - sl, rep, rl);
    return n - sl + rl;
}

typedef struct rule { const char *suf, *rep; } rule;

/* Steps 2 and 3: the longest matching suffix decides; it is replaced when the stem's m > 0. */
static size_t apply_rules(char *w, size_t n, const rule *rules, size_t nr) {
    size_t best = nr, best_len = 0;
    for (size_t i = 0; i < nr; i++) {
        size_t l = strlen(rules[i].suf);
        if (l > best_len && ends(w, n, rules[i].suf)) { best = i; best_len = l; }
    }
    if (best == nr) return n;
    if (measure(w, n - best_len) > 0) return replace(w, n, best_len, rules[best].rep);
    return n;
}

static const rule STEP2[] = {
    {"ational", "ate"}, {"tional", "tion"}, {"enci", "ence"}, {"anci", "ance"}, {"izer", "ize"},
    {"bli", "ble"}, {"alli", "al"}, {"entli", "ent"}, {"eli", "e"}, {"ousli", "ous"},
    {"ization", "ize"}, {"ation", "ate"}, {"ator", "ate"}, {"alism", "al"}, {"iveness", "ive"},
    {"fulness", "ful"}, {"ousness", "ous"}, {"aliti", "al"}, {"iviti", "ive"}, {"biliti", "ble"},
    {"logi", "log"},
};
static const rule STEP3[] = {
    {"icate", "ic"}, {"ative", ""}, {"alize", "al"}, {"iciti", "ic"}, {"ical", "ic"}, {"ful", ""},
    {"ness", ""},
};
static const char *const STEP4[] = {
    "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "ou",
    "ism", "ate", "iti", "ous", "ive", "ize",
};

static size_t step1ab(char *w, size_t n) {
    /* FTS5 applies SSES and IES only after a non-empty stem ("ies" -> "ie" by the S rule) */
    if (n > 4 && ends(w, n, "sses")) n -= 2;
    else if (n > 3 && ends(w, n, "ies")) n -= 2;
    else if (!ends(w, n, "ss") && ends(w, n, "s")) n -= 1;

    bool more = false;
    if (ends(w, n, "eed")) {
        if (measure(w, n - 3) > 0) n -= 1;
    } else if (ends(w, n, "ed") && has_vowel(w, n - 2)) {
        n -= 2; more = true;
    } else if (ends(w, n, "ing") && has_vowel(w, n - 3)) {
        n -= 3; more = true;
    }
    if (more) {
        if (ends(w, n, "at") || ends(w, n, "bl") || ends(w, n, "iz")) w[n++] = 'e';
        else if (double_cons(w, n) && w[n - 1] != 'l' && w[n - 1] != 's' && w[n - 1] != 'z') n -= 1;
        else if (measure(w, n) == 1 && cvc(w, n)) w[n++] = 'e';
    }
    return n;
}

size_t pf_ir_porter(char *w, size_t n) {
    if (n < 3 || n > 64) return n;
    n = step1ab(w, n);
    if (n > 1 && w[n - 1] == 'y' && has_vowel(w, n - 1)) w[n - 1] = 'i'; /* step 1c */
    n = apply_rules(w, n, STEP2, sizeof STEP2 / sizeof STEP2[0]);
    n = apply_rules(w, n, STEP3, sizeof STEP3 / sizeof STEP3[0]);

    /* step 4: the longest matching suffix goes when m > 1 (ION also needs a preceding s or t) */
    size_t best_len = 0;
    for (size_t i = 0; i < sizeof STEP4 / sizeof STEP4[0]; i++) {
        size_t l = strlen(STEP4[i]);
        if (l > best_len && ends(w, n, STEP4[i])) best_len = l;
    }
    if (best_len && measure(w, n - best_len) > 1) {
        bool ok = true;
        if (ends(w, n, "ion")) ok = n >= 4 && (w[n - 4] == 's' || w[n - 4] == 't');
        if (ok) n -= best_len;
    }

    /* step 5a, 5b */
    if (w[n - 1] == 'e') {
        int m = measure(w, n - 1);
        if (m > 1 || (m == 1 && !cvc(w, n - 1))) n -= 1;
    }
    if (n > 1 && w[n - 1] == 'l' && double_cons(w, n) && measure(w, n) > 1) n -= 1;
    return n;
}
