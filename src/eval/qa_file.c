/* Q&A files for `phiforge eval` (format in phiforge.h, "Evaluation: RAG, fine-tuning, or both?"):
 * one JSON object per line, every bad line reported as FILE:LINE: field. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "phiforge.h"

static int bad(pf_error *err, const char *path, int64_t line, const char *field, const char *what) {
    return pf_error_set(err, PF_ERR_FORMAT, "%s:%lld: field '%s': %s", path, (long long)line, field, what);
}

/* A required string field, or an optional one (NULL when absent or null). */
static int get_str(const cJSON *o, const char *field, bool required, char **out, const char *path, int64_t line, pf_error *err) {
    *out = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, field);
    if (!v || cJSON_IsNull(v)) return required ? bad(err, path, line, field, "missing") : PF_OK;
    if (!cJSON_IsString(v) || !v->valuestring) return bad(err, path, line, field, "not a string");
    if (required && !v->valuestring[0]) return bad(err, path, line, field, "empty");
    *out = strdup(v->valuestring);
    return *out ? PF_OK : pf_error_set(err, PF_ERR_NOMEM, "out of memory");
}

static void item_free(pf_qa_item *q) {
    free(q->id), free(q->question), free(q->answer), free(q->source);
    memset(q, 0, sizeof *q);
}

static int parse_line(const char *text, const char *path, int64_t line, pf_qa_item *q, pf_error *err) {
    memset(q, 0, sizeof *q);
    q->line = line;
    cJSON *o = cJSON_Parse(text);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return pf_error_set(err, PF_ERR_FORMAT, "%s:%lld: not a JSON object", path, (long long)line);
    }
    char *type = NULL;
    int rc = get_str(o, "question", true, &q->question, path, line, err);
    if (!rc) rc = get_str(o, "answer", true, &q->answer, path, line, err);
    if (!rc) rc = get_str(o, "source", false, &q->source, path, line, err);
    if (!rc) rc = get_str(o, "type", false, &type, path, line, err);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (!rc && id && cJSON_IsString(id)) q->id = strdup(id->valuestring);
    else if (!rc && id && cJSON_IsNumber(id)) {
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)id->valuedouble);
        q->id = strdup(b);
    } else if (!rc && id && !cJSON_IsNull(id)) rc = bad(err, path, line, "id", "not a string or number");
    else if (!rc) {
        char b[32];
        snprintf(b, sizeof b, "line%lld", (long long)line);
        q->id = strdup(b);
    }
    if (!rc && !q->id) rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
    const cJSON *page = cJSON_GetObjectItemCaseSensitive(o, "page");
    if (!rc && page && !cJSON_IsNull(page)) {
        if (!cJSON_IsNumber(page) || page->valuedouble < 1 || page->valuedouble > 1e6) rc = bad(err, path, line, "page", "not a page number");
        else q->page = (int32_t)page->valuedouble;
    }
    if (!rc) q->unanswerable = type && !strcmp(type, "unanswerable");
    free(type);
    cJSON_Delete(o);
    if (rc) item_free(q);
    return rc;
}

int pf_qa_load(const char *path, pf_qa_set *out, pf_error *err) {
    memset(out, 0, sizeof *out);
    if (!path) return pf_error_set(err, PF_ERR_ARG, "pf_qa_load: NULL path");
    FILE *f = fopen(path, "rb");
    if (!f) return pf_error_set(err, PF_ERR_IO, "%s: cannot open", path);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t len;
    int64_t line = 0, cap_items = 0;
    int rc = PF_OK;
    while (!rc && (len = getline(&buf, &cap, f)) >= 0) {
        line++;
        size_t k = 0;
        while (k < (size_t)len && (buf[k] == ' ' || buf[k] == '\t' || buf[k] == '\r' || buf[k] == '\n')) k++;
        if (k == (size_t)len) continue;
        if (out->n == cap_items) {
            int64_t nc = cap_items ? 2 * cap_items : 64;
            pf_qa_item *v = realloc(out->items, (size_t)nc * sizeof *v);
            if (!v) {
                rc = pf_error_set(err, PF_ERR_NOMEM, "out of memory");
                break;
            }
            out->items = v, cap_items = nc;
        }
        if (!(rc = parse_line(buf, path, line, &out->items[out->n], err))) out->n++;
    }
    if (!rc && ferror(f)) rc = pf_error_set(err, PF_ERR_IO, "%s: read error", path);
    if (!rc && out->n == 0) rc = pf_error_set(err, PF_ERR_FORMAT, "%s: no questions", path);
    free(buf);
    fclose(f);
    if (rc) pf_qa_free(out);
    return rc;
}

void pf_qa_free(pf_qa_set *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n; i++) item_free(&s->items[i]);
    free(s->items);
    memset(s, 0, sizeof *s);
}

bool pf_eval_doc_matches(const char *doc_key, const char *source) {
    if (!doc_key || !source) return false;
    while (source[0] == '.' && source[1] == '/') source += 2;
    size_t n = strlen(doc_key), m = strlen(source);
    if (m == 0 || m > n) return false;
    if (strcmp(doc_key + n - m, source)) return false;
    return n == m || doc_key[n - m - 1] == '/';
}
