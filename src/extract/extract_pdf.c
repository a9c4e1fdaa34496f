/* PDF via poppler-glib: the text of each page (poppler's reading order) is one section with
 * its 1-based page number and a hard break, so no chunk straddles two pages and citations can
 * name the page. Pages without text (scans) are reported in a warning rather than silently
 * yielding nothing. Title and other fields come from the document information dictionary. */
#include <cjson/cJSON.h>
#include <poppler.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "extract/extract_internal.h"

/* poppler-glib creates its process-wide GlobalParams lazily, unguarded, on the first document
 * opened; ingestion opens PDFs from several threads, so that first open happens once, here. */
static pthread_once_t poppler_once = PTHREAD_ONCE_INIT;
static void poppler_init_once(void) {
    static const char stub[] = "%PDF-1.0\n";
    GBytes *b = g_bytes_new_static(stub, sizeof stub - 1);
    GError *ge = NULL;
    PopplerDocument *d = poppler_document_new_from_bytes(b, NULL, &ge);
    if (d) g_object_unref(d);
    if (ge) g_error_free(ge);
    g_bytes_unref(b);
}

static void meta_str(cJSON *meta, const char *key, gchar *v) {
    if (v && *v) {
        char *c = pf_utf8_clean_dup(v, strlen(v));
        if (c && *c) cJSON_AddStringToObject(meta, key, c);
        free(c);
    }
    g_free(v);
}

/* Page text with trailing whitespace dropped. */
static void add_page(xb *b, int page, const char *t) {
    size_t n = t ? strlen(t) : 0;
    while (n && (t[n - 1] == '\n' || t[n - 1] == ' ' || t[n - 1] == '\t' || t[n - 1] == '\f' || t[n - 1] == '\r')) n--;
    xb_page(b, page);
    xb_text(b, t, n);
}

int pf_x_pdf(const xin *in, pf_xresult *r, pf_error *err) {
    if (in->size == 0) return pf_error_set(err, PF_ERR_FORMAT, "%s: empty file, not a PDF", in->name);
    /* Readers accept the header anywhere in the first 1024 bytes; anything else is not a PDF. */
    size_t head = in->size < 1024 ? in->size : 1024;
    if (!memmem(in->data, head, "%PDF-", 5))
        return pf_error_set(err, PF_ERR_FORMAT, "%s: not a PDF (no %%PDF- header in the first %zu bytes)", in->name,
                            head);
    pthread_once(&poppler_once, poppler_init_once);
    GError *ge = NULL;
    GBytes *bytes = g_bytes_new_static(in->data, in->size);
    PopplerDocument *doc = poppler_document_new_from_bytes(bytes, NULL, &ge);
    g_bytes_unref(bytes);
    if (!doc) {
        int rc;
        if (ge && ge->domain == POPPLER_ERROR && ge->code == POPPLER_ERROR_ENCRYPTED)
            rc = pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: password-protected PDF (encrypted; no password given)",
                              in->name);
        else
            rc = pf_error_set(err, PF_ERR_FORMAT, "%s: damaged PDF (poppler: %s)", in->name,
                              ge && ge->message ? ge->message : "unknown error");
        if (ge) g_error_free(ge);
        return rc;
    }
    int n = poppler_document_get_n_pages(doc);
    xb b;
    xb_init(&b, in->budget);
    int64_t empty = 0, first_empty = 0;
    for (int i = 0; i < n && !b.err; i++) {
        PopplerPage *page = poppler_document_get_page(doc, i);
        char *t = page ? poppler_page_get_text(page) : NULL;
        size_t before = b.text.n;
        add_page(&b, i + 1, t);
        if (b.text.n == before && !empty++) first_empty = i + 1;
        g_free(t);
        if (page) g_object_unref(page);
    }
    if (empty == n && n > 0)
        xr_warn(r, "%s: no text on any of its %d pages (a scan? OCR is not supported)", in->name, n);
    else if (empty)
        xr_warn(r, "%s: %lld of %d pages have no text (first: page %lld)", in->name, (long long)empty, n,
                (long long)first_empty);
    cJSON *meta = cJSON_CreateObject();
    if (meta) {
        cJSON_AddNumberToObject(meta, "pages", n);
        meta_str(meta, "author", poppler_document_get_author(doc));
        meta_str(meta, "subject", poppler_document_get_subject(doc));
        meta_str(meta, "keywords", poppler_document_get_keywords(doc));
        meta_str(meta, "creator", poppler_document_get_creator(doc));
        meta_str(meta, "producer", poppler_document_get_producer(doc));
    }
    gchar *title = poppler_document_get_title(doc);
    pf_xdoc d = {0};
    if (title && *title) d.title = pf_utf8_clean_dup(title, strlen(title));
    if (d.title && !*d.title) free(d.title), d.title = NULL;
    g_free(title);
    g_object_unref(doc);
    d.metadata_json = meta ? cJSON_PrintUnformatted(meta) : NULL;
    cJSON_Delete(meta);
    return xb_emit(&b, in, r, &d, err);
}
