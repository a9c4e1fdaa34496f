/* JSON Lines (BEIR corpus.jsonl and the like): each line an object with "_id" or "id", an
 * optional "title" and "text" (or "content"/"body") -> one document keyed by the id. Bad lines
 * never fail the file: a line that is not JSON, not an object, lacks an id or text, or repeats
 * an id is skipped with a warning "file:line: reason" and counted in n_skipped. A record with
 * an empty text but a title gets the title as its text, so it can still be found. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "extract/extract_internal.h"

static int one_line(const xin *in, pf_xresult *r, xkeys *keys, char *s, size_t n, int64_t ln, pf_error *err) {
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(s, n, &end, 0);
    const char *rest = end ? end : s;
    while (o && rest < s + n && (*rest == ' ' || *rest == '\t')) rest++;
    const char *why = NULL;
    char reason[160];
    if (!o) {
        xjson_reason(s, end ? end : s, s + n, reason, sizeof reason);
        xr_warn(r, "%s:%lld: not JSON (%s)", in->name, (long long)ln, reason);
    } else if (rest < s + n) {
        xr_warn(r, "%s:%lld: not JSON (data after the value at column %ld)", in->name, (long long)ln,
                (long)(rest - s) + 1);
    } else if (!cJSON_IsObject(o)) {
        why = "not a JSON object";
    } else {
        bool bad;
        char *key = xjson_id(o, &bad);
        const cJSON *text = xjson_text_field(o);
        const char *title = xjson_title(o);
        if (!key)
            why = bad ? "\"_id\"/\"id\" is not a non-empty string or number" : "no \"_id\" or \"id\" field";
        else if (!text)
            why = "no \"text\" field (nor \"content\"/\"body\")";
        else if (!text->valuestring[0] && !title)
            why = "empty text and no title";
        int added = why ? 1 : xkeys_add(keys, key);
        if (added < 0) {
            free(key);
            cJSON_Delete(o);
            return pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory", in->name);
        }
        if (!why && !added) {
            xr_warn(r, "%s:%lld: duplicate id \"%s\"; skipped", in->name, (long long)ln, key);
            r->n_skipped++;
            free(key);
            cJSON_Delete(o);
            return PF_OK;
        }
        if (!why) {
            xb b;
            xb_init(&b, in->budget);
            cJSON *meta = NULL;
            xb_set_root_heading(&b, title);
            if (!text->valuestring[0]) xb_text(&b, title, strlen(title));
            xjson_render(&b, o, &meta);
            pf_xdoc d = {.key = key, .title = title ? pf_utf8_clean_dup(title, strlen(title)) : NULL};
            d.metadata_json = meta ? cJSON_PrintUnformatted(meta) : NULL;
            cJSON_Delete(meta);
            cJSON_Delete(o);
            return xb_emit(&b, in, r, &d, err);
        }
        free(key);
    }
    if (why) xr_warn(r, "%s:%lld: %s; skipped", in->name, (long long)ln, why);
    r->n_skipped++;
    cJSON_Delete(o);
    return PF_OK;
}

int pf_x_jsonl(const xin *in, pf_xresult *r, pf_error *err) {
    char *t;
    size_t n;
    int rc = xtext_decode(in, false, r, &t, &n, err);
    if (rc != PF_OK) return rc;
    xkeys keys = {0};
    int64_t ln = 0;
    for (size_t i = 0; i < n && rc == PF_OK;) {
        char *nl = memchr(t + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - t) : n;
        ln++;
        t[e] = '\0'; /* cJSON gets a terminated line, whatever it does with lengths */
        if (strspn(t + i, " \t") < e - i) rc = one_line(in, r, &keys, t + i, e - i, ln, err);
        i = e + 1;
    }
    xkeys_free(&keys);
    free(t);
    return rc;
}
