/* The document builder shared by every extractor, plus byte buffers and UTF-8 repair.
 * Extractors emit events (text, line/paragraph breaks, headings, pages); the builder owns the
 * invariants of pf_xdoc: valid UTF-8 without NULs, sections ordered and covering [0, len),
 * a paragraph separator that belongs to the section before it, and the text budget. */
#include <stdlib.h>
#include <string.h>

#include "extract/extract_internal.h"

int xbuf_put(xbuf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return PF_ERR_NOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return PF_OK;
}

int xbuf_putc(xbuf *b, char c) { return xbuf_put(b, &c, 1); }

void xbuf_free(xbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

char *xbuf_take(xbuf *b) {
    if (!b->p && xbuf_put(b, "", 0) != PF_OK) return NULL;
    char *p = b->p;
    memset(b, 0, sizeof *b);
    return p;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    if (!len || len > n || c > 0xF4) return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
    if (c == 0xED && s[1] > 0x9F) return 0; /* surrogate */
    if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
    if (c == 0xF4 && s[1] > 0x8F) return 0; /* > U+10FFFF */
    return len;
}

int pf_utf8_append(xbuf *b, const char *s, size_t n, bool latin1, size_t *n_invalid) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* [run, i) is valid and not yet copied */
    while (i < n) {
        size_t l = u[i] ? utf8_seq(u + i, n - i) : 0;
        if (l) {
            i += l;
            continue;
        }
        if (xbuf_put(b, u + run, i - run) != PF_OK) return PF_ERR_NOMEM;
        char rep[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
        size_t rl = 3;
        if (latin1 && u[i]) { /* U+0080..U+00FF as two bytes */
            rep[0] = (char)(0xC0 | (u[i] >> 6));
            rep[1] = (char)(0x80 | (u[i] & 0x3F));
            rl = 2;
        }
        if (xbuf_put(b, rep, rl) != PF_OK) return PF_ERR_NOMEM;
        if (n_invalid) (*n_invalid)++;
        run = ++i;
    }
    return xbuf_put(b, u + run, i - run);
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

char *pf_utf8_clean_dup(const char *s, size_t n) {
    xbuf raw = {0}, out = {0};
    if (pf_utf8_append(&raw, s, n, false, NULL) != PF_OK || xbuf_put(&out, "", 0) != PF_OK) {
        xbuf_free(&raw);
        xbuf_free(&out);
        return NULL;
    }
    bool space = false;
    for (size_t i = 0; i < raw.n; i++) {
        if (is_ws(raw.p[i])) {
            space = out.n > 0;
            continue;
        }
        if ((space && xbuf_putc(&out, ' ') != PF_OK) || xbuf_putc(&out, raw.p[i]) != PF_OK) {
            xbuf_free(&raw);
            xbuf_free(&out);
            return NULL;
        }
        space = false;
    }
    xbuf_free(&raw);
    return xbuf_take(&out);
}

/* ---- builder ---- */

void xb_init(xb *b, int64_t *budget) {
    memset(b, 0, sizeof *b);
    b->budget = budget;
    b->next_hard = true;
}

void xb_free(xb *b) {
    xbuf_free(&b->text);
    for (int64_t i = 0; i < b->n_secs; i++) free(b->secs[i].heading);
    free(b->secs);
    for (int i = 0; i < XB_LEVELS; i++) free(b->heads[i]);
    memset(b, 0, sizeof *b);
}

static void put(xb *b, const char *s, size_t n) {
    if (!b->err && xbuf_put(&b->text, s, n) != PF_OK) b->err = PF_ERR_NOMEM;
}

/* "A › B › C" from the heading stack, NULL when empty. */
static char *heading_path(xb *b) {
    xbuf p = {0};
    for (int i = 0; i < XB_LEVELS; i++) {
        if (!b->heads[i]) continue;
        if ((p.n && xbuf_put(&p, " \xE2\x80\xBA ", 5) != PF_OK) || xbuf_put(&p, b->heads[i], strlen(b->heads[i])))
            b->err = PF_ERR_NOMEM;
    }
    return p.p;
}

/* Emits what is owed before new text: a section start (with its "\n\n" separator charged to
 * the previous section), a line break, or a collapsed space. */
static void begin_text(xb *b) {
    if (b->new_section || b->n_secs == 0) {
        if (b->text.n) put(b, "\n\n", 2);
        if (b->n_secs == b->cap_secs) {
            int64_t cap = b->cap_secs ? b->cap_secs * 2 : 16;
            pf_xsection *s = realloc(b->secs, (size_t)cap * sizeof *s);
            if (!s) {
                b->err = PF_ERR_NOMEM;
                return;
            }
            b->secs = s;
            b->cap_secs = cap;
        }
        if (b->n_secs) b->secs[b->n_secs - 1].end = (int64_t)b->text.n;
        pf_xsection *s = &b->secs[b->n_secs++];
        s->start = (int64_t)b->text.n;
        s->end = s->start;
        s->page = b->page;
        s->heading = heading_path(b);
        s->hard_break = b->next_hard;
        b->new_section = b->next_hard = false;
    } else if (b->pending) {
        put(b, "\n", 1);
    } else if (b->space) {
        put(b, " ", 1);
    }
    b->pending = 0;
    b->space = false;
}

void xb_text(xb *b, const char *s, size_t n) {
    if (b->err || n == 0) return;
    begin_text(b);
    size_t before = b->text.n;
    if (!b->err && pf_utf8_append(&b->text, s, n, false, NULL) != PF_OK) b->err = PF_ERR_NOMEM;
    /* The budget bounds memory against amplifying inputs (CSV headers repeated per row, ...). */
    *b->budget -= (int64_t)(b->text.n - before) + 2;
    if (!b->err && *b->budget < 0) b->err = PF_ERR_UNSUPPORTED;
}

static bool at_start(const xb *b) { return b->new_section || b->pending || b->text.n == 0; }

void xb_text_ws(xb *b, const char *s, size_t n) {
    size_t i = 0;
    while (i < n && !b->err) {
        if (is_ws(s[i])) {
            if (!at_start(b)) b->space = true;
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && !is_ws(s[j])) j++;
        xb_text(b, s + i, j - i);
        i = j;
    }
}

void xb_line(xb *b) {
    if (b->text.n && !b->new_section) b->pending = 1;
    b->space = false;
}

void xb_para(xb *b) {
    if (b->text.n) b->new_section = true;
    b->pending = 0;
    b->space = false;
}

void xb_hard(xb *b) {
    xb_para(b);
    b->next_hard = true;
}

void xb_page(xb *b, int32_t page) {
    xb_hard(b);
    b->page = page;
}

void xb_heading(xb *b, int level, const char *s, size_t n) {
    if (b->err || level < 0 || level >= XB_LEVELS) return;
    char *h = pf_utf8_clean_dup(s, n);
    if (!h) {
        b->err = PF_ERR_NOMEM;
        return;
    }
    if (!*h) { /* an empty heading names nothing; keep the current path */
        free(h);
        return;
    }
    for (int i = level; i < XB_LEVELS; i++) {
        free(b->heads[i]);
        b->heads[i] = NULL;
    }
    b->heads[level] = h;
    xb_hard(b);
    xb_text(b, h, strlen(h));
    xb_para(b);
}

void xb_set_root_heading(xb *b, const char *s) {
    for (int i = 0; i < XB_LEVELS; i++) {
        free(b->heads[i]);
        b->heads[i] = NULL;
    }
    if (s && !(b->heads[0] = pf_utf8_clean_dup(s, strlen(s)))) b->err = PF_ERR_NOMEM;
    if (b->heads[0] && !*b->heads[0]) {
        free(b->heads[0]);
        b->heads[0] = NULL;
    }
}

int xb_finish(xb *b, pf_xdoc *doc) {
    if (b->err) return b->err;
    if (b->n_secs) b->secs[b->n_secs - 1].end = (int64_t)b->text.n;
    doc->len = (int64_t)b->text.n;
    doc->text = xbuf_take(&b->text);
    if (!doc->text) return b->err = PF_ERR_NOMEM;
    doc->sections = b->secs;
    doc->n_sections = b->n_secs;
    b->secs = NULL;
    b->n_secs = b->cap_secs = 0;
    return PF_OK;
}

int xb_error(const xb *b, const xin *in, pf_error *err) {
    if (b->err == PF_ERR_UNSUPPORTED)
        return pf_error_set(err, b->err, "%s: extracted text exceeds the cap of %lld MiB (PF_EXTRACT_MAX_TEXT_BYTES)",
                            in->name, (long long)(PF_EXTRACT_MAX_TEXT_BYTES >> 20));
    return pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory while extracting text", in->name);
}

int xb_emit(xb *b, const xin *in, pf_xresult *r, pf_xdoc *doc, pf_error *err) {
    int rc = xb_finish(b, doc);
    if (rc != PF_OK) rc = xb_error(b, in, err);
    xb_free(b);
    if (rc != PF_OK) {
        pf_xdoc_free(doc);
        return rc;
    }
    if (xr_add_doc(r, doc) != PF_OK) return pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", in->name);
    return PF_OK;
}

static bool blank_line(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\f' && s[i] != '\v' && s[i] != '\r') return false;
    return true;
}

void xb_paragraphs(xb *b, const char *s, size_t n) {
    for (size_t i = 0; i < n && !b->err;) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - s) : n;
        if (blank_line(s + i, e - i)) {
            xb_para(b);
        } else {
            xb_line(b);
            xb_text(b, s + i, e - i);
        }
        i = e + 1;
    }
}
