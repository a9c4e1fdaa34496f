/* Markdown: heading-aware extraction. ATX ("## x") and setext (underlined) headings set the
 * heading path of the sections after them; fenced code blocks are kept verbatim and never
 * parsed for headings; paragraphs become sections with inline markup stripped lightly
 * (md_inline.c); pipe tables are kept as "a | b" rows without the delimiter row; a YAML front
 * matter block gives the title and simple "key: value" metadata. The title is the front
 * matter's, else the first level-1 heading, else the first heading. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "extract/extract_internal.h"

typedef struct span {
    const char *s;
    size_t n;
} span;

typedef struct md {
    xb b;
    span *para; /* lines of the paragraph being collected */
    size_t np, capp;
    char *title;
    int title_level;
} md;

/* Leading spaces (a tab counts as 4 columns, i.e. "indented code"). */
static size_t indent(const char *s, size_t n, size_t *bytes) {
    size_t col = 0, i = 0;
    for (; i < n && (s[i] == ' ' || s[i] == '\t'); i++) col += s[i] == '\t' ? 4 - col % 4 : 1;
    if (bytes) *bytes = i;
    return col;
}

static bool is_blank(const char *s, size_t n) {
    size_t b;
    indent(s, n, &b);
    return b == n;
}

static size_t rtrim(const char *s, size_t n) {
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    return n;
}

/* Opening fence: up to 3 spaces, >= 3 backticks or tildes (a backtick fence's info string may
 * not contain backticks). */
static bool fence_open(const char *s, size_t n, char *ch, size_t *len, size_t *ind) {
    size_t b;
    if (indent(s, n, &b) > 3 || b >= n || (s[b] != '`' && s[b] != '~')) return false;
    size_t k = b;
    while (k < n && s[k] == s[b]) k++;
    if (k - b < 3 || (s[b] == '`' && memchr(s + k, '`', n - k))) return false;
    *ch = s[b];
    *len = k - b;
    *ind = b;
    return true;
}

static bool fence_close(const char *s, size_t n, char ch, size_t len) {
    size_t b;
    if (indent(s, n, &b) > 3) return false;
    size_t k = b;
    while (k < n && s[k] == ch) k++;
    return k - b >= len && is_blank(s + k, n - k);
}

/* ATX heading: level 1..6 and its content without the optional closing '#' run. */
static int atx(const char *s, size_t n, span *content) {
    size_t b, k;
    if (indent(s, n, &b) > 3 || b >= n || s[b] != '#') return 0;
    for (k = b; k < n && s[k] == '#'; k++) {
    }
    int level = (int)(k - b);
    if (level > 6 || (k < n && s[k] != ' ' && s[k] != '\t')) return 0;
    size_t e = rtrim(s, n), h = e;
    while (h > k && s[h - 1] == '#') h--;
    if (h == k || s[h - 1] == ' ' || s[h - 1] == '\t') e = rtrim(s, h); /* closing sequence */
    while (k < e && (s[k] == ' ' || s[k] == '\t')) k++;
    content->s = s + k;
    content->n = e > k ? e - k : 0;
    return level;
}

/* Setext underline: 1 for "===", 2 for "---". */
static int setext(const char *s, size_t n) {
    size_t b;
    if (indent(s, n, &b) > 3 || b >= n || (s[b] != '=' && s[b] != '-')) return 0;
    size_t k = b;
    while (k < n && s[k] == s[b]) k++;
    return is_blank(s + k, n - k) ? (s[b] == '=' ? 1 : 2) : 0;
}

static bool thematic(const char *s, size_t n) {
    size_t b, count = 0;
    if (indent(s, n, &b) > 3 || b >= n || (s[b] != '*' && s[b] != '-' && s[b] != '_')) return false;
    for (size_t i = b; i < n; i++) {
        if (s[i] == s[b])
            count++;
        else if (s[i] != ' ' && s[i] != '\t')
            return false;
    }
    return count >= 3;
}

static bool list_or_quote(const char *s, size_t n) {
    size_t b, k;
    if (indent(s, n, &b) > 3 || b >= n) return false;
    if (s[b] == '>') return true;
    if ((s[b] == '-' || s[b] == '*' || s[b] == '+') && (b + 1 == n || s[b + 1] == ' ')) return true;
    for (k = b; k < n && k - b < 9 && s[k] >= '0' && s[k] <= '9'; k++) {
    }
    return k > b && k < n && (s[k] == '.' || s[k] == ')') && (k + 1 == n || s[k + 1] == ' ');
}

/* Only a plain paragraph can become a setext heading (not lists, quotes or tables). */
static bool plain_para(const md *m) {
    for (size_t k = 0; k < m->np; k++)
        if (list_or_quote(m->para[k].s, m->para[k].n) || memchr(m->para[k].s, '|', m->para[k].n)) return false;
    return true;
}

/* Table delimiter row: "| --- | :-: |" (needs a '|', '-' and nothing but "|:- "). */
static bool delim_row(const char *s, size_t n) {
    bool pipe = false, dash = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '|')
            pipe = true;
        else if (s[i] == '-')
            dash = true;
        else if (s[i] != ':' && s[i] != ' ' && s[i] != '\t')
            return false;
    }
    return pipe && dash;
}

/* Inline markup is stripped on lines up to 1 MiB; longer ones (never real prose) are kept
 * verbatim, since the stripping needs about 40 bytes of scratch per byte of line. */
#define MD_INLINE_MAX ((size_t)1 << 20)

static void inline_text(md *m, const char *s, size_t n) {
    xbuf o = {0};
    if (n > MD_INLINE_MAX)
        xb_text(&m->b, s, n);
    else if (pf_md_inline(s, n, &o) != PF_OK)
        m->b.err = PF_ERR_NOMEM;
    else
        xb_text(&m->b, o.p, o.n);
    xbuf_free(&o);
}

/* A table row: cells split on unescaped '|', outer pipes dropped, joined with " | ". */
static void table_row(md *m, const char *s, size_t n) {
    size_t b;
    indent(s, n, &b);
    s += b, n = rtrim(s, n - b);
    if (n && s[0] == '|') s++, n--;
    if (n && s[n - 1] == '|' && (n < 2 || s[n - 2] != '\\')) n--;
    bool first = true;
    for (size_t i = 0; i <= n;) {
        size_t e = i;
        while (e < n && !(s[e] == '|' && (e == 0 || s[e - 1] != '\\'))) e++;
        size_t a = i, z = e;
        while (a < z && (s[a] == ' ' || s[a] == '\t')) a++;
        z = a + rtrim(s + a, z - a);
        if (!first) xb_text(&m->b, " | ", 3);
        inline_text(m, s + a, z - a);
        first = false;
        i = e + 1;
    }
}

static void flush_para(md *m) {
    bool table = m->np >= 2 && delim_row(m->para[1].s, m->para[1].n) && memchr(m->para[0].s, '|', m->para[0].n);
    for (size_t i = 0; i < m->np; i++) {
        const char *s = m->para[i].s;
        size_t n = m->para[i].n, b;
        xb_line(&m->b);
        if (table) {
            if (!delim_row(s, n)) table_row(m, s, n);
            continue;
        }
        for (;;) { /* blockquote markers */
            if (indent(s, n, &b) > 3 || b >= n || s[b] != '>') break;
            b++;
            if (b < n && s[b] == ' ') b++;
            s += b, n -= b;
        }
        indent(s, n, &b);
        inline_text(m, s + b, rtrim(s + b, n - b));
    }
    m->np = 0;
    xb_para(&m->b);
}

static void heading(md *m, int level, const char *s, size_t n) {
    xbuf o = {0};
    if (n > MD_INLINE_MAX) n = MD_INLINE_MAX; /* a heading that long is not one anyone reads */
    if (pf_md_inline(s, n, &o) != PF_OK) {
        m->b.err = PF_ERR_NOMEM;
        return;
    }
    if (o.n && (!m->title || (level == 1 && m->title_level > 1))) {
        free(m->title);
        m->title = pf_utf8_clean_dup(o.p, o.n);
        m->title_level = level;
    }
    xb_heading(&m->b, level, o.p ? o.p : "", o.n);
    xbuf_free(&o);
}

/* A fenced block is its own section, verbatim, without its trailing blank lines. */
static void emit_code(md *m, xbuf *code) {
    size_t n = code->n;
    while (n && (code->p[n - 1] == '\n' || code->p[n - 1] == ' ' || code->p[n - 1] == '\t')) n--;
    xb_para(&m->b);
    xb_text(&m->b, code->p, n);
    xb_para(&m->b);
    code->n = 0;
}

static void push_line(md *m, const char *s, size_t n) {
    if (m->np == m->capp) {
        size_t cap = m->capp ? m->capp * 2 : 16;
        span *p = realloc(m->para, cap * sizeof *p);
        if (!p) {
            m->b.err = PF_ERR_NOMEM;
            return;
        }
        m->para = p;
        m->capp = cap;
    }
    m->para[m->np++] = (span){s, n};
}

/* "---" front matter: returns where the body starts; scalar "key: value" lines -> meta. */
static size_t front_matter(md *m, const char *t, size_t n, cJSON *meta) {
    if (n < 4 || memcmp(t, "---\n", 4)) return 0;
    for (size_t i = 4; i < n;) {
        size_t e = i;
        while (e < n && t[e] != '\n') e++;
        size_t l = rtrim(t + i, e - i);
        if ((l == 3 && (!memcmp(t + i, "---", 3) || !memcmp(t + i, "...", 3)))) {
            for (size_t k = 4; k < i;) { /* second pass over the block's lines */
                size_t ke = k;
                while (ke < i && t[ke] != '\n') ke++;
                const char *colon = memchr(t + k, ':', ke - k);
                if (colon && colon > t + k && t[k] != ' ' && t[k] != '#') {
                    const char *v = colon + 1;
                    size_t vn = (size_t)(t + ke - v);
                    while (vn && *v == ' ') v++, vn--;
                    vn = rtrim(v, vn);
                    if (vn >= 2 && (v[0] == '"' || v[0] == '\'') && v[vn - 1] == v[0]) v++, vn -= 2;
                    char *key = pf_utf8_clean_dup(t + k, (size_t)(colon - t - k)), *val = pf_utf8_clean_dup(v, vn);
                    if (key && val && *val && !cJSON_GetObjectItemCaseSensitive(meta, key)) {
                        cJSON_AddStringToObject(meta, key, val);
                        if (!strcmp(key, "title") && !m->title) m->title = strdup(val), m->title_level = 0;
                    }
                    free(key);
                    free(val);
                }
                k = ke + 1;
            }
            return e < n ? e + 1 : n;
        }
        i = e + 1;
    }
    return 0; /* never closed: not front matter */
}

int pf_x_md(const xin *in, pf_xresult *r, pf_error *err) {
    char *t;
    size_t n;
    int rc = xtext_decode(in, true, r, &t, &n, err);
    if (rc != PF_OK) return rc;
    md m = {0};
    xb_init(&m.b, in->budget);
    cJSON *meta = cJSON_CreateObject();
    size_t i = meta ? front_matter(&m, t, n, meta) : 0;
    char fch = 0;
    size_t flen = 0, find = 0;
    xbuf code = {0};
    bool in_fence = false, in_comment = false;
    for (; i < n && !m.b.err; i++) {
        size_t e = i;
        while (e < n && t[e] != '\n') e++;
        const char *s = t + i;
        size_t ln = e - i, b;
        span c;
        int lvl;
        i = e;
        if (in_fence) { /* code is text, never headings */
            if (fence_close(s, ln, fch, flen)) {
                in_fence = false;
                emit_code(&m, &code);
                code.n = 0;
                continue;
            }
            size_t cut = 0;
            while (cut < find && cut < ln && s[cut] == ' ') cut++;
            if ((code.n && xbuf_putc(&code, '\n')) || xbuf_put(&code, s + cut, ln - cut)) m.b.err = PF_ERR_NOMEM;
            continue;
        }
        if (in_comment) {
            in_comment = !memmem(s, ln, "-->", 3);
            continue;
        }
        if (is_blank(s, ln)) {
            flush_para(&m);
        } else if (m.np && (lvl = setext(s, ln)) && plain_para(&m)) {
            xbuf h = {0};
            for (size_t k = 0; k < m.np; k++) {
                indent(m.para[k].s, m.para[k].n, &b);
                if ((k && xbuf_putc(&h, ' ')) || xbuf_put(&h, m.para[k].s + b, m.para[k].n - b)) m.b.err = PF_ERR_NOMEM;
            }
            m.np = 0;
            heading(&m, lvl, h.p ? h.p : "", h.n);
            xbuf_free(&h);
        } else if (fence_open(s, ln, &fch, &flen, &find)) {
            flush_para(&m);
            in_fence = true;
        } else if ((lvl = atx(s, ln, &c))) {
            flush_para(&m);
            heading(&m, lvl, c.s, c.n);
        } else if (thematic(s, ln)) {
            flush_para(&m);
        } else if (indent(s, ln, &b) <= 3 && ln - b >= 4 && !memcmp(s + b, "<!--", 4)) {
            flush_para(&m);
            in_comment = !memmem(s, ln, "-->", 3);
        } else if (!m.np && indent(s, ln, &b) <= 3 && s[b] == '[' && memmem(s, ln, "]:", 2)) {
            /* link reference definition: a URL, not text */
        } else {
            push_line(&m, s, ln);
        }
    }
    if (in_fence) emit_code(&m, &code);
    flush_para(&m);
    xbuf_free(&code);
    free(t);
    free(m.para);
    pf_xdoc doc = {.title = m.title};
    doc.metadata_json = meta ? cJSON_PrintUnformatted(meta) : NULL;
    cJSON_Delete(meta);
    return xb_emit(&m.b, in, r, &doc, err);
}
