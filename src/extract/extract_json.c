/* JSON (cJSON): an array of records, or an object holding one array of records, or a single
 * object. When records carry an id ("_id"/"id") each becomes its own document keyed by it
 * (records without one, or with a repeated one, are skipped with a warning); otherwise the
 * file is one document with a hard-break section per record, headed by the record's title.
 * Record text is its "text"/"content"/"body" field (other fields -> metadata), else all of its
 * fields as "key: value" lines. A .json file that is really JSON Lines is read as such. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract/extract_internal.h"

/* ---- key set (FNV-1a, open addressing) ---- */

static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int xkeys_add(xkeys *k, const char *key) {
    if (2 * (k->n + 1) > k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 64;
        char **slot = calloc(cap, sizeof *slot);
        if (!slot) return PF_ERR_NOMEM;
        for (size_t i = 0; i < k->cap; i++) {
            if (!k->slot[i]) continue;
            size_t j = fnv(k->slot[i]) & (cap - 1);
            while (slot[j]) j = (j + 1) & (cap - 1);
            slot[j] = k->slot[i];
        }
        free(k->slot);
        k->slot = slot;
        k->cap = cap;
    }
    size_t j = fnv(key) & (k->cap - 1);
    for (; k->slot[j]; j = (j + 1) & (k->cap - 1))
        if (!strcmp(k->slot[j], key)) return 0;
    if (!(k->slot[j] = strdup(key))) return PF_ERR_NOMEM;
    k->n++;
    return 1;
}

void xkeys_free(xkeys *k) {
    for (size_t i = 0; i < k->cap; i++) free(k->slot[i]);
    free(k->slot);
    memset(k, 0, sizeof *k);
}

/* ---- records ---- */

char *xjson_id(const cJSON *obj, bool *bad) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(obj, "_id");
    if (!id) id = cJSON_GetObjectItemCaseSensitive(obj, "id");
    *bad = false;
    if (!id) return NULL;
    char buf[64];
    if (cJSON_IsString(id) && id->valuestring[0]) return pf_utf8_clean_dup(id->valuestring, strlen(id->valuestring));
    if (cJSON_IsNumber(id)) {
        double v = id->valuedouble;
        if (v == (double)(long long)v && v > -9e15 && v < 9e15)
            snprintf(buf, sizeof buf, "%lld", (long long)v);
        else
            snprintf(buf, sizeof buf, "%.17g", v);
        return strdup(buf);
    }
    *bad = true;
    return NULL;
}

const cJSON *xjson_text_field(const cJSON *obj) {
    static const char *const names[] = {"text", "content", "body"};
    for (int i = 0; i < 3; i++) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, names[i]);
        if (cJSON_IsString(t)) return t;
    }
    return NULL;
}

const char *xjson_title(const cJSON *obj) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "title");
    return cJSON_IsString(t) && t->valuestring[0] ? t->valuestring : NULL;
}

static bool reserved(const char *k, const cJSON *text) {
    return !strcmp(k, "_id") || !strcmp(k, "id") || !strcmp(k, "title") || (text && !strcmp(k, text->string));
}

void xjson_render(xb *b, const cJSON *obj, cJSON **meta) {
    const cJSON *text = cJSON_IsObject(obj) ? xjson_text_field(obj) : NULL;
    if (!cJSON_IsObject(obj)) { /* a bare value: its text */
        char *s = cJSON_IsString(obj) ? NULL : cJSON_PrintUnformatted(obj);
        const char *v = cJSON_IsString(obj) ? obj->valuestring : s;
        if (v)
            xb_paragraphs(b, v, strlen(v));
        else if (!cJSON_IsString(obj))
            b->err = PF_ERR_NOMEM;
        cJSON_free(s);
        return;
    }
    if (text) {
        xb_paragraphs(b, text->valuestring, strlen(text->valuestring));
        if (!*meta) *meta = cJSON_CreateObject();
    }
    for (const cJSON *f = obj->child; f && !b->err; f = f->next) {
        if (!f->string || reserved(f->string, text)) continue;
        if (text) { /* the text is the document; the rest describes it (no duplicate-key
                     * lookup: it would make records with many fields quadratic) */
            if (*meta) cJSON_AddItemToObject(*meta, f->string, cJSON_Duplicate(f, 1));
            continue;
        }
        char *s = cJSON_IsString(f) ? NULL : cJSON_PrintUnformatted(f);
        const char *v = cJSON_IsString(f) ? f->valuestring : s;
        if (v && *v) {
            xb_line(b);
            xb_text(b, f->string, strlen(f->string));
            xb_text(b, ": ", 2);
            xb_text(b, v, strlen(v));
        }
        cJSON_free(s);
    }
}

void xjson_reason(const char *line, const char *pos, const char *end, char *out, size_t cap) {
    /* cJSON reports only where it stopped; a scan of strings and brackets tells a truncated
     * value from a wrong character, which is what a user needs to fix the line. */
    int depth = 0;
    bool str = false, esc = false;
    for (const char *p = line; p < end; p++) {
        if (str) {
            if (esc)
                esc = false;
            else if (*p == '\\')
                esc = true;
            else if (*p == '"')
                str = false;
        } else if (*p == '"') {
            str = true;
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            depth--;
        }
    }
    long col = (long)(pos - line) + 1;
    if (str)
        snprintf(out, cap, "unterminated string");
    else if (depth > 0 || pos >= end)
        snprintf(out, cap, "unexpected end of input at column %ld", (long)(end - line) + 1);
    else if ((unsigned char)*pos >= 0x20 && (unsigned char)*pos < 0x7F)
        snprintf(out, cap, "unexpected '%c' at column %ld", *pos, col);
    else
        snprintf(out, cap, "unexpected byte 0x%02X at column %ld", (unsigned char)*pos, col);
}

/* ---- .json ---- */

static void line_col(const char *t, const char *pos, long *line, long *col) {
    *line = 1;
    const char *ls = t;
    for (const char *p = t; p < pos; p++)
        if (*p == '\n') (*line)++, ls = p + 1;
    *col = (long)(pos - ls) + 1;
}

/* The records: an array, the first member of an object that is an array holding an object,
 * or the value itself. *outer gets the enclosing object when there is one. */
static const cJSON *records_of(const cJSON *root, const cJSON **outer) {
    *outer = NULL;
    if (cJSON_IsArray(root)) return root;
    if (!cJSON_IsObject(root)) return NULL;
    for (const cJSON *f = root->child; f; f = f->next)
        if (cJSON_IsArray(f) && cJSON_IsObject(f->child)) {
            *outer = root;
            return f;
        }
    return NULL;
}

static int one_doc(const xin *in, pf_xresult *r, const cJSON *root, const cJSON *recs, const cJSON *outer,
                   pf_error *err) {
    xb b;
    xb_init(&b, in->budget);
    cJSON *meta = NULL, *rmeta = NULL;
    const char *title = NULL;
    if (!recs) { /* a single object: its title is the document's, its other fields metadata */
        title = cJSON_IsObject(root) ? xjson_title(root) : NULL;
        xb_set_root_heading(&b, title);
        xjson_render(&b, root, &meta);
    }
    for (const cJSON *rec = recs ? recs->child : NULL; rec && !b.err; rec = rec->next) {
        xb_set_root_heading(&b, NULL);
        xb_hard(&b);
        const char *rt = cJSON_IsObject(rec) ? xjson_title(rec) : NULL;
        if (rt) xb_heading(&b, 0, rt, strlen(rt));
        xjson_render(&b, rec, &rmeta);
        cJSON_Delete(rmeta);
        rmeta = NULL;
    }
    if (!meta) meta = cJSON_CreateObject();
    pf_xdoc d = {0};
    if (outer) title = xjson_title(outer);
    if (title) d.title = pf_utf8_clean_dup(title, strlen(title));
    for (const cJSON *f = outer ? outer->child : NULL; f && meta; f = f->next)
        if (f->string && !cJSON_IsArray(f) && strcmp(f->string, "title"))
            cJSON_AddItemToObject(meta, f->string, cJSON_Duplicate(f, 1));
    d.metadata_json = meta ? cJSON_PrintUnformatted(meta) : NULL;
    cJSON_Delete(meta);
    return xb_emit(&b, in, r, &d, err);
}

static int per_record(const xin *in, pf_xresult *r, const cJSON *recs, pf_error *err) {
    xkeys keys = {0};
    int64_t idx = 0;
    int rc = PF_OK;
    for (const cJSON *rec = recs->child; rec && rc == PF_OK; rec = rec->next) {
        idx++;
        bool bad;
        char *key = cJSON_IsObject(rec) ? xjson_id(rec, &bad) : NULL;
        int added = key ? xkeys_add(&keys, key) : 0;
        if (added <= 0) {
            if (added < 0)
                rc = pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", in->name);
            else if (key)
                xr_warn(r, "%s: record %lld: duplicate id \"%s\"; skipped", in->name, (long long)idx, key);
            else
                xr_warn(r, "%s: record %lld: %s; skipped", in->name, (long long)idx,
                        cJSON_IsObject(rec) ? "no usable \"_id\"/\"id\"" : "not an object");
            r->n_skipped++;
            free(key);
            continue;
        }
        xb b;
        xb_init(&b, in->budget);
        cJSON *meta = NULL;
        const char *title = xjson_title(rec);
        xb_set_root_heading(&b, title);
        xjson_render(&b, rec, &meta);
        pf_xdoc d = {.key = key, .title = title ? pf_utf8_clean_dup(title, strlen(title)) : NULL};
        d.metadata_json = meta ? cJSON_PrintUnformatted(meta) : NULL;
        cJSON_Delete(meta);
        rc = xb_emit(&b, in, r, &d, err);
    }
    xkeys_free(&keys);
    return rc;
}

int pf_x_json(const xin *in, pf_xresult *r, pf_error *err) {
    char *t;
    size_t n;
    int rc = xtext_decode(in, false, r, &t, &n, err);
    if (rc != PF_OK) return rc;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(t, n, &end, 0);
    const char *rest = end ? end : t;
    while (root && rest < t + n && (*rest == ' ' || *rest == '\t' || *rest == '\n')) rest++;
    if (!root || rest < t + n) {
        /* JSON Lines saved as .json: the first line is a whole object and something follows. */
        const char *nl = memchr(t, '\n', n);
        bool jsonl = root && cJSON_IsObject(root) && nl && end <= nl + 1;
        cJSON_Delete(root);
        if (jsonl) {
            free(t);
            xr_warn(r, "%s: one JSON object per line; read as JSON Lines", in->name);
            return pf_x_jsonl(in, r, err);
        }
        long line, col;
        const char *pos = end ? end : t;
        line_col(t, root ? rest : pos, &line, &col);
        char why[160];
        const char *ls = (root ? rest : pos) - (col - 1), *le = memchr(ls, '\n', (size_t)(t + n - ls));
        if (root)
            snprintf(why, sizeof why, "data after the JSON value at column %ld", col);
        else if (!t[strspn(t, " \t\n")])
            snprintf(why, sizeof why, "empty input");
        else
            xjson_reason(ls, pos, le ? le : t + n, why, sizeof why);
        free(t);
        return pf_error_set(err, PF_ERR_FORMAT, "%s:%ld: not JSON (%s)", in->name, line, why);
    }
    free(t);
    const cJSON *outer, *recs = records_of(root, &outer);
    bool ids = false;
    for (const cJSON *rec = recs ? recs->child : NULL; rec && !ids; rec = rec->next)
        ids = cJSON_IsObject(rec) &&
              (cJSON_GetObjectItemCaseSensitive(rec, "_id") || cJSON_GetObjectItemCaseSensitive(rec, "id"));
    rc = ids ? per_record(in, r, recs, err) : one_doc(in, r, root, recs, outer, err);
    cJSON_Delete(root);
    return rc;
}
