/* Shared machinery of the extractors: a growable byte buffer, the document builder that turns
 * "text, paragraph break, heading, page" events into pf_xdoc text + sections, the UTF-8
 * sanitizer, result/warning helpers, and one entry point per format. */
#ifndef PF_EXTRACT_INTERNAL_H
#define PF_EXTRACT_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "phiforge.h"

/* ---- growable bytes, always NUL-terminated when non-empty ---- */
typedef struct xbuf {
    char *p;
    size_t n, cap;
} xbuf;
int xbuf_put(xbuf *b, const void *s, size_t n); /* PF_OK or PF_ERR_NOMEM */
int xbuf_putc(xbuf *b, char c);
void xbuf_free(xbuf *b);
char *xbuf_take(xbuf *b); /* the string (never NULL unless out of memory); b is reset */

/* ---- UTF-8 ---- */
/* Appends s[0..n) to b as valid UTF-8: NUL and invalid bytes become U+FFFD, or with latin1 set,
 * each invalid byte is read as the Latin-1 character of that value. Returns PF_OK/NOMEM;
 * *n_invalid (may be NULL) counts the bytes that were not valid UTF-8. */
int pf_utf8_append(xbuf *b, const char *s, size_t n, bool latin1, size_t *n_invalid);
/* A malloc'd sanitized copy with whitespace runs collapsed to one space and trimmed. */
char *pf_utf8_clean_dup(const char *s, size_t n);

/* ---- the document builder ---- */
#define XB_LEVELS 10 /* heading levels 0..9 (0: DOCX Title; 1..6 HTML/Markdown; 1..9 DOCX) */
typedef struct xb {
    xbuf text;
    pf_xsection *secs;
    int64_t n_secs, cap_secs;
    char *heads[XB_LEVELS];
    int pending;      /* separator owed before the next text: 0 none, 1 "\n", 2 "\n\n"  */
    bool new_section; /* the next text opens a section                                */
    bool next_hard;   /* ...and that section gets hard_break                          */
    bool space;       /* collapsed-whitespace mode owes one space before the next word */
    int32_t page;
    int64_t *budget; /* bytes of text the whole call may still produce                */
    int err;         /* sticky: the first failure; later calls do nothing             */
} xb;

void xb_init(xb *b, int64_t *budget);
void xb_free(xb *b);
void xb_text(xb *b, const char *s, size_t n);    /* verbatim (sanitized)                */
void xb_text_ws(xb *b, const char *s, size_t n); /* HTML-style whitespace collapsing    */
void xb_line(xb *b);                             /* line break                          */
void xb_para(xb *b);                             /* paragraph break: a new section      */
void xb_hard(xb *b);                             /* record/page boundary: hard section  */
void xb_page(xb *b, int32_t page);               /* later text belongs to `page`        */
/* Text whose blank lines separate paragraphs (sections); other line breaks are kept. */
void xb_paragraphs(xb *b, const char *s, size_t n);
/* Sets heading `level` (clearing deeper ones); the heading text becomes its own hard section. */
void xb_heading(xb *b, int level, const char *s, size_t n);
/* Sets the heading path's root without emitting text (record titles). NULL clears it. */
void xb_set_root_heading(xb *b, const char *s);
/* Moves the text and sections into *doc (title/key/metadata left to the caller). */
int xb_finish(xb *b, pf_xdoc *doc);

/* ---- results ---- */
typedef struct xin {
    const char *name; /* file name for messages */
    const uint8_t *data;
    size_t size;
    int64_t *budget; /* text bytes the call may still produce (PF_EXTRACT_MAX_TEXT_BYTES at start) */
} xin;

/* Appends *doc (moved; *doc is zeroed). On failure frees it. */
int xr_add_doc(pf_xresult *r, pf_xdoc *doc);
/* Adds "fmt..." as a warning (callers include "name:line: "); never fails the call. */
void xr_warn(pf_xresult *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void pf_xdoc_free(pf_xdoc *d);
/* Turns builder failure codes into messages naming the file. */
int xb_error(const xb *b, const xin *in, pf_error *err);
/* xb_finish into *doc (whose key/title/metadata the caller set), xb_free, then xr_add_doc.
 * *doc is consumed either way. */
int xb_emit(xb *b, const xin *in, pf_xresult *r, pf_xdoc *doc, pf_error *err);

/* Decodes a text file for txt/md/csv/json(l): strips a UTF-8 BOM, transcodes UTF-16 with a
 * BOM, refuses binary data (NUL bytes), normalises CR LF / CR to LF, and repairs invalid UTF-8
 * (as Latin-1 when latin1, else U+FFFD) with one warning. *out is malloc'd, NUL-terminated. */
int xtext_decode(const xin *in, bool latin1, pf_xresult *r, char **out, size_t *out_n, pf_error *err);

/* ---- formats ---- */
int pf_x_txt(const xin *in, pf_xresult *r, pf_error *err);
int pf_x_md(const xin *in, pf_xresult *r, pf_error *err);
int pf_x_html(const xin *in, pf_xresult *r, pf_error *err);
int pf_x_pdf(const xin *in, pf_xresult *r, pf_error *err);
int pf_x_docx(const xin *in, pf_xresult *r, pf_error *err);
int pf_x_csv(const xin *in, pf_xresult *r, pf_error *err);
int pf_x_json(const xin *in, pf_xresult *r, pf_error *err);
int pf_x_jsonl(const xin *in, pf_xresult *r, pf_error *err);

/* ---- JSON records (extract_json.c, shared with extract_jsonl.c) ---- */
struct cJSON;
/* A set of document keys, to refuse duplicates. xkeys_add: 1 added, 0 already there, <0 NOMEM. */
typedef struct xkeys {
    char **slot;
    size_t cap, n;
} xkeys;
int xkeys_add(xkeys *k, const char *key);
void xkeys_free(xkeys *k);
/* The record's "_id" or "id" (string, or number printed as an integer when it is one); NULL if
 * absent or of another type; *bad set when present but unusable. Malloc'd. */
char *xjson_id(const struct cJSON *obj, bool *bad);
/* The first string field of "text", "content", "body"; NULL if none. */
const struct cJSON *xjson_text_field(const struct cJSON *obj);
/* The record's "title" string or NULL (borrowed). */
const char *xjson_title(const struct cJSON *obj);
/* Record body into the builder: the text field's paragraphs, or every field as "key: value"
 * lines when there is none. Fields other than id/title/text go to *meta (an object, created
 * here) when the text field was used. */
void xjson_render(xb *b, const struct cJSON *obj, struct cJSON **meta);
/* "unexpected 'x' at column 7" for a cJSON failure at pos in [line, end). */
void xjson_reason(const char *line, const char *pos, const char *end, char *out, size_t cap);

/* Markdown inline markup -> plain text (emphasis markers, links, code spans, inline HTML). */
int pf_md_inline(const char *s, size_t n, xbuf *out);

/* libxml2 must be initialised once before use from several threads. */
void pf_x_xml_init(void);

#endif
