/* libFuzzer target for the in-memory extractors we parse ourselves or feed to libxml2/cJSON:
 * Markdown, CSV, JSON, JSON Lines, HTML and plain text. The first input byte picks the format
 * (byte % 6), the rest is the document. Any input must either be refused with a message that
 * names the document, leaving an empty result, or give documents that keep the pf_xdoc
 * contract: NUL-free valid UTF-8, sections ordered, contiguous and covering the text, valid
 * UTF-8 headings/titles/keys, a JSON-object metadata string, and bounded warnings. */
#include <stdint.h>
#include <string.h>

#include "phiforge.h"

#define FUZZ_ASSERT(c)                                                                                                 \
    do {                                                                                                               \
        if (!(c)) __builtin_trap();                                                                                    \
    } while (0)

static const char *const TYPES[6] = {"md", "csv", "json", "jsonl", "html", "txt"};

static void check_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80                ? 1
                     : c >= 0xC2 && c < 0xE0 ? 2
                     : c >= 0xE0 && c < 0xF0 ? 3
                     : c >= 0xF0 && c < 0xF5 ? 4
                                             : 0;
        FUZZ_ASSERT(len && c != 0 && i + len <= n);
        for (size_t k = 1; k < len; k++) FUZZ_ASSERT(((unsigned char)s[i + k] & 0xC0) == 0x80);
        if (c == 0xE0) FUZZ_ASSERT((unsigned char)s[i + 1] >= 0xA0);
        if (c == 0xED) FUZZ_ASSERT((unsigned char)s[i + 1] < 0xA0);
        if (c == 0xF0) FUZZ_ASSERT((unsigned char)s[i + 1] >= 0x90);
        if (c == 0xF4) FUZZ_ASSERT((unsigned char)s[i + 1] < 0x90);
        i += len;
    }
}

static void check_str(const char *s) {
    if (s) check_utf8(s, strlen(s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const char *type = TYPES[data[0] % 6];
    pf_xresult r;
    pf_error err = {0};
    int rc = pf_extract_memory(type, "fuzz", data + 1, size - 1, &r, &err);
    if (rc != PF_OK) {
        FUZZ_ASSERT(rc < 0 && err.code == rc && strncmp(err.msg, "fuzz", 4) == 0);
        FUZZ_ASSERT(r.n_docs == 0 && r.docs == NULL && r.warnings == NULL);
        return 0;
    }
    FUZZ_ASSERT(r.doc_type && strcmp(r.doc_type, type) == 0 && r.n_docs >= 0 && r.n_skipped >= 0);
    FUZZ_ASSERT(r.n_warnings <= PF_EXTRACT_MAX_WARNINGS + 1);
    for (int64_t w = 0; w < r.n_warnings; w++) check_str(r.warnings[w]);
    for (int64_t i = 0; i < r.n_docs; i++) {
        const pf_xdoc *d = &r.docs[i];
        FUZZ_ASSERT(d->text && d->len >= 0 && d->text[d->len] == '\0');
        check_utf8(d->text, (size_t)d->len);
        check_str(d->key);
        check_str(d->title);
        FUZZ_ASSERT(d->metadata_json && d->metadata_json[0] == '{');
        int64_t at = 0;
        for (int64_t k = 0; k < d->n_sections; k++) {
            const pf_xsection *s = &d->sections[k];
            FUZZ_ASSERT(s->start == at && s->end > s->start && s->end <= d->len && s->page == 0);
            check_str(s->heading);
            at = s->end;
        }
        FUZZ_ASSERT(at == d->len && (d->n_sections == 0 || d->sections[0].hard_break));
        if (d->key && r.n_docs <= 256) /* record formats never emit the same key twice */
            for (int64_t j = 0; j < i; j++) FUZZ_ASSERT(!r.docs[j].key || strcmp(r.docs[j].key, d->key) != 0);
    }
    pf_xresult_free(&r);
    return 0;
}
