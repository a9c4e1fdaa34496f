/* Citation markers in a generated answer, mapped to the numbered sources of the prompt.
 *
 * Grammar of one marker (a bracket group), spaces allowed between the parts:
 *   "[" [ "^" ] [ "source" | "sources" | "src" ] [":"] item { sep item } "]"   ("[^2]": a footnote)
 *   item = number | number dash number      dash = "-" | "–" | "—"
 *   sep  = "," | ";" | "and" | "&" | nothing (spaces)
 * with numbers of 1 to 6 digits. A bracket group that does not parse is ordinary text, so
 * "[see below]" or "[1.5]" never count; "[2023]" does parse and, with fewer sources, is flagged
 * as a marker pointing to no source (which is what a reader would take it for). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "phiforge.h"

#define MAX_RANGE 64 /* "[1-99999]" expands to at most this many numbers */

typedef struct marker_list {
    pf_rag_marker *v;
    int64_t n, cap;
} marker_list;

static bool push(marker_list *l, int64_t start, int64_t end, int32_t source, int32_t n_sources) {
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 16;
        pf_rag_marker *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return false;
        l->v = v, l->cap = cap;
    }
    l->v[l->n++] = (pf_rag_marker){start, end, source, source >= 1 && source <= n_sources};
    return true;
}

static size_t skip_space(const char *s, size_t i, size_t len) {
    while (i < len && (s[i] == ' ' || s[i] == '\t')) i++;
    return i;
}

/* A number of 1..6 digits at s[i]; returns the index after it, or 0 when there is none. */
static size_t number(const char *s, size_t i, size_t len, int32_t *v) {
    size_t j = i;
    int32_t x = 0;
    while (j < len && isdigit((unsigned char)s[j]) && j - i < 7) x = x * 10 + (s[j++] - '0');
    if (j == i || j - i > 6 || (j < len && isdigit((unsigned char)s[j]))) return 0;
    *v = x;
    return j;
}

/* A dash at s[i]: returns its byte length, 0 when none. */
static size_t dash(const char *s, size_t i, size_t len) {
    if (i < len && s[i] == '-') return 1;
    if (i + 2 < len && !memcmp(s + i, "\xE2\x80\x93", 3)) return 3; /* – en dash */
    if (i + 2 < len && !memcmp(s + i, "\xE2\x80\x94", 3)) return 3; /* — em dash */
    return 0;
}

static size_t keyword(const char *s, size_t i, size_t len, const char *w) {
    size_t n = strlen(w);
    if (i + n <= len && !strncasecmp(s + i, w, n) && (i + n == len || !isalpha((unsigned char)s[i + n]))) return i + n;
    return 0;
}

/* Parses the group opening at s[open] ('['). Returns the index after ']' and appends the
 * group's numbers to `nums` (pairs lo, hi), or returns 0 when the group is not a marker. */
static size_t parse_group(const char *s, size_t open, size_t len, int32_t *nums, int *n_nums, int max_nums) {
    size_t i = skip_space(s, open + 1, len), k;
    if (i < len && s[i] == '^') i++;
    if ((k = keyword(s, i, len, "sources")) || (k = keyword(s, i, len, "source")) || (k = keyword(s, i, len, "src"))) {
        i = skip_space(s, k, len);
        if (i < len && s[i] == ':') i = skip_space(s, i + 1, len);
    }
    *n_nums = 0;
    for (bool first = true;; first = false) {
        i = skip_space(s, i, len);
        if (i < len && s[i] == ']') return first ? 0 : i + 1;
        if (!first) { /* a separator, possibly just the spaces already skipped */
            if (i < len && (s[i] == ',' || s[i] == ';' || s[i] == '&')) i = skip_space(s, i + 1, len);
            else if ((k = keyword(s, i, len, "and"))) i = skip_space(s, k, len);
            else if (i > 0 && s[i - 1] != ' ' && s[i - 1] != '\t') return 0;
        }
        int32_t lo, hi;
        if (!(k = number(s, i, len, &lo))) return 0;
        i = skip_space(s, k, len);
        hi = lo;
        size_t d = dash(s, i, len);
        if (d) {
            i = skip_space(s, i + d, len);
            if (!(k = number(s, i, len, &hi))) return 0;
            i = k;
        }
        if (*n_nums + 2 > max_nums) return 0; /* an absurdly long list: not a marker */
        nums[(*n_nums)++] = lo < hi ? lo : hi;
        nums[(*n_nums)++] = lo < hi ? hi : lo;
    }
}

int pf_rag_parse_citations(const char *answer, size_t len, int32_t n_sources, pf_rag_citations *out, pf_error *err) {
    if (!out || (!answer && len) || n_sources < 0)
        return pf_error_set(err, PF_ERR_ARG, "pf_rag_parse_citations: invalid argument");
    memset(out, 0, sizeof *out);
    marker_list l = {0};
    int32_t *count = calloc((size_t)n_sources + 1, sizeof *count);
    if (!count) return pf_error_set(err, PF_ERR_NOMEM, "pf_rag_parse_citations: out of memory");
    int32_t nums[64];
    int n_nums;
    bool ok = true;
    for (size_t i = 0; i < len && ok; i++) {
        if (answer[i] != '[') continue;
        size_t end = parse_group(answer, i, len, nums, &n_nums, 64);
        if (!end) continue;
        for (int j = 0; j < n_nums && ok; j += 2) {
            int32_t lo = nums[j], hi = nums[j + 1];
            if (hi - lo >= MAX_RANGE) hi = lo + MAX_RANGE - 1;
            /* numbers inside 1..n_sources one by one; whatever lies outside as one invalid entry */
            bool bad_seen = false;
            for (int32_t x = lo; x <= hi && ok; x++) {
                if (x >= 1 && x <= n_sources) ok = push(&l, (int64_t)i, (int64_t)end, x, n_sources);
                else if (!bad_seen) bad_seen = true, ok = push(&l, (int64_t)i, (int64_t)end, x, n_sources);
                else if (x > n_sources) break;
            }
        }
        i = end - 1;
    }
    if (!ok) {
        free(l.v);
        free(count);
        return pf_error_set(err, PF_ERR_NOMEM, "pf_rag_parse_citations: out of memory");
    }
    for (int64_t k = 0; k < l.n; k++) {
        if (l.v[k].valid) count[l.v[k].source - 1]++;
        else out->n_invalid++;
    }
    out->markers = l.v;
    out->n_markers = l.n;
    out->count = count;
    out->n_sources = n_sources;
    return PF_OK;
}

void pf_rag_citations_free(pf_rag_citations *c) {
    if (!c) return;
    free(c->markers);
    free(c->count);
    memset(c, 0, sizeof *c);
}
