/* DOCX via libzip + libxml2: word/document.xml paragraphs become sections; paragraphs whose
 * style is a heading (Heading1..9 / Title, found through word/styles.xml so renamed and
 * localised styles work, or an outline level) set heading paths; tables become "a | b" rows;
 * deleted revisions, field codes and fallback copies of text boxes are skipped. The title is
 * docProps/core.xml's dc:title, else the first Title-styled paragraph, else the first Heading 1.
 * Every part is read through a cap (PF_EXTRACT_MAX_ZIP_PART_BYTES) whatever the zip header
 * claims, so a decompression bomb stops at the cap with an error. */
#include <cjson/cJSON.h>
#include <libxml/parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zip.h>

#include "extract/extract_internal.h"

typedef struct style_map {
    char **id;
    int *level;
    size_t n;
} style_map;

typedef struct dx {
    xb b;
    style_map sm;
    int cell;
    xmlNode *cap; /* heading paragraph being captured */
    int cap_level;
    xbuf capbuf;
    char *title_style, *h1;
} dx;

/* Reads a zip member into memory (NUL-terminated). PF_ERR_NOT_FOUND when absent. */
static int read_part(zip_t *z, const xin *in, const char *part, char **out, size_t *out_n, pf_error *err) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat(z, part, 0, &st) != 0) return pf_error_set(err, PF_ERR_NOT_FOUND, "%s: no %s", in->name, part);
    if ((st.valid & ZIP_STAT_SIZE) && st.size > (zip_uint64_t)PF_EXTRACT_MAX_ZIP_PART_BYTES) goto bomb;
    zip_file_t *f = zip_fopen(z, part, 0);
    if (!f)
        return pf_error_set(err, PF_ERR_FORMAT, "%s: cannot open %s in the archive (%s)", in->name, part,
                            zip_strerror(z));
    xbuf b = {0};
    char chunk[65536];
    for (;;) {
        zip_int64_t k = zip_fread(f, chunk, sizeof chunk);
        if (k < 0) {
            int rc = pf_error_set(err, PF_ERR_FORMAT, "%s: %s is corrupt (%s)", in->name, part, zip_file_strerror(f));
            zip_fclose(f);
            xbuf_free(&b);
            return rc;
        }
        if (k == 0) break;
        if ((int64_t)(b.n + (size_t)k) > PF_EXTRACT_MAX_ZIP_PART_BYTES) {
            zip_fclose(f);
            xbuf_free(&b);
            goto bomb;
        }
        if (xbuf_put(&b, chunk, (size_t)k) != PF_OK) {
            zip_fclose(f);
            xbuf_free(&b);
            return pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory reading %s", in->name, part);
        }
    }
    zip_fclose(f);
    *out_n = b.n;
    *out = xbuf_take(&b);
    if (!*out) return pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory reading %s", in->name, part);
    return PF_OK;
bomb:
    return pf_error_set(err, PF_ERR_UNSUPPORTED, "%s: %s expands beyond the cap of %lld MiB (decompression bomb?)",
                        in->name, part, (long long)(PF_EXTRACT_MAX_ZIP_PART_BYTES >> 20));
}

static int parse_xml(const xin *in, const char *part, const char *buf, size_t n, xmlDoc **out, pf_error *err) {
    pf_x_xml_init();
    xmlParserCtxt *ctxt = xmlNewParserCtxt();
    if (!ctxt) return pf_error_set(err, PF_ERR_NOMEM, "%s: out of memory (XML parser)", in->name);
    /* No entity substitution, no DTD loading, no network: a DOCX part has no business with them. */
    *out = xmlCtxtReadMemory(ctxt, buf, (int)n, part, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    int rc = PF_OK;
    if (!*out) {
        const xmlError *e = xmlCtxtGetLastError(ctxt);
        char msg[200] = "unknown error";
        if (e && e->message) snprintf(msg, sizeof msg, "%s", e->message);
        for (size_t k = strlen(msg); k && (msg[k - 1] == '\n' || msg[k - 1] == ' '); k--) msg[k - 1] = '\0';
        rc = pf_error_set(err, PF_ERR_FORMAT, "%s: %s: malformed XML at line %d (%s)", in->name, part, e ? e->line : 0,
                          msg);
    }
    xmlFreeParserCtxt(ctxt);
    return rc;
}

static bool is(const xmlNode *n, const char *local) {
    return n && n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, local);
}

static xmlNode *child(const xmlNode *n, const char *local) {
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (is(c, local)) return c;
    return NULL;
}

/* w:val and friends: attributes are namespaced; compare the local name only. */
static char *attr(const xmlNode *n, const char *local) {
    for (xmlAttr *a = n ? n->properties : NULL; a; a = a->next)
        if (!strcmp((const char *)a->name, local)) {
            xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
            char *s = v ? strdup((const char *)v) : NULL;
            xmlFree(v);
            return s;
        }
    return NULL;
}

/* Heading level of a style name or id: "heading 3" / "Heading3" -> 3, "Title" -> 0, else -1. */
static int level_of_name(const char *s) {
    if (!s) return -1;
    if (!strcasecmp(s, "title")) return 0;
    if (strncasecmp(s, "heading", 7)) return -1;
    s += 7;
    if (*s == ' ') s++;
    return s[0] >= '1' && s[0] <= '9' && !s[1] ? s[0] - '0' : -1;
}

static int outline_level(const xmlNode *ppr) {
    char *v = attr(child(ppr, "outlineLvl"), "val");
    int l = v && v[0] >= '0' && v[0] <= '8' && !v[1] ? v[0] - '0' + 1 : -1;
    free(v);
    return l;
}

static void load_styles(dx *d, xmlDoc *doc) {
    xmlNode *root = xmlDocGetRootElement(doc);
    for (xmlNode *s = root ? root->children : NULL; s; s = s->next) {
        /* Real documents define a few hundred styles; the cap keeps the linear lookup per
         * paragraph cheap whatever a hostile styles.xml holds. */
        if (!is(s, "style") || d->sm.n >= 4096) continue;
        char *id = attr(s, "styleId"), *name = attr(child(s, "name"), "val");
        int level = level_of_name(name);
        if (level < 0) level = outline_level(child(s, "pPr"));
        free(name);
        char **ids = realloc(d->sm.id, (d->sm.n + 1) * sizeof *ids);
        if (ids) d->sm.id = ids;
        int *lv = realloc(d->sm.level, (d->sm.n + 1) * sizeof *lv);
        if (lv) d->sm.level = lv;
        if (!id || !ids || !lv) {
            free(id);
            continue;
        }
        d->sm.id[d->sm.n] = id;
        d->sm.level[d->sm.n++] = level;
    }
}

/* -1 for body text, 0 for Title, 1..9 for headings. */
static int para_level(const dx *d, const xmlNode *p) {
    xmlNode *ppr = child(p, "pPr");
    int l = outline_level(ppr);
    if (l >= 0) return l;
    char *id = attr(child(ppr, "pStyle"), "val");
    if (!id) return -1;
    for (size_t i = 0; i < d->sm.n; i++)
        if (!strcmp(d->sm.id[i], id)) {
            free(id);
            return d->sm.level[i];
        }
    l = level_of_name(id); /* no styles.xml: Word's built-in ids */
    free(id);
    return l;
}

static const char *const SKIP[] = {"pPr",
                                   "rPr",
                                   "sectPr",
                                   "tblPr",
                                   "trPr",
                                   "tcPr",
                                   "delText",
                                   "instrText",
                                   "del",
                                   "moveFrom",
                                   "Fallback",
                                   "footnoteReference",
                                   "endnoteReference",
                                   NULL};

static void text(dx *d, const char *s, size_t n) {
    if (d->cap) {
        if (xbuf_put(&d->capbuf, s, n)) d->b.err = PF_ERR_NOMEM;
    } else {
        xb_text(&d->b, s, n);
    }
}

static bool prev_cell(const xmlNode *n) {
    for (const xmlNode *p = n->prev; p; p = p->prev)
        if (p->type == XML_ELEMENT_NODE) return is(p, "tc");
    return false;
}

static void para_break(dx *d) {
    if (d->cell) { /* paragraphs inside a cell: one space, none right after the " | " */
        if (d->b.text.n && d->b.text.p[d->b.text.n - 1] != ' ') d->b.space = true;
    } else {
        xb_para(&d->b);
    }
}

static bool enter(dx *d, xmlNode *n) {
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
        if (is(n->parent, "t") && n->content) text(d, (const char *)n->content, strlen((const char *)n->content));
        return false;
    }
    if (n->type != XML_ELEMENT_NODE) return n->type == XML_DOCUMENT_NODE;
    for (const char *const *s = SKIP; *s; s++)
        if (!strcmp((const char *)n->name, *s)) return false;
    if (is(n, "p")) {
        int l = para_level(d, n);
        if (l >= 0 && !d->cap && !d->cell) {
            d->cap = n;
            d->cap_level = l;
            d->capbuf.n = 0;
        } else {
            para_break(d);
        }
    } else if (is(n, "tab")) {
        text(d, "\t", 1);
    } else if (is(n, "br") || is(n, "cr")) {
        if (d->cap)
            text(d, " ", 1);
        else if (!d->cell)
            xb_line(&d->b);
    } else if (is(n, "noBreakHyphen")) {
        text(d, "-", 1);
    } else if (is(n, "tbl")) {
        if (!d->cell) xb_para(&d->b);
    } else if (is(n, "tr")) {
        if (!d->cell) xb_line(&d->b);
    } else if (is(n, "tc")) {
        if (!d->cell && prev_cell(n)) {
            d->b.space = false;
            xb_text(&d->b, " | ", 3);
        }
        d->cell++;
    }
    return true;
}

static void leave(dx *d, xmlNode *n) {
    if (n->type != XML_ELEMENT_NODE) return;
    if (d->cap == n) {
        d->cap = NULL;
        char *h = pf_utf8_clean_dup(d->capbuf.p ? d->capbuf.p : "", d->capbuf.n);
        if (!h) {
            d->b.err = PF_ERR_NOMEM;
            return;
        }
        if (*h && d->cap_level == 0 && !d->title_style) d->title_style = strdup(h);
        if (*h && d->cap_level == 1 && !d->h1) d->h1 = strdup(h);
        xb_heading(&d->b, d->cap_level, h, strlen(h));
        free(h);
    } else if (is(n, "p")) {
        para_break(d);
    } else if (is(n, "tc")) {
        d->cell--;
    } else if (is(n, "tbl")) {
        if (!d->cell) xb_para(&d->b);
    }
}

static void walk(dx *d, xmlNode *root) {
    xmlNode *n = root;
    while (n && !d->b.err) {
        if (enter(d, n) && n->children) {
            n = n->children;
            continue;
        }
        for (;;) {
            leave(d, n);
            if (n == root) return;
            if (n->next) {
                n = n->next;
                break;
            }
            n = n->parent;
        }
    }
}

/* docProps/core.xml: dc:title and friends, all optional. */
static void core_props(zip_t *z, const xin *in, char **title, cJSON *meta) {
    char *buf;
    size_t n;
    xmlDoc *doc;
    if (read_part(z, in, "docProps/core.xml", &buf, &n, NULL) != PF_OK) return;
    if (parse_xml(in, "docProps/core.xml", buf, n, &doc, NULL) == PF_OK) {
        xmlNode *root = xmlDocGetRootElement(doc);
        for (xmlNode *c = root ? root->children : NULL; c; c = c->next) {
            if (c->type != XML_ELEMENT_NODE) continue;
            const char *k = (const char *)c->name;
            if (strcmp(k, "title") && strcmp(k, "creator") && strcmp(k, "subject") && strcmp(k, "description") &&
                strcmp(k, "keywords"))
                continue;
            xmlChar *v = xmlNodeGetContent(c);
            char *s = v ? pf_utf8_clean_dup((const char *)v, strlen((const char *)v)) : NULL;
            xmlFree(v);
            if (s && *s && !strcmp(k, "title") && !*title)
                *title = strdup(s);
            else if (s && *s && meta && !cJSON_GetObjectItemCaseSensitive(meta, k))
                cJSON_AddStringToObject(meta, strcmp(k, "creator") ? k : "author", s);
            free(s);
        }
        xmlFreeDoc(doc);
    }
    free(buf);
}

int pf_x_docx(const xin *in, pf_xresult *r, pf_error *err) {
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(in->data, in->size, 0, &ze);
    zip_t *z = src ? zip_open_from_source(src, ZIP_RDONLY, &ze) : NULL;
    if (!z) {
        int rc = pf_error_set(err, PF_ERR_FORMAT, "%s: not a DOCX file: the zip archive cannot be read (%s)", in->name,
                              zip_error_strerror(&ze));
        if (src) zip_source_free(src);
        zip_error_fini(&ze);
        return rc;
    }
    zip_error_fini(&ze);
    dx d = {0};
    xb_init(&d.b, in->budget);
    char *buf = NULL, *title = NULL;
    size_t n = 0;
    xmlDoc *doc = NULL;
    cJSON *meta = cJSON_CreateObject();
    int rc = read_part(z, in, "word/document.xml", &buf, &n, err);
    if (rc == PF_ERR_NOT_FOUND)
        rc = pf_error_set(err, PF_ERR_FORMAT, "%s: not a Word document (the zip has no word/document.xml)", in->name);
    if (rc == PF_OK) rc = parse_xml(in, "word/document.xml", buf, n, &doc, err);
    free(buf);
    if (rc == PF_OK) {
        char *sbuf;
        size_t sn;
        xmlDoc *sdoc;
        if (read_part(z, in, "word/styles.xml", &sbuf, &sn, NULL) == PF_OK) {
            if (parse_xml(in, "word/styles.xml", sbuf, sn, &sdoc, NULL) == PF_OK) {
                load_styles(&d, sdoc);
                xmlFreeDoc(sdoc);
            } else {
                xr_warn(r, "%s: word/styles.xml is malformed; headings found by style id only", in->name);
            }
            free(sbuf);
        }
        walk(&d, (xmlNode *)doc);
        xmlFreeDoc(doc);
        core_props(z, in, &title, meta);
    }
    zip_discard(z);
    for (size_t i = 0; i < d.sm.n; i++) free(d.sm.id[i]);
    free(d.sm.id);
    free(d.sm.level);
    xbuf_free(&d.capbuf);
    pf_xdoc out = {.title = title ? title : d.title_style ? d.title_style : d.h1};
    if (out.title != d.title_style) free(d.title_style);
    if (out.title != d.h1) free(d.h1);
    out.metadata_json = meta && rc == PF_OK ? cJSON_PrintUnformatted(meta) : NULL;
    cJSON_Delete(meta);
    if (rc != PF_OK) {
        xb_free(&d.b);
        pf_xdoc_free(&out);
        return rc;
    }
    return xb_emit(&d.b, in, r, &out, err);
}
