/* TREC test-collection files: documents (<DOC> <DOCNO>), topics (<top> <num> <title>), qrels. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

static char *slurp(const char *path, size_t *len, pf_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) { pf_error_set(err, PF_ERR_IO, "%s: %s", path, strerror(errno)); return NULL; }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        char *nb = realloc(buf, cap * 2 + 1);
        if (!nb) { free(buf); buf = NULL; break; }
        buf = nb; cap *= 2;
    }
    bool bad = buf && ferror(f);
    fclose(f);
    if (!buf) { pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", path); return NULL; }
    if (bad) { free(buf); pf_error_set(err, PF_ERR_IO, "%s: read error", path); return NULL; }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* First occurrence of needle in [p, end), or NULL. A plain loop on purpose: sanitizers check
 * strstr's whole haystack on every call, which turns a 3.5 MB collection into minutes. */
static const char *find(const char *p, const char *end, const char *needle) {
    size_t n = strlen(needle);
    for (; p + n <= end; p++) {
        p = memchr(p, needle[0], (size_t)(end - p));
        if (!p || p + n > end) return NULL;
        if (!memcmp(p, needle, n)) return p;
    }
    return NULL;
}

static size_t line_of(const char *buf, const char *p) {
    size_t line = 1;
    for (const char *q = buf; q < p; q++) line += *q == '\n';
    return line;
}

static char *dup_trim(const char *s, const char *e) {
    while (s < e && isspace((unsigned char)*s)) s++;
    while (e > s && isspace((unsigned char)e[-1])) e--;
    char *r = malloc((size_t)(e - s) + 1);
    if (r) { memcpy(r, s, (size_t)(e - s)); r[e - s] = '\0'; }
    return r;
}

static int push(pf_ir_docs *d, char *id, char *text) {
    if (!id || !text) { free(id); free(text); return PF_ERR_NOMEM; }
    if (d->n == d->cap) {
        size_t nc = d->cap ? d->cap * 2 : 1024;
        pf_ir_doc *nv = realloc(d->v, nc * sizeof *nv);
        if (!nv) { free(id); free(text); return PF_ERR_NOMEM; }
        d->v = nv; d->cap = nc;
    }
    d->v[d->n++] = (pf_ir_doc){id, text};
    return PF_OK;
}

void pf_ir_docs_free(pf_ir_docs *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) { free(d->v[i].id); free(d->v[i].text); }
    free(d->v);
    memset(d, 0, sizeof *d);
}

int pf_ir_read_trec_docs(const char *path, pf_ir_docs *out, pf_error *err) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *buf = slurp(path, &len, err);
    if (!buf) return err ? err->code : PF_ERR_IO;
    int rc = PF_OK;
    const char *p = buf, *eof = buf + len;
    while ((p = find(p, eof, "<DOC>")) != NULL) {
        const char *end = find(p, eof, "</DOC>");
        const char *no = find(p, end ? end : eof, "<DOCNO>");
        const char *no_end = no ? find(no, end, "</DOCNO>") : NULL;
        if (!end || !no || !no_end) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s:%zu: <DOC> without <DOCNO>…</DOCNO> or </DOC>", path,
                              line_of(buf, p));
            break;
        }
        char *id = dup_trim(no + 7, no_end);
        if (id && !*id) {
            free(id);
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s:%zu: empty DOCNO", path, line_of(buf, no));
            break;
        }
        if (push(out, id, dup_trim(no_end + 8, end)) != PF_OK) {
            rc = pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        p = end + 6;
    }
    free(buf);
    if (rc != PF_OK) pf_ir_docs_free(out);
    return rc;
}

/* End of a tag's text: the next '<' (closing tag or the next field). */
static const char *field_end(const char *s) {
    const char *e = strchr(s, '<');
    return e ? e : s + strlen(s);
}

int pf_ir_read_trec_topics(const char *path, pf_ir_docs *out, pf_error *err) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *buf = slurp(path, &len, err);
    if (!buf) return err ? err->code : PF_ERR_IO;
    int rc = PF_OK;
    const char *p = buf, *eof = buf + len;
    while ((p = find(p, eof, "<top>")) != NULL) {
        const char *end = find(p + 5, eof, "</top>");
        if (!end) end = eof;
        const char *num = find(p, end, "<num>"), *title = find(p, end, "<title>");
        if (!num || !title) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s:%zu: topic without <num> or <title>", path, line_of(buf, p));
            break;
        }
        const char *ns = num + 5;
        while (*ns == ' ' || *ns == '\t') ns++;
        if (!strncmp(ns, "Number:", 7)) ns += 7;
        const char *ne = field_end(ns);
        const char *nl = memchr(ns, '\n', (size_t)(ne - ns));
        if (nl) ne = nl;
        char *id = dup_trim(ns, ne);
        if (id && !*id) {
            free(id);
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s:%zu: empty topic number", path, line_of(buf, num));
            break;
        }
        if (push(out, id, dup_trim(title + 7, field_end(title + 7))) != PF_OK) {
            rc = pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        p = end;
    }
    free(buf);
    if (rc != PF_OK) pf_ir_docs_free(out);
    return rc;
}

static int cmp_judgment(const void *a, const void *b) {
    const pf_ir_judgment *x = a, *y = b;
    int c = strcmp(x->qid, y->qid);
    return c ? c : strcmp(x->docid, y->docid);
}

void pf_ir_qrels_free(pf_ir_qrels *q) {
    if (!q) return;
    for (size_t i = 0; i < q->n; i++) { free(q->v[i].qid); free(q->v[i].docid); }
    free(q->v);
    memset(q, 0, sizeof *q);
}

int pf_ir_read_qrels(const char *path, pf_ir_qrels *out, pf_error *err) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *buf = slurp(path, &len, err);
    if (!buf) return err ? err->code : PF_ERR_IO;
    int rc = PF_OK;
    size_t line = 0;
    for (char *s = buf, *next; s && *s; s = next) {
        line++;
        next = strchr(s, '\n');
        if (next) *next++ = '\0';
        char qid[128], iter[64], docid[256];
        int rel, extra;
        int nf = sscanf(s, "%127s %63s %255s %d %n", qid, iter, docid, &rel, &extra);
        if (nf <= 0) continue; /* blank line */
        if (nf != 4) {
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s:%zu: expected 'qid iter docid rel'", path, line);
            break;
        }
        if (out->n == out->cap) {
            size_t nc = out->cap ? out->cap * 2 : 1024;
            pf_ir_judgment *nv = realloc(out->v, nc * sizeof *nv);
            if (!nv) { rc = pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", path); break; }
            out->v = nv; out->cap = nc;
        }
        pf_ir_judgment j = {strdup(qid), strdup(docid), rel};
        if (!j.qid || !j.docid) {
            free(j.qid); free(j.docid);
            rc = pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        out->v[out->n++] = j;
    }
    free(buf);
    if (rc != PF_OK) { pf_ir_qrels_free(out); return rc; }
    if (out->n) qsort(out->v, out->n, sizeof *out->v, cmp_judgment);
    return PF_OK;
}

/* First judgment of qid (index), or q->n. */
static size_t lower_bound_qid(const pf_ir_qrels *q, const char *qid) {
    size_t lo = 0, hi = q->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(q->v[mid].qid, qid) < 0) lo = mid + 1; else hi = mid;
    }
    return lo;
}

int pf_ir_qrels_grade(const pf_ir_qrels *q, const char *qid, const char *docid) {
    pf_ir_judgment key = {(char *)qid, (char *)docid, 0};
    const pf_ir_judgment *j = q->n ? bsearch(&key, q->v, q->n, sizeof *q->v, cmp_judgment) : NULL;
    return j ? j->rel : 0;
}

size_t pf_ir_qrels_n_relevant(const pf_ir_qrels *q, const char *qid) {
    size_t n = 0;
    for (size_t i = lower_bound_qid(q, qid); i < q->n && !strcmp(q->v[i].qid, qid); i++) n += q->v[i].rel > 0;
    return n;
}

int *pf_ir_qrels_grades_sorted(const pf_ir_qrels *q, const char *qid, size_t *n) {
    size_t first = lower_bound_qid(q, qid), cnt = 0;
    while (first + cnt < q->n && !strcmp(q->v[first + cnt].qid, qid)) cnt++;
    int *g = malloc((cnt ? cnt : 1) * sizeof *g);
    *n = 0;
    if (!g) return NULL;
    for (size_t i = 0; i < cnt; i++)
        if (q->v[first + i].rel > 0) g[(*n)++] = q->v[first + i].rel;
    /* insertion sort, descending: a query has tens of judgments */
    for (size_t i = 1; i < *n; i++)
        for (size_t j = i; j > 0 && g[j] > g[j - 1]; j--) { int t = g[j]; g[j] = g[j - 1]; g[j - 1] = t; }
    return g;
}
