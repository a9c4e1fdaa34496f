/* Extraction entry points: type by extension, file reading under the size cap, dispatch to the
 * per-format extractors, result/warning helpers and the text decoder the text formats share. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extract/extract_internal.h"

typedef int (*xfn)(const xin *, pf_xresult *, pf_error *);
static const struct {
    const char *type;
    xfn fn;
} TYPES[] = {
    {"txt", pf_x_txt},   {"md", pf_x_md},   {"html", pf_x_html}, {"pdf", pf_x_pdf},
    {"docx", pf_x_docx}, {"csv", pf_x_csv}, {"json", pf_x_json}, {"jsonl", pf_x_jsonl},
};
static const struct {
    const char *ext, *type;
} EXTS[] = {
    {"txt", "txt"},  {"text", "txt"},   {"md", "md"},       {"markdown", "md"},  {"html", "html"},
    {"htm", "html"}, {"xhtml", "html"}, {"pdf", "pdf"},     {"docx", "docx"},    {"csv", "csv"},
    {"tsv", "csv"},  {"json", "json"},  {"jsonl", "jsonl"}, {"ndjson", "jsonl"},
};

const char *pf_extract_type_of(const char *path) {
    if (!path) return NULL;
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    if (!dot || (slash && dot < slash) || dot == path || dot[-1] == '/') return NULL;
    for (size_t i = 0; i < sizeof EXTS / sizeof EXTS[0]; i++)
        if (!strcasecmp(dot + 1, EXTS[i].ext)) {
            for (size_t k = 0; k < sizeof TYPES / sizeof TYPES[0]; k++) /* the static string */
                if (!strcmp(TYPES[k].type, EXTS[i].type)) return TYPES[k].type;
        }
    return NULL;
}

void pf_xdoc_free(pf_xdoc *d) {
    if (!d) return;
    free(d->key);
    free(d->title);
    free(d->text);
    for (int64_t i = 0; i < d->n_sections; i++) free(d->sections[i].heading);
    free(d->sections);
    free(d->metadata_json);
    memset(d, 0, sizeof *d);
}

void pf_xresult_free(pf_xresult *r) {
    if (!r) return;
    for (int64_t i = 0; i < r->n_docs; i++) pf_xdoc_free(&r->docs[i]);
    free(r->docs);
    for (int64_t i = 0; i < r->n_warnings; i++) free(r->warnings[i]);
    free(r->warnings);
    memset(r, 0, sizeof *r);
}

int xr_add_doc(pf_xresult *r, pf_xdoc *doc) {
    if (!doc->metadata_json && !(doc->metadata_json = strdup("{}"))) goto nomem;
    if ((r->n_docs & (r->n_docs - 1)) == 0) { /* grow at powers of two */
        pf_xdoc *d = realloc(r->docs, (size_t)(r->n_docs ? r->n_docs * 2 : 1) * sizeof *d);
        if (!d) goto nomem;
        r->docs = d;
    }
    r->docs[r->n_docs++] = *doc;
    memset(doc, 0, sizeof *doc);
    return PF_OK;
nomem:
    pf_xdoc_free(doc);
    return PF_ERR_NOMEM;
}

/* At most PF_EXTRACT_MAX_WARNINGS are kept; the slot after them holds a running count of the
 * rest, so a file with a million bad lines costs one line of memory. */
void xr_warn(pf_xresult *r, const char *fmt, ...) {
    char msg[600];
    long long more = 0;
    if (r->n_warnings > PF_EXTRACT_MAX_WARNINGS) {
        if (sscanf(r->warnings[r->n_warnings - 1], "... %lld more", &more) != 1) return;
        snprintf(msg, sizeof msg, "... %lld more warnings not listed", more + 1);
        char *s = strdup(msg);
        if (!s) return;
        free(r->warnings[r->n_warnings - 1]);
        r->warnings[r->n_warnings - 1] = s;
        return;
    }
    if (r->n_warnings == PF_EXTRACT_MAX_WARNINGS) {
        snprintf(msg, sizeof msg, "... 1 more warnings not listed");
    } else {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    if ((r->n_warnings & (r->n_warnings - 1)) == 0) {
        char **w = realloc(r->warnings, (size_t)(r->n_warnings ? r->n_warnings * 2 : 1) * sizeof *w);
        if (!w) return;
        r->warnings = w;
    }
    xbuf b = {0}; /* messages quote document bytes: keep them valid UTF-8 */
    if (pf_utf8_append(&b, msg, strlen(msg), false, NULL) != PF_OK) {
        xbuf_free(&b);
        return;
    }
    r->warnings[r->n_warnings++] = xbuf_take(&b);
}

int pf_extract_memory(const char *doc_type, const char *name, const void *data, size_t size, pf_xresult *out,
                      pf_error *err) {
    if (!out) return pf_error_set(err, PF_ERR_ARG, "pf_extract_memory: out is NULL");
    memset(out, 0, sizeof *out);
    if (!name) name = "(memory)";
    if (!data && size) return pf_error_set(err, PF_ERR_ARG, "%s: data is NULL with size %zu", name, size);
    if ((int64_t)size > PF_EXTRACT_MAX_INPUT_BYTES)
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: %zu bytes exceeds the input cap of %lld MiB", name, size,
                            (long long)(PF_EXTRACT_MAX_INPUT_BYTES >> 20));
    for (size_t i = 0; doc_type && i < sizeof TYPES / sizeof TYPES[0]; i++) {
        if (strcmp(doc_type, TYPES[i].type)) continue;
        int64_t budget = PF_EXTRACT_MAX_TEXT_BYTES;
        xin in = {name, data ? data : (const void *)"", size, &budget};
        out->doc_type = TYPES[i].type;
        int rc = TYPES[i].fn(&in, out, err);
        if (rc != PF_OK) {
            pf_xresult_free(out);
            return rc;
        }
        pf_error_clear(err);
        return PF_OK;
    }
    return pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: unsupported document type '%s'", name,
                        doc_type ? doc_type : "(null)");
}

static int read_file(const char *path, uint8_t **data, size_t *size, pf_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return pf_error_set(err, PF_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return pf_error_set(err, PF_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size > PF_EXTRACT_MAX_INPUT_BYTES) {
        close(fd);
        return pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: %lld bytes exceeds the input cap of %lld MiB", path,
                            (long long)st.st_size, (long long)(PF_EXTRACT_MAX_INPUT_BYTES >> 20));
    }
    size_t n = (size_t)st.st_size, got = 0;
    uint8_t *p = malloc(n ? n : 1);
    if (!p) {
        close(fd);
        return pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    while (got < n) {
        ssize_t k = read(fd, p + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            int e = k < 0 ? errno : 0;
            close(fd);
            free(p);
            return pf_error_set(err, PF_ERR_IO, "%s: read failed at offset %zu (%s)", path, got,
                                e ? strerror(e) : "file shrank while reading");
        }
        got += (size_t)k;
    }
    close(fd);
    *data = p;
    *size = n;
    return PF_OK;
}

int pf_extract_file(const char *path, pf_xresult *out, pf_error *err) {
    if (!out) return pf_error_set(err, PF_ERR_ARG, "pf_extract_file: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return pf_error_set(err, PF_ERR_ARG, "pf_extract_file: path is NULL");
    const char *type = pf_extract_type_of(path);
    if (!type) return pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: unsupported file extension", path);
    uint8_t *data = NULL;
    size_t size = 0;
    int rc = read_file(path, &data, &size, err);
    if (rc != PF_OK) return rc;
    rc = pf_extract_memory(type, path, data, size, out, err);
    free(data);
    return rc;
}

/* ---- text decoding shared by txt, md, csv, json, jsonl ---- */

static int utf16_to_utf8(const uint8_t *s, size_t n, bool be, xbuf *out) {
    for (size_t i = 0; i + 1 < n; i += 2) {
        uint32_t c = be ? (uint32_t)(s[i] << 8 | s[i + 1]) : (uint32_t)(s[i + 1] << 8 | s[i]);
        if (c >= 0xD800 && c < 0xDC00 && i + 3 < n) { /* surrogate pair */
            uint32_t d = be ? (uint32_t)(s[i + 2] << 8 | s[i + 3]) : (uint32_t)(s[i + 3] << 8 | s[i + 2]);
            if (d >= 0xDC00 && d < 0xE000) {
                c = 0x10000 + ((c - 0xD800) << 10) + (d - 0xDC00);
                i += 2;
            }
        }
        if (c >= 0xD800 && c < 0xE000) c = 0xFFFD; /* lone surrogate */
        char u[4];
        size_t k;
        if (c < 0x80)
            u[0] = (char)c, k = 1;
        else if (c < 0x800)
            u[0] = (char)(0xC0 | c >> 6), u[1] = (char)(0x80 | (c & 0x3F)), k = 2;
        else if (c < 0x10000)
            u[0] = (char)(0xE0 | c >> 12), u[1] = (char)(0x80 | ((c >> 6) & 0x3F)), u[2] = (char)(0x80 | (c & 0x3F)),
            k = 3;
        else
            u[0] = (char)(0xF0 | c >> 18), u[1] = (char)(0x80 | ((c >> 12) & 0x3F)),
            u[2] = (char)(0x80 | ((c >> 6) & 0x3F)), u[3] = (char)(0x80 | (c & 0x3F)), k = 4;
        if (xbuf_put(out, u, k) != PF_OK) return PF_ERR_NOMEM;
    }
    return PF_OK;
}

int xtext_decode(const xin *in, bool latin1, pf_xresult *r, char **out, size_t *out_n, pf_error *err) {
    const uint8_t *s = in->data;
    size_t n = in->size, bad = 0;
    xbuf u16 = {0}, dec = {0};
    if (n >= 2 && ((s[0] == 0xFF && s[1] == 0xFE) || (s[0] == 0xFE && s[1] == 0xFF))) {
        if (utf16_to_utf8(s + 2, n - 2, s[0] == 0xFE, &u16) != PF_OK) goto nomem;
        s = (const uint8_t *)u16.p;
        n = u16.n;
    } else if (n >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF) {
        s += 3;
        n -= 3;
    }
    /* Binary files must not be "repaired" into pages of U+FFFD: a NUL byte, or more than 1% of
     * the first 64 KiB being control characters that text does not use, refuses the file. */
    size_t base = u16.p ? 0 : (size_t)(s - in->data), ctl = 0, sample = n < 65536 ? n : 65536;
    const uint8_t *nul = n ? memchr(s, 0, n) : NULL;
    for (size_t i = 0; i < sample; i++)
        ctl += s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' && s[i] != '\f' && s[i] != 0x1B;
    if (nul || (ctl >= 8 && ctl * 100 > sample)) {
        xbuf_free(&u16);
        if (nul)
            return pf_error_set(err, PF_ERR_FORMAT, "%s: binary data (NUL byte at offset %zu), not a text file",
                                in->name, (size_t)(nul - s) + base);
        return pf_error_set(err, PF_ERR_FORMAT, "%s: binary data (%zu control bytes in the first %zu), not a text file",
                            in->name, ctl, sample);
    }
    if (pf_utf8_append(&dec, (const char *)s, n, latin1, &bad) != PF_OK) goto nomem;
    xbuf_free(&u16);
    if (bad)
        xr_warn(r, "%s: not valid UTF-8 (%zu bad bytes); %s", in->name, bad,
                latin1 ? "read them as Latin-1" : "replaced them with U+FFFD");
    size_t w = 0; /* CR LF and lone CR -> LF, in place */
    for (size_t i = 0; i < dec.n; i++) {
        if (dec.p[i] == '\r') {
            dec.p[w++] = '\n';
            if (i + 1 < dec.n && dec.p[i + 1] == '\n') i++;
        } else {
            dec.p[w++] = dec.p[i];
        }
    }
    if (dec.p) dec.p[w] = '\0';
    *out_n = w;
    if (!(*out = xbuf_take(&dec))) goto nomem;
    return PF_OK;
nomem:
    xbuf_free(&u16);
    xbuf_free(&dec);
    return pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory decoding text", in->name);
}
