/* CSV (RFC 4180): quoted fields with "" escapes, embedded delimiters and newlines; the
 * delimiter is sniffed from the first record (',' ';' or tab). The first record is the
 * header; every later row becomes one hard-break section of "column: value" lines (empty
 * values left out) so a chunk never mixes rows and each row keeps its column names.
 * Column names are cut to 128 bytes when rendered: a huge header repeated on every row would
 * otherwise amplify the input without bound. Metadata: {"columns":[...],"delimiter":",","rows":N}. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract/extract_internal.h"

#define CSV_NAME_CAP 128

typedef struct record {
    xbuf buf;    /* field bytes, each field NUL-terminated */
    size_t *off; /* start of each field in buf */
    size_t n, cap;
    int64_t line; /* 1-based line where the record starts */
} record;

typedef struct csv {
    const xin *in;
    pf_xresult *r;
    const char *t;
    size_t n, i;
    int64_t line;
    char delim;
} csv;

static char sniff(const char *t, size_t n) {
    size_t count[3] = {0, 0, 0};
    const char cand[3] = {',', ';', '\t'};
    bool q = false;
    for (size_t i = 0; i < n && (q || t[i] != '\n'); i++) {
        if (t[i] == '"') q = !q;
        for (int k = 0; k < 3 && !q; k++) count[k] += t[i] == cand[k];
    }
    int best = 0;
    for (int k = 1; k < 3; k++)
        if (count[k] > count[best]) best = k;
    return cand[best];
}

static int field_end(record *rec) {
    if (rec->n == rec->cap) {
        size_t cap = rec->cap ? rec->cap * 2 : 16;
        size_t *o = realloc(rec->off, cap * sizeof *o);
        if (!o) return PF_ERR_NOMEM;
        rec->off = o;
        rec->cap = cap;
    }
    return xbuf_putc(&rec->buf, '\0');
}

/* Reads the next record; false at the end of input. */
static bool next_record(csv *c, record *rec, int *rc) {
    rec->n = 0;
    rec->buf.n = 0;
    rec->line = c->line;
    if (c->i >= c->n) return false;
    bool junk_warned = false;
    for (;;) {
        size_t start = rec->buf.n;
        if (c->i < c->n && c->t[c->i] == '"') {
            int64_t qline = c->line;
            c->i++;
            for (;;) {
                if (c->i >= c->n) {
                    xr_warn(c->r, "%s:%lld: unterminated quoted field (opened on this line); read to the end of input",
                            c->in->name, (long long)qline);
                    break;
                }
                char ch = c->t[c->i];
                if (ch == '"' && c->i + 1 < c->n && c->t[c->i + 1] == '"') {
                    c->i += 2;
                } else if (ch == '"') {
                    c->i++;
                    break;
                } else {
                    c->line += ch == '\n';
                    c->i++;
                }
                if (xbuf_putc(&rec->buf, ch)) goto nomem;
            }
            /* RFC 4180 wants a delimiter right after the closing quote; keep stray text. */
            size_t j = c->i;
            while (j < c->n && c->t[j] != c->delim && c->t[j] != '\n') j++;
            if (j > c->i) {
                bool spaces = true;
                for (size_t k = c->i; k < j; k++) spaces &= c->t[k] == ' ' || c->t[k] == '\t';
                if (!spaces && !junk_warned) {
                    xr_warn(c->r, "%s:%lld: text after a closing quote; kept as part of the field", c->in->name,
                            (long long)c->line);
                    junk_warned = true;
                }
                if (!spaces && xbuf_put(&rec->buf, c->t + c->i, j - c->i)) goto nomem;
                c->i = j;
            }
        } else {
            size_t j = c->i;
            while (j < c->n && c->t[j] != c->delim && c->t[j] != '\n') j++;
            if (xbuf_put(&rec->buf, c->t + c->i, j - c->i)) goto nomem;
            c->i = j;
        }
        if (field_end(rec)) goto nomem;
        rec->off[rec->n++] = start;
        if (c->i < c->n && c->t[c->i] == c->delim) {
            c->i++;
            continue;
        }
        if (c->i < c->n) c->i++, c->line++; /* the '\n' */
        return true;
    }
nomem:
    *rc = PF_ERR_NOMEM;
    return false;
}

static bool space(char c) { return c == ' ' || c == '\t' || c == '\n'; }

static void trim(const char **s, size_t *n) {
    while (*n && space(**s)) (*s)++, (*n)--;
    while (*n && space((*s)[*n - 1])) (*n)--;
}

static bool all_empty(const record *rec) {
    for (size_t k = 0; k < rec->n; k++) {
        const char *s = rec->buf.p + rec->off[k];
        size_t n = strlen(s);
        trim(&s, &n);
        if (n) return false;
    }
    return true;
}

/* Byte length of s cut to at most cap bytes on a UTF-8 character boundary. */
static size_t cut(const char *s, size_t n, size_t cap) {
    if (n <= cap) return n;
    while (cap && ((unsigned char)s[cap] & 0xC0) == 0x80) cap--;
    return cap;
}

int pf_x_csv(const xin *in, pf_xresult *r, pf_error *err) {
    char *t;
    size_t n;
    int rc = xtext_decode(in, true, r, &t, &n, err);
    if (rc != PF_OK) return rc;
    csv c = {in, r, t, n, 0, 1, sniff(t, n)};
    record hdr = {0}, row = {0};
    char **names = NULL;
    size_t nh = 0;
    int64_t rows = 0;
    bool mismatch = false;
    xb b;
    xb_init(&b, in->budget);
    cJSON *meta = cJSON_CreateObject(), *cols = cJSON_CreateArray();
    while (next_record(&c, &hdr, &rc) && all_empty(&hdr)) {
    }
    if (rc == PF_OK && hdr.n) {
        if (!(names = calloc(hdr.n, sizeof *names))) rc = PF_ERR_NOMEM;
        for (size_t k = 0; rc == PF_OK && k < hdr.n; k++) {
            const char *s = hdr.buf.p + hdr.off[k];
            size_t len = strlen(s);
            trim(&s, &len);
            char fallback[32];
            if (!len) len = (size_t)snprintf(fallback, sizeof fallback, "column %zu", k + 1), s = fallback;
            if (!(names[k] = pf_utf8_clean_dup(s, len)))
                rc = PF_ERR_NOMEM;
            else if (cols)
                cJSON_AddItemToArray(cols, cJSON_CreateString(names[k]));
            nh++;
        }
    }
    while (rc == PF_OK && !b.err && next_record(&c, &row, &rc)) {
        if (all_empty(&row)) continue;
        rows++;
        if (row.n > nh && !mismatch) {
            xr_warn(r,
                    "%s:%lld: row has %zu fields, the header %zu (extra ones named \"column N\"; not reported again)",
                    in->name, (long long)row.line, row.n, nh);
            mismatch = true;
        }
        xb_hard(&b);
        for (size_t k = 0; k < row.n && !b.err; k++) {
            const char *v = row.buf.p + row.off[k];
            size_t vn = strlen(v);
            trim(&v, &vn);
            if (!vn) continue;
            char fallback[32];
            const char *name = k < nh ? names[k] : fallback;
            if (k >= nh) snprintf(fallback, sizeof fallback, "column %zu", k + 1);
            xb_line(&b);
            xb_text(&b, name, cut(name, strlen(name), CSV_NAME_CAP));
            xb_text(&b, ": ", 2);
            xb_text(&b, v, vn);
        }
    }
    for (size_t k = 0; k < nh; k++) free(names[k]);
    free(names);
    xbuf_free(&hdr.buf);
    xbuf_free(&row.buf);
    free(hdr.off);
    free(row.off);
    free(t);
    pf_xdoc doc = {0};
    if (meta && cols) {
        char d[2] = {c.delim, 0};
        cJSON_AddItemToObject(meta, "columns", cols);
        cols = NULL;
        cJSON_AddStringToObject(meta, "delimiter", d);
        cJSON_AddNumberToObject(meta, "rows", (double)rows);
        doc.metadata_json = cJSON_PrintUnformatted(meta);
    }
    cJSON_Delete(meta);
    cJSON_Delete(cols);
    if (rc != PF_OK) {
        xb_free(&b);
        pf_xdoc_free(&doc);
        return pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", in->name);
    }
    return xb_emit(&b, in, r, &doc, err);
}
