/* HTML: libxml2's HTML parser (recovering from broken markup, decoding entities, honouring the
 * declared charset), then one iterative walk of the tree (deeply nested pages cannot exhaust
 * the stack): boilerplate elements are dropped, h1-h6 set heading paths, block elements give
 * paragraph breaks, table rows become "a | b" lines, <pre> keeps its whitespace, the rest is
 * whitespace-collapsed. The title is <title>, else the first h1. */
#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "extract/extract_internal.h"

/* libxml2 (2.9) documents that xmlInitParser must run once before threads use the parser;
 * the once-flag is the only static state of the extractors and never changes afterwards. */
static pthread_once_t xml_once = PTHREAD_ONCE_INIT;
static void xml_init_once(void) { xmlInitParser(); }
void pf_x_xml_init(void) { pthread_once(&xml_once, xml_init_once); }

typedef struct hx {
    xb b;
    int cell, pre; /* depth inside table cells / <pre>                 */
    int article;   /* depth inside article/main/section (keeps <header>) */
    xmlNode *cap;  /* heading element whose text is being captured     */
    xbuf capbuf;
    char *title, *h1;
} hx;

static bool is(const xmlNode *n, const char *name) { return !xmlStrcasecmp(n->name, (const xmlChar *)name); }

static bool in_any(const xmlNode *n, const char *const *names) {
    for (; names && *names; names++)
        if (is(n, *names)) return true;
    return false;
}

static const char *const DROP[] = {"script", "style",  "noscript", "nav",    "template", "footer", "svg",    "math",
                                   "iframe", "object", "embed",    "canvas", "select",   "button", "dialog", NULL};
static const char *const BLOCK[] = {"address", "article", "aside",  "blockquote", "body",    "center",   "dd",
                                    "details", "dir",     "div",    "dl",         "dt",      "fieldset", "figcaption",
                                    "figure",  "form",    "hgroup", "hr",         "html",    "legend",   "li",
                                    "main",    "menu",    "ol",     "p",          "section", "summary",  "table",
                                    "ul",      "caption", "tr",     "thead",      "tbody",   "tfoot",    NULL};
static const char *const ARTICLE[] = {"article", "main", "section", NULL};

static bool hidden(const xmlNode *n) {
    if (xmlHasProp((xmlNode *)n, (const xmlChar *)"hidden")) return true;
    xmlChar *a = xmlGetProp(n, (const xmlChar *)"aria-hidden");
    bool h = a && !xmlStrcasecmp(a, (const xmlChar *)"true");
    xmlFree(a);
    return h;
}

/* Dropped subtrees: boilerplate, hidden elements, and <header> unless it is an article's own
 * header (which carries the article's heading). */
static bool dropped(const hx *h, const xmlNode *n) {
    return in_any(n, DROP) || hidden(n) || (is(n, "header") && !h->article);
}

static int heading_level(const xmlNode *n) {
    const char *s = (const char *)n->name;
    return (s[0] == 'h' || s[0] == 'H') && s[1] >= '1' && s[1] <= '6' && !s[2] ? s[1] - '0' : 0;
}

static void brk(hx *h, bool para) { /* inside a table cell blocks only separate words */
    if (h->cap || h->cell) {
        if (h->cap)
            xbuf_putc(&h->capbuf, ' ');
        else if (h->b.text.n && h->b.text.p[h->b.text.n - 1] != ' ')
            h->b.space = true;
    } else if (para) {
        xb_para(&h->b);
    } else {
        xb_line(&h->b);
    }
}

static bool prev_cell(const xmlNode *n) {
    for (const xmlNode *p = n->prev; p; p = p->prev)
        if (p->type == XML_ELEMENT_NODE) return is(p, "td") || is(p, "th");
    return false;
}

/* Returns whether to walk the children. */
static bool enter(hx *h, xmlNode *n) {
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
        const char *s = (const char *)n->content;
        size_t len = s ? strlen(s) : 0;
        if (h->cap)
            xbuf_put(&h->capbuf, s, len);
        else if (h->pre)
            xb_text(&h->b, s, len);
        else
            xb_text_ws(&h->b, s, len);
        return false;
    }
    if (n->type != XML_ELEMENT_NODE) return n->type == XML_HTML_DOCUMENT_NODE || n->type == XML_DOCUMENT_NODE;
    if (dropped(h, n)) return false;
    h->article += in_any(n, ARTICLE);
    if (is(n, "title")) {
        if (!h->title) {
            xmlChar *t = xmlNodeGetContent(n);
            h->title = t ? pf_utf8_clean_dup((const char *)t, strlen((const char *)t)) : NULL;
            xmlFree(t);
            if (h->title && !*h->title) free(h->title), h->title = NULL;
        }
        return false;
    }
    if (heading_level(n) && !h->cap) {
        h->cap = n;
        h->capbuf.n = 0;
        return true;
    }
    if (is(n, "br")) {
        brk(h, false);
    } else if (is(n, "td") || is(n, "th")) {
        if (!h->cap && prev_cell(n) && !h->cell) {
            h->b.space = false;
            xb_text(&h->b, " | ", 3);
        }
        h->cell++;
    } else if (is(n, "pre")) {
        brk(h, true);
        h->pre++;
    } else if (in_any(n, BLOCK)) {
        brk(h, !(is(n, "li") || is(n, "dt") || is(n, "dd") || is(n, "tr")));
    }
    return true;
}

static void leave(hx *h, xmlNode *n) {
    if (n->type != XML_ELEMENT_NODE || dropped(h, n) || is(n, "title")) return;
    h->article -= in_any(n, ARTICLE);
    if (h->cap == n) {
        int level = heading_level(n);
        if (level == 1 && !h->h1) h->h1 = pf_utf8_clean_dup(h->capbuf.p ? h->capbuf.p : "", h->capbuf.n);
        if (h->cell) {
            xb_text_ws(&h->b, h->capbuf.p, h->capbuf.n);
        } else {
            xb_heading(&h->b, level, h->capbuf.p ? h->capbuf.p : "", h->capbuf.n);
        }
        h->cap = NULL;
    } else if (is(n, "td") || is(n, "th")) {
        h->cell--;
    } else if (is(n, "pre")) {
        h->pre--;
        brk(h, true);
    } else if (in_any(n, BLOCK)) {
        brk(h, !(is(n, "li") || is(n, "dt") || is(n, "dd") || is(n, "tr")));
    }
}

static void walk(hx *h, xmlNode *root) {
    xmlNode *n = root;
    while (n && !h->b.err) {
        if (enter(h, n) && n->children) {
            n = n->children;
            continue;
        }
        for (;;) {
            leave(h, n);
            if (n == root) return;
            if (n->next) {
                n = n->next;
                break;
            }
            n = n->parent;
        }
    }
}

int pf_x_html(const xin *in, pf_xresult *r, pf_error *err) {
    bool bom16 =
        in->size >= 2 && ((in->data[0] == 0xFF && in->data[1] == 0xFE) || (in->data[0] == 0xFE && in->data[1] == 0xFF));
    const void *nul = in->size ? memchr(in->data, 0, in->size) : NULL;
    if (nul && !bom16)
        return pf_error_set(err, PF_ERR_FORMAT, "%s: binary data (NUL byte at offset %zu), not HTML", in->name,
                            (size_t)((const uint8_t *)nul - in->data));
    hx h = {0};
    xb_init(&h.b, in->budget);
    xmlDoc *doc = NULL;
    if (in->size) {
        pf_x_xml_init();
        htmlParserCtxtPtr ctxt = htmlNewParserCtxt();
        if (!ctxt) return pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory (HTML parser)", in->name);
        /* XML_PARSE_HUGE lifts libxml2's depth limit of 256, past which it stops parsing and
         * silently drops the rest (legacy pages nest unclosed <font>/<b> that deep); the walk
         * below is iterative and the input is capped, so depth costs nothing dangerous.
         * HTML_PARSE_NOIMPLIED stays off: without the implied <body>, libxml2 2.9 nests a
         * fragment's later elements inside its first one (and a <header> would eat the page). */
        doc = htmlCtxtReadMemory(ctxt, (const char *)in->data, (int)in->size, in->name, NULL,
                                 HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET |
                                     XML_PARSE_HUGE);
        htmlFreeParserCtxt(ctxt);
        if (!doc) return pf_error_set(err, PF_ERR_FORMAT, "%s: not parseable as HTML (libxml2 gave up)", in->name);
        walk(&h, (xmlNode *)doc);
        xmlFreeDoc(doc);
    }
    xbuf_free(&h.capbuf);
    pf_xdoc d = {.title = h.title ? h.title : h.h1};
    if (h.title) free(h.h1);
    if (d.title && !*d.title) free(d.title), d.title = NULL;
    return xb_emit(&h.b, in, r, &d, err);
}
