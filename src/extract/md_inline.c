/* Markdown inline markup -> plain text, lightly: link/image syntax becomes its text, code spans
 * lose their backticks (content kept verbatim), inline HTML tags and comments are dropped,
 * backslash escapes and common entities are decoded, and emphasis/strikethrough markers that
 * pair up are removed ("2 * 3" and snake_case stay as they are).
 * Every scan is linear: bracket/paren partners are precomputed with stacks, failed backtick
 * searches are cached per run length, so hostile lines cannot make this quadratic. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "extract/extract_internal.h"

typedef struct ictx {
    const char *s;
    size_t n;
    int64_t *close;   /* for '[' and '(': index of the partner, -1 if none */
    bool no_tick[64]; /* no backtick run of this length after the last failed search */
    size_t gt;        /* cached position of the next '>' at or after a '<' */
    xbuf o, m;        /* output and its mask: 1 = literal byte, never an emphasis marker */
} ictx;

static bool ascii_punct(unsigned char c) {
    return c < 0x80 && c > 0x20 && !((c | 32) >= 'a' && (c | 32) <= 'z') && !(c >= '0' && c <= '9') && c != 0x7F;
}
static bool sp(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == 0; }

static int emit(ictx *c, const char *s, size_t n, char lit) {
    if (xbuf_put(&c->o, s, n) != PF_OK) return PF_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        if (xbuf_putc(&c->m, lit) != PF_OK) return PF_ERR_NOMEM;
    return PF_OK;
}

/* Partners of '[' ']' and '(' ')' (escaped ones ignored), each kind with its own stack. */
static int match_brackets(ictx *c) {
    int64_t *st = malloc((c->n + 1) * sizeof *st);
    int64_t *st2 = malloc((c->n + 1) * sizeof *st2);
    c->close = malloc((c->n + 1) * sizeof *c->close);
    if (!st || !st2 || !c->close) {
        free(st);
        free(st2);
        return PF_ERR_NOMEM;
    }
    size_t ns = 0, ns2 = 0;
    for (size_t i = 0; i < c->n; i++) {
        c->close[i] = -1;
        char ch = c->s[i];
        if (ch == '\\' && i + 1 < c->n) {
            c->close[++i] = -1;
        } else if (ch == '[') {
            st[ns++] = (int64_t)i;
        } else if (ch == ']' && ns) {
            c->close[st[--ns]] = (int64_t)i;
        } else if (ch == '(') {
            st2[ns2++] = (int64_t)i;
        } else if (ch == ')' && ns2) {
            c->close[st2[--ns2]] = (int64_t)i;
        }
    }
    free(st);
    free(st2);
    return PF_OK;
}

static const struct {
    const char *name, *text;
} ENTS[] = {{"amp;", "&"}, {"lt;", "<"}, {"gt;", ">"}, {"quot;", "\""}, {"apos;", "'"}, {"nbsp;", "\xC2\xA0"}};

/* "&...;" at i: decoded into out (<= 4 bytes), returns the bytes consumed, 0 if not an entity. */
static size_t entity(const char *s, size_t n, size_t i, char out[5]) {
    for (size_t k = 0; k < sizeof ENTS / sizeof ENTS[0]; k++) {
        size_t l = strlen(ENTS[k].name);
        if (i + 1 + l <= n && !memcmp(s + i + 1, ENTS[k].name, l)) {
            strcpy(out, ENTS[k].text);
            return 1 + l;
        }
    }
    if (i + 3 >= n || s[i + 1] != '#') return 0;
    bool hex = s[i + 2] == 'x' || s[i + 2] == 'X';
    size_t j = i + 2 + hex;
    uint32_t v = 0;
    int digits = 0;
    for (; j < n && digits < 7; j++, digits++) {
        unsigned ch = (unsigned char)s[j], d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (hex && (ch | 32) >= 'a' && (ch | 32) <= 'f')
            d = (ch | 32) - 'a' + 10;
        else
            break;
        v = v * (hex ? 16 : 10) + d;
    }
    if (!digits || j >= n || s[j] != ';') return 0;
    if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v < 0xE000)) v = 0xFFFD;
    if (v < 0x80)
        out[0] = (char)v, out[1] = 0;
    else if (v < 0x800)
        out[0] = (char)(0xC0 | v >> 6), out[1] = (char)(0x80 | (v & 0x3F)), out[2] = 0;
    else if (v < 0x10000)
        out[0] = (char)(0xE0 | v >> 12), out[1] = (char)(0x80 | ((v >> 6) & 0x3F)), out[2] = (char)(0x80 | (v & 0x3F)),
        out[3] = 0;
    else
        out[0] = (char)(0xF0 | v >> 18), out[1] = (char)(0x80 | ((v >> 12) & 0x3F)),
        out[2] = (char)(0x80 | ((v >> 6) & 0x3F)), out[3] = (char)(0x80 | (v & 0x3F)), out[4] = 0;
    return j + 1 - i;
}

/* End (exclusive) of a backtick run of exactly k starting the search at i, or 0. */
static size_t find_ticks(ictx *c, size_t i, size_t k) {
    if (k >= 64 || c->no_tick[k]) return 0;
    while (i < c->n) {
        if (c->s[i] != '`') {
            i++;
            continue;
        }
        size_t j = i;
        while (j < c->n && c->s[j] == '`') j++;
        if (j - i == k) return j;
        i = j;
    }
    c->no_tick[k] = true;
    return 0;
}

/* An inline HTML tag/comment or autolink at '<' (i): its end (exclusive), 0 if neither. */
static size_t angle(ictx *c, size_t i, bool *autolink) {
    if (c->gt <= i) {
        const char *g = memchr(c->s + i, '>', c->n - i);
        c->gt = g ? (size_t)(g - c->s) : c->n;
    }
    /* Tags and autolinks are short; the cap keeps "<1<1<1..." lines linear. */
    if (c->gt >= c->n || c->gt - i > 2048) return 0;
    size_t e = c->gt, j = i + 1;
    bool has_sp = memchr(c->s + i, ' ', e - i) != NULL;
    *autolink = !has_sp && (memchr(c->s + i, ':', e - i) || memchr(c->s + i, '@', e - i));
    if (*autolink) return e + 1;
    if (j < e && (c->s[j] == '/' || c->s[j] == '!')) j++;
    size_t name = j;
    while (j < e &&
           (((c->s[j] | 32) >= 'a' && (c->s[j] | 32) <= 'z') || (c->s[j] >= '0' && c->s[j] <= '9') || c->s[j] == '-'))
        j++;
    if (c->s[i + 1] == '!' && i + 3 < c->n && !memcmp(c->s + i + 1, "!--", 3)) return e + 1; /* comment */
    if (j == name || !((c->s[name] | 32) >= 'a' && (c->s[name] | 32) <= 'z')) return 0;
    return (j == e || sp((unsigned char)c->s[j]) || c->s[j] == '/') ? e + 1 : 0;
}

static int pass1(ictx *c, size_t i, size_t end, int depth) {
    while (i < end) {
        unsigned char ch = (unsigned char)c->s[i];
        char ent[5];
        size_t k, e;
        bool al;
        if (ch == '\\' && i + 1 < end && ascii_punct((unsigned char)c->s[i + 1])) {
            if (emit(c, c->s + i + 1, 1, 1)) return PF_ERR_NOMEM;
            i += 2;
        } else if (ch == '`') {
            for (k = 0; i + k < end && c->s[i + k] == '`'; k++) {
            }
            e = find_ticks(c, i + k, k);
            if (!e || e > end) {
                if (emit(c, c->s + i, k, 1)) return PF_ERR_NOMEM;
                i += k;
                continue;
            }
            size_t a = i + k, b = e - k;
            if (b - a >= 2 && c->s[a] == ' ' && c->s[b - 1] == ' ') a++, b--;
            if (emit(c, c->s + a, b - a, 1)) return PF_ERR_NOMEM;
            i = e;
        } else if ((ch == '[' || (ch == '!' && i + 1 < end && c->s[i + 1] == '[')) && depth < 16) {
            size_t open = i + (ch == '!'), close;
            if (c->close[open] < 0 || (close = (size_t)c->close[open]) >= end) {
                if (emit(c, c->s + i, open + 1 - i, 0)) return PF_ERR_NOMEM;
                i = open + 1;
                continue;
            }
            size_t after = close + 1; /* "(dest)" or "[ref]" makes it a link */
            if (after < end && (c->s[after] == '(' || c->s[after] == '[') && c->close[after] >= 0 &&
                (size_t)c->close[after] < end) {
                if (pass1(c, open + 1, close, depth + 1)) return PF_ERR_NOMEM;
                i = (size_t)c->close[after] + 1;
            } else {
                if (emit(c, c->s + i, open + 1 - i, 0)) return PF_ERR_NOMEM;
                i = open + 1;
            }
        } else if (ch == '<' && (e = angle(c, i, &al)) && e <= end) {
            if (al && emit(c, c->s + i + 1, e - i - 2, 1)) return PF_ERR_NOMEM;
            i = e;
        } else if (ch == '&' && (k = entity(c->s, end, i, ent))) {
            if (emit(c, ent, strlen(ent), 1)) return PF_ERR_NOMEM;
            i += k;
        } else {
            if (emit(c, c->s + i, 1, 0)) return PF_ERR_NOMEM;
            i++;
        }
    }
    return PF_OK;
}

/* Pass 2: pair emphasis delimiter runs (CommonMark flanking rules, one stack per marker) and
 * drop the paired ones. */
static int pass2(ictx *c, xbuf *out) {
    size_t n = c->o.n;
    const unsigned char *s = (const unsigned char *)c->o.p, *m = (const unsigned char *)c->m.p;
    char *drop = calloc(n + 1, 1);
    size_t *stk = malloc((n + 1) * sizeof *stk * 3);
    if (!drop || !stk) {
        free(drop);
        free(stk);
        return PF_ERR_NOMEM;
    }
    size_t *st[3] = {stk, stk + n + 1, stk + 2 * (n + 1)}, ns[3] = {0, 0, 0};
    for (size_t i = 0; i < n;) {
        int kind = s[i] == '*' ? 0 : s[i] == '_' ? 1 : s[i] == '~' ? 2 : -1;
        if (kind < 0 || m[i]) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && s[j] == s[i] && !m[j]) j++;
        unsigned char prev = i ? s[i - 1] : 0, next = j < n ? s[j] : 0;
        bool lf = !sp(next) && (!ascii_punct(next) || sp(prev) || ascii_punct(prev));
        bool rf = !sp(prev) && (!ascii_punct(prev) || sp(next) || ascii_punct(next));
        bool can_open = lf, can_close = rf;
        if (kind == 1) {
            can_open = lf && (!rf || ascii_punct(prev));
            can_close = rf && (!lf || ascii_punct(next));
        }
        if (kind == 2 && j - i > 2) can_open = can_close = false;
        if (can_close && ns[kind]) {
            size_t o = st[kind][--ns[kind]];
            for (size_t k = o; k < n && s[k] == s[o] && !m[k]; k++) drop[k] = 1;
            memset(drop + i, 1, j - i);
        } else if (can_open) {
            st[kind][ns[kind]++] = i;
        }
        i = j;
    }
    int rc = PF_OK;
    for (size_t i = 0; i < n && rc == PF_OK;) {
        size_t j = i;
        while (j < n && !drop[j]) j++;
        rc = xbuf_put(out, s + i, j - i);
        while (j < n && drop[j]) j++;
        i = j;
    }
    free(drop);
    free(stk);
    return rc;
}

int pf_md_inline(const char *s, size_t n, xbuf *out) {
    ictx c = {.s = s, .n = n};
    int rc = match_brackets(&c);
    if (rc == PF_OK) rc = pass1(&c, 0, n, 0);
    if (rc == PF_OK) rc = pass2(&c, out);
    free(c.close);
    xbuf_free(&c.o);
    xbuf_free(&c.m);
    return rc;
}
