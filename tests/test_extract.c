/* Document extraction: every format's text, sections (offsets cover the text, heading paths,
 * pages, hard breaks), titles, keys, metadata and warnings, on the fixtures in tests/data/docs
 * (made by tests/data/docs/make_fixtures.py) and on in-memory edge cases; broken files must
 * fail with a message naming the file, hostile ones must neither crash nor take long. */
#include <pthread.h>
#include <stdarg.h>
#include <time.h>

#include "testing.h"

#define DOCS "tests/data/docs/"

/* The pf_xdoc contract: NUL-free valid UTF-8 text, sections ordered, contiguous, covering. */
static bool valid_utf8(const char *s, int64_t n) {
    for (int64_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || c == 0 || c == 0xC0 || c == 0xC1 || c > 0xF4 || i + len > n) return false;
        for (int k = 1; k < len; k++)
            if (((unsigned char)s[i + k] & 0xC0) != 0x80) return false;
        i += len;
    }
    return true;
}

static void check_doc(pf_test *t, const pf_xdoc *d, const char *what) {
    CHECK(t, d->text && d->text[d->len] == '\0' && (int64_t)strlen(d->text) == d->len, "%s: text length", what);
    CHECK(t, valid_utf8(d->text, d->len), "%s: text is not valid UTF-8", what);
    CHECK(t, d->metadata_json && d->metadata_json[0] == '{', "%s: metadata %s", what, d->metadata_json);
    int64_t at = 0;
    bool ok = true;
    for (int64_t i = 0; i < d->n_sections; i++) {
        const pf_xsection *s = &d->sections[i];
        ok &= s->start == at && s->end > s->start && s->end <= d->len && s->page >= 0;
        ok &= !s->heading || valid_utf8(s->heading, (int64_t)strlen(s->heading));
        at = s->end;
    }
    CHECK(t, ok && at == d->len && (d->len == 0) == (d->n_sections == 0), "%s: sections do not cover [0,%lld)", what,
          (long long)d->len);
    CHECK(t, d->n_sections == 0 || d->sections[0].hard_break, "%s: first section not hard", what);
}

static int extract(pf_test *t, const char *path, pf_xresult *r, pf_error *e) {
    int rc = pf_extract_file(path, r, e);
    for (int64_t i = 0; rc == PF_OK && i < r->n_docs; i++) check_doc(t, &r->docs[i], path);
    for (int64_t i = 0; rc == PF_OK && i < r->n_warnings; i++)
        CHECK(t, valid_utf8(r->warnings[i], (int64_t)strlen(r->warnings[i])), "warning utf8");
    return rc;
}

static int mem(pf_test *t, const char *type, const char *data, size_t n, pf_xresult *r, pf_error *e) {
    int rc = pf_extract_memory(type, "mem", data, n, r, e);
    for (int64_t i = 0; rc == PF_OK && i < r->n_docs; i++) check_doc(t, &r->docs[i], type);
    return rc;
}

/* The section holding the first occurrence of `needle`, NULL when absent. */
static const pf_xsection *sec_of(const pf_xdoc *d, const char *needle) {
    const char *p = strstr(d->text, needle);
    for (int64_t i = 0; p && i < d->n_sections; i++)
        if (p - d->text >= d->sections[i].start && p - d->text < d->sections[i].end) return &d->sections[i];
    return NULL;
}

static bool heading_is(const pf_xdoc *d, const char *needle, const char *heading) {
    const pf_xsection *s = sec_of(d, needle);
    if (!s) return false;
    return heading ? s->heading && !strcmp(s->heading, heading) : !s->heading;
}

static bool has(const pf_xdoc *d, const char *s) { return strstr(d->text, s) != NULL; }

static bool warned(const pf_xresult *r, const char *s) {
    for (int64_t i = 0; i < r->n_warnings; i++)
        if (strstr(r->warnings[i], s)) return true;
    return false;
}

static void test_md(pf_test *t) {
    pf_xresult r;
    pf_error e = {0};
    CHECK(t, extract(t, DOCS "manual.md", &r, &e) == PF_OK, "%s", e.msg);
    if (r.n_docs != 1) return;
    const pf_xdoc *d = &r.docs[0];
    CHECK(t, !strcmp(r.doc_type, "md") && !d->key && d->title && !strcmp(d->title, "Pump Manual"), "md title");
    CHECK(t, has(d, "Intro paragraph with emphasis, strong, code_span, and a link.\n"), "inline markup: %s", d->text);
    CHECK(t, has(d, "seals_weekly and 2 * 3 items"), "snake_case and lone '*' survive");
    CHECK(t,
          heading_is(d, "Replace the filter icon filter", "Pump Manual \xE2\x80\xBA Maintenance \xE2\x80\xBA Filters"),
          "nested heading path");
    CHECK(t,
          has(d, "# not a heading\nmake filter") &&
              heading_is(d, "# not a heading", "Pump Manual \xE2\x80\xBA Maintenance \xE2\x80\xBA Filters"),
          "fenced code kept verbatim, not a heading");
    CHECK(t, has(d, "Part | Interval\nFilter | 500 h\nSeal | 1000 h") && !has(d, "---"), "table rows");
    CHECK(t, heading_is(d, "Wear gloves.", "Pump Manual \xE2\x80\xBA Safety"), "setext h2 + blockquote");
    CHECK(t, has(d, "- item one\n- item two"), "list items");
    CHECK(t, heading_is(d, "Done & dusted.", "Appendix"), "ATX closing #s, h1 resets the path");
    CHECK(t, !has(d, "hidden comment") && !has(d, "example.com") && !has(d, "f.png") && !has(d, "x.y"), "dropped");
    const pf_xsection *h = sec_of(d, "Maintenance"), *p = sec_of(d, "Check the seals");
    CHECK(t, h && p && h->hard_break && !p->hard_break, "heading sections are hard, paragraphs not");
    pf_xresult_free(&r);

    const char *fm = "---\ntitle: \"Front Title\"\nauthor: Ann\n---\n# H1 later\n\ntext *a* snake_case_x "
                     "**c\n\n```\ncode never closed\n# x";
    CHECK(t, mem(t, "md", fm, strlen(fm), &r, &e) == PF_OK, "%s", e.msg);
    if (r.n_docs == 1) {
        d = &r.docs[0];
        CHECK(t, d->title && !strcmp(d->title, "Front Title"), "front matter title: %s", d->title);
        CHECK(t, strstr(d->metadata_json, "\"author\":\"Ann\""), "front matter meta %s", d->metadata_json);
        CHECK(t, !has(d, "author") && has(d, "text a snake_case_x **c") && has(d, "code never closed\n# x"), "%s",
              d->text);
        CHECK(t, heading_is(d, "# x", "H1 later"), "unclosed fence runs to the end");
    }
    pf_xresult_free(&r);
    const char *odd = "####### seven\n- item\n---\n[a [b](c) d](e) `` a`b `` <b>x</b> <http://u.v> \\*lit\\*";
    CHECK(t, mem(t, "md", odd, strlen(odd), &r, &e) == PF_OK && r.n_docs == 1, "%s", e.msg);
    if (r.n_docs == 1) {
        d = &r.docs[0];
        CHECK(t, !d->title && has(d, "####### seven\n- item") && heading_is(d, "####### seven", NULL), "%s", d->text);
        CHECK(t, has(d, "a b d a`b x http://u.v *lit*"), "inline: %s", d->text);
    }
    pf_xresult_free(&r);
}

static void test_html(pf_test *t) {
    pf_xresult r;
    pf_error e = {0};
    CHECK(t, extract(t, DOCS "page.html", &r, &e) == PF_OK, "%s", e.msg);
    if (r.n_docs != 1) return;
    const pf_xdoc *d = &r.docs[0];
    CHECK(t, d->title && !strcmp(d->title, "Pump Guide & FAQ"), "html title %s", d->title);
    static const char *const gone[] = {"nope",      "color",     "Home", "Menu",   "Link A",
                                       "Copyright", "Enable JS", "tmpl", "secret", "<p>"};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) CHECK(t, !has(d, gone[i]), "'%s' not dropped", gone[i]);
    CHECK(t, has(d, "The pump\xC2\xA0moves water <fast> \xE2\x80\x94 caf\xC3\xA9."), "entities: %s", d->text);
    CHECK(t, heading_is(d, "Check the seals.", "Pump Guide \xE2\x80\xBA Maintenance"), "whitespace collapsed");
    CHECK(t, sec_of(d, "Second block") != sec_of(d, "Check the"), "block elements break paragraphs");
    CHECK(t,
          heading_is(d, "Part | Interval\nFilter | 500 h", "Pump Guide \xE2\x80\xBA Maintenance \xE2\x80\xBA Filters"),
          "table rows under h3");
    CHECK(t, has(d, "line 1\n  line 2"), "pre keeps whitespace");
    CHECK(t, heading_is(d, "Gloves\nGoggles", "Pump Guide \xE2\x80\xBA Safety"), "h2 resets h3");
    pf_xresult_free(&r);
    CHECK(t, extract(t, DOCS "latin1.html", &r, &e) == PF_OK && r.n_docs == 1, "%s", e.msg);
    if (r.n_docs == 1)
        CHECK(t,
              !strcmp(r.docs[0].text, "Cr\xC3\xA8me br\xC3\xBBl\xC3\xA9"
                                      "e") &&
                  !strcmp(r.docs[0].title, "Caf\xC3\xA9"),
              "declared charset: %s", r.docs[0].text);
    pf_xresult_free(&r);
    const char *art = "<header>Site</header><article><header><h2>Art</h2></header><p>x</p></article>";
    CHECK(t, mem(t, "html", art, strlen(art), &r, &e) == PF_OK && r.n_docs == 1, "%s", e.msg);
    if (r.n_docs == 1) CHECK(t, !has(&r.docs[0], "Site") && heading_is(&r.docs[0], "x", "Art"), "article header kept");
    pf_xresult_free(&r);
    const char *h = "<p>no title<h1> First  H1 </h1><table><tr><td><p>a</p><p>b</p></td><td>c</td></tr></table>";
    CHECK(t, mem(t, "html", h, strlen(h), &r, &e) == PF_OK && r.n_docs == 1, "%s", e.msg);
    if (r.n_docs == 1) {
        CHECK(t, r.docs[0].title && !strcmp(r.docs[0].title, "First H1"), "h1 title fallback");
        CHECK(t, has(&r.docs[0], "a b | c"), "blocks in cells: %s", r.docs[0].text);
    }
    pf_xresult_free(&r);
}

static void test_txt(pf_test *t) {
    pf_xresult r;
    pf_error e = {0};
    CHECK(t, extract(t, DOCS "notes.txt", &r, &e) == PF_OK && r.n_docs == 1, "%s", e.msg);
    if (r.n_docs == 1) {
        const pf_xdoc *d = &r.docs[0];
        CHECK(t, d->n_sections == 2 && !d->title && r.n_warnings == 0, "txt paragraphs");
        CHECK(t, !strcmp(d->text, "First paragraph line one.\nLine two.\n\nSecond paragraph."), "%s", d->text);
    }
    pf_xresult_free(&r);
    CHECK(t, extract(t, DOCS "latin1.txt", &r, &e) == PF_OK && r.n_docs == 1, "%s", e.msg);
    if (r.n_docs == 1)
        CHECK(t, !strcmp(r.docs[0].text, "Caf\xC3\xA9 cr\xC3\xA8me") && warned(&r, "latin1.txt: not valid UTF-8"),
              "Latin-1 fallback: %s", r.docs[0].text);
    pf_xresult_free(&r);
    const char u16[] = "\xFF\xFEh\0i\0\r\0\n\0\xE9\0";
    CHECK(t, mem(t, "txt", u16, sizeof u16 - 1, &r, &e) == PF_OK && r.n_docs == 1, "%s", e.msg);
    if (r.n_docs == 1) CHECK(t, !strcmp(r.docs[0].text, "hi\n\xC3\xA9"), "UTF-16LE: %s", r.docs[0].text);
    pf_xresult_free(&r);
    CHECK(t, mem(t, "txt", "a\rb\r\rc", 6, &r, &e) == PF_OK && r.n_docs == 1 && r.docs[0].n_sections == 2, "CR");
    pf_xresult_free(&r);
    CHECK(t,
          mem(t, "txt", "\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f", 10, &r, &e) == PF_ERR_FORMAT &&
              strstr(e.msg, "mem: binary data"),
          "control bytes: %s", e.msg);
    CHECK(t, extract(t, DOCS "garbage.md", &r, &e) == PF_ERR_FORMAT && strstr(e.msg, "garbage.md: binary data"),
          "binary .md: %s", e.msg);
}

static void test_pdf(pf_test *t) {
    pf_xresult r;
    pf_error e = {0};
    CHECK(t, extract(t, DOCS "manual.pdf", &r, &e) == PF_OK && r.n_docs == 1, "%s", e.msg);
    if (r.n_docs == 1) {
        const pf_xdoc *d = &r.docs[0];
        CHECK(t, d->title && !strcmp(d->title, "Pump Manual PDF"), "pdf title");
        CHECK(t, d->n_sections == 3, "3 pages -> 3 sections, got %lld", (long long)d->n_sections);
        for (int64_t i = 0; i < d->n_sections; i++)
            CHECK(t, d->sections[i].page == i + 1 && d->sections[i].hard_break, "page %lld", (long long)i);
        CHECK(t, sec_of(d, "every 500 hours") && sec_of(d, "every 500 hours")->page == 2, "page 2 text");
        CHECK(t, sec_of(d, "Appendix") && sec_of(d, "Appendix")->page == 3 && has(d, "Wear gloves at all times"), "p3");
        CHECK(t, strstr(d->metadata_json, "\"pages\":3") && strstr(d->metadata_json, "ACME Docs"), "%s",
              d->metadata_json);
        CHECK(t, r.n_warnings == 0, "no warnings");
    }
    pf_xresult_free(&r);
    CHECK(t, extract(t, DOCS "blank.pdf", &r, &e) == PF_OK && r.n_docs == 1 && r.docs[0].len == 0, "%s", e.msg);
    CHECK(t, warned(&r, "blank.pdf: no text on any of its 1 pages"), "scan warning");
    pf_xresult_free(&r);
    CHECK(t,
          extract(t, DOCS "encrypted.pdf", &r, &e) == PF_ERR_UNSUPPORTED && strstr(e.msg, "encrypted.pdf") &&
              strstr(e.msg, "password"),
          "encrypted: %s", e.msg);
    CHECK(t, extract(t, DOCS "fake.pdf", &r, &e) == PF_ERR_FORMAT && strstr(e.msg, "fake.pdf: not a PDF"), "%s", e.msg);
    CHECK(t, extract(t, DOCS "truncated.pdf", &r, &e) == PF_ERR_FORMAT && strstr(e.msg, "truncated.pdf: damaged"),
          "truncated: %s", e.msg);
    CHECK(t, r.n_docs == 0 && r.docs == NULL, "empty result on failure");
}

static void test_docx(pf_test *t) {
    pf_xresult r;
    pf_error e = {0};
    CHECK(t, extract(t, DOCS "report.docx", &r, &e) == PF_OK && r.n_docs == 1, "%s", e.msg);
    if (r.n_docs == 1) {
        const pf_xdoc *d = &r.docs[0];
        const char *maint = "Pump Service Report \xE2\x80\xBA Maintenance";
        CHECK(t, d->title && !strcmp(d->title, "Service Report 2024"), "core.xml title: %s", d->title);
        CHECK(t, strstr(d->metadata_json, "\"author\":\"ACME Docs\""), "%s", d->metadata_json);
        CHECK(t, heading_is(d, "Replace the filter every 500 hours.", maint), "styles.xml heading 1 (renamed id)");
        CHECK(t,
              heading_is(d, "Part\tA-1\nsecond line",
                         "Pump Service Report \xE2\x80\xBA Maintenance \xE2\x80\xBA Filters"),
              "Heading2, tab and break: %s", d->text);
        CHECK(t, has(d, "Part | Interval\nFilter | 500 h"), "table rows: %s", d->text);
        CHECK(t, heading_is(d, "Wear gloves & goggles.", "Pump Service Report \xE2\x80\xBA Safety"), "second h1");
        CHECK(t, !has(d, "OLD TEXT") && sec_of(d, "Safety")->hard_break, "deleted text dropped");
    }
    pf_xresult_free(&r);
    CHECK(t,
          extract(t, DOCS "bomb.docx", &r, &e) == PF_ERR_UNSUPPORTED && strstr(e.msg, "bomb.docx") &&
              strstr(e.msg, "decompression bomb"),
          "bomb: %s", e.msg);
    CHECK(t,
          extract(t, DOCS "truncated.docx", &r, &e) == PF_ERR_FORMAT && strstr(e.msg, "truncated.docx") &&
              strstr(e.msg, "zip"),
          "truncated: %s", e.msg);
    CHECK(t, extract(t, DOCS "notword.docx", &r, &e) == PF_ERR_FORMAT && strstr(e.msg, "no word/document.xml"), "%s",
          e.msg);
    CHECK(t, extract(t, DOCS "badxml.docx", &r, &e) == PF_ERR_FORMAT && strstr(e.msg, "malformed XML at line 1"), "%s",
          e.msg);
}

static void test_csv(pf_test *t) {
    pf_xresult r;
    pf_error e = {0};
    CHECK(t, extract(t, DOCS "parts.csv", &r, &e) == PF_OK && r.n_docs == 1, "%s", e.msg);
    if (r.n_docs == 1) {
        const pf_xdoc *d = &r.docs[0];
        CHECK(t, d->n_sections == 3, "one section per row, got %lld", (long long)d->n_sections);
        for (int64_t i = 0; i < d->n_sections; i++) CHECK(t, d->sections[i].hard_break, "row %lld hard", (long long)i);
        CHECK(t, has(d, "id: 1\nname: Filter\nnotes: Replace every 500 h, or sooner"), "%s", d->text);
        CHECK(t,
              has(d, "name: Seal \"B\"\nnotes: Line one\nLine two") && has(d, "id: 3\nname: Pump") &&
                  !has(d, "notes: \n"),
              "quotes, embedded newline, empty value: %s", d->text);
        CHECK(t, !strcmp(d->metadata_json, "{\"columns\":[\"id\",\"name\",\"notes\"],\"delimiter\":\",\",\"rows\":3}"),
              "%s", d->metadata_json);
    }
    pf_xresult_free(&r);
    CHECK(t, extract(t, DOCS "broken.csv", &r, &e) == PF_OK && warned(&r, "broken.csv:2: unterminated"), "%s", e.msg);
    pf_xresult_free(&r);
    const char *semi = "a;b;c\n1;\"x;y\";3;extra\n";
    CHECK(t, mem(t, "csv", semi, strlen(semi), &r, &e) == PF_OK && r.n_docs == 1, "%s", e.msg);
    if (r.n_docs == 1)
        CHECK(t, has(&r.docs[0], "b: x;y\nc: 3\ncolumn 4: extra") && warned(&r, "mem:2: row has 4 fields"),
              "sniffed ';': %s", r.docs[0].text);
    pf_xresult_free(&r);
    {
        /* A 4 KiB column name repeated on 2000 rows: rendered names are cut to 128 bytes. */
        size_t n = 4096 + 2 + 2000 * 2;
        char *s = malloc(n + 1);
        memset(s, 'N', 4096);
        memcpy(s + 4096, ",\n", 2);
        for (int i = 0; i < 2000; i++) memcpy(s + 4098 + 2 * i, "x\n", 2);
        CHECK(t, mem(t, "csv", s, n, &r, &e) == PF_OK && r.n_docs == 1 && r.docs[0].len < 2000 * 140, "amplify");
        pf_xresult_free(&r);
        free(s);
    }
}

static void test_json(pf_test *t) {
    pf_xresult r;
    pf_error e = {0};
    CHECK(t, extract(t, DOCS "records.json", &r, &e) == PF_OK && r.n_docs == 2, "%s", e.msg);
    if (r.n_docs == 2) {
        const pf_xdoc *a = &r.docs[0], *b = &r.docs[1];
        CHECK(t, !strcmp(a->key, "p1") && !strcmp(a->title, "Pump") && a->n_sections == 2, "record p1");
        CHECK(t, !strcmp(a->text, "The pump moves water.\n\nIt needs power.") && heading_is(a, "It needs", "Pump"),
              "p1");
        CHECK(t, !strcmp(a->metadata_json, "{\"tags\":[\"a\",\"b\"]}"), "%s", a->metadata_json);
        CHECK(t, !strcmp(b->key, "2") && !strcmp(b->text, "Valves stop flow."), "numeric id, content field");
        CHECK(t, r.n_skipped == 1 && warned(&r, "records.json: record 3: no usable"), "record without id");
    }
    pf_xresult_free(&r);
    CHECK(t, extract(t, DOCS "faq.json", &r, &e) == PF_OK && r.n_docs == 1, "%s", e.msg);
    if (r.n_docs == 1) {
        const pf_xdoc *d = &r.docs[0];
        CHECK(t, !d->key && d->title && !strcmp(d->title, "FAQ") && !strcmp(d->metadata_json, "{\"version\":3}"),
              "faq");
        CHECK(t, has(d, "q: How often?\na: Every 500 h") && heading_is(d, "q: How", NULL), "fields as key: value");
        CHECK(t, heading_is(d, "Change them.", "Filters") && sec_of(d, "Filters")->hard_break, "record title heading");
    }
    pf_xresult_free(&r);
    CHECK(t,
          extract(t, DOCS "broken.json", &r, &e) == PF_ERR_FORMAT && strstr(e.msg, "broken.json:2: not JSON") &&
              strstr(e.msg, "'x' at column 9"),
          "%s", e.msg);
    CHECK(t, mem(t, "json", " \n ", 3, &r, &e) == PF_ERR_FORMAT && strstr(e.msg, "empty input"), "%s", e.msg);
    const char *lines = "{\"id\": \"a\", \"text\": \"A\"}\n{\"id\": \"b\", \"text\": \"B \xff\"}\n";
    CHECK(t, mem(t, "json", lines, strlen(lines), &r, &e) == PF_OK && r.n_docs == 2, "%s", e.msg);
    CHECK(t, warned(&r, "read as JSON Lines") && warned(&r, "U+FFFD"), "JSON Lines named .json");
    if (r.n_docs == 2) CHECK(t, !strcmp(r.docs[1].text, "B \xEF\xBF\xBD"), "U+FFFD: %s", r.docs[1].text);
    pf_xresult_free(&r);
}

static void test_jsonl(pf_test *t) {
    pf_xresult r;
    pf_error e = {0};
    CHECK(t, extract(t, DOCS "corpus.jsonl", &r, &e) == PF_OK && r.n_docs == 3, "%s", e.msg);
    if (r.n_docs == 3) {
        const pf_xdoc *d = r.docs;
        CHECK(t, !strcmp(d[0].key, "d1") && !strcmp(d[0].title, "Filters") && d[0].n_sections == 2, "d1");
        CHECK(t, heading_is(&d[0], "Use OEM parts.", "Filters"), "record title as heading");
        CHECK(t, !strcmp(d[0].metadata_json, "{\"metadata\":{\"src\":\"manual\"}}"), "%s", d[0].metadata_json);
        CHECK(t, !strcmp(d[1].key, "7") && !d[1].title && !strcmp(d[1].text, "Seven."), "numeric id");
        CHECK(t, !strcmp(d[2].key, "d5") && !strcmp(d[2].text, "Title only"), "empty text -> title");
    }
    CHECK(t, r.n_skipped == 4 && r.n_warnings == 4, "skipped %lld", (long long)r.n_skipped);
    CHECK(t, warned(&r, "corpus.jsonl:3: not JSON (unexpected '\"' at column 33)"), "malformed line");
    CHECK(t, warned(&r, "corpus.jsonl:5: no \"text\"") && warned(&r, "corpus.jsonl:6: duplicate id \"d1\""), "5, 6");
    CHECK(t, warned(&r, "corpus.jsonl:7: not a JSON object"), "line 7");
    pf_xresult_free(&r);
    /* A million bad lines must cost a bounded warning list. */
    {
        size_t n = 0;
        char *s = malloc(150 * 8);
        for (int i = 0; i < 150; i++) n += (size_t)sprintf(s + n, "{bad %d\n", i % 10);
        CHECK(t, mem(t, "jsonl", s, n, &r, &e) == PF_OK && r.n_skipped == 150, "%s", e.msg);
        CHECK(t,
              r.n_warnings == PF_EXTRACT_MAX_WARNINGS + 1 &&
                  !strcmp(r.warnings[r.n_warnings - 1], "... 50 more warnings not listed"),
              "warning cap");
        CHECK(t, warned(&r, "mem:1: not JSON (unexpected end of input at column 7)"), "truncated object reason");
        pf_xresult_free(&r);
        free(s);
    }
}

static void test_api(pf_test *t) {
    pf_xresult r;
    pf_error e = {0};
    static const char *const ext[][2] = {
        {"a/b.MD", "md"},      {"x.markdown", "md"}, {"p.HTM", "html"}, {"d.docx", "docx"}, {"c.tsv", "csv"},
        {"l.ndjson", "jsonl"}, {"t.txt", "txt"},     {"f.pdf", "pdf"},  {"j.json", "json"}, {"noext", NULL},
        {"dir.md/x", NULL},    {".md", NULL},        {"x.doc", NULL}};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        const char *got = pf_extract_type_of(ext[i][0]);
        CHECK(t, ext[i][1] ? got && !strcmp(got, ext[i][1]) : !got, "type_of(%s) = %s", ext[i][0], got ? got : "NULL");
    }
    CHECK(t, pf_extract_memory("doc", "x", "a", 1, &r, &e) == PF_ERR_UNSUPPORTED && strstr(e.msg, "x:"), "bad type");
    CHECK(t, pf_extract_memory("txt", "x", NULL, 5, &r, &e) == PF_ERR_ARG, "NULL data");
    CHECK(t, pf_extract_file("tests/data/docs/missing.md", &r, &e) == PF_ERR_IO && strstr(e.msg, "missing.md"), "IO");
    CHECK(t, pf_extract_file("tests/data/docs/make_fixtures.py", &r, &e) == PF_ERR_UNSUPPORTED, "extension");
    static const char *const ok_empty[] = {"txt", "md", "html", "csv", "jsonl"};
    for (size_t i = 0; i < 5; i++) {
        CHECK(t,
              mem(t, ok_empty[i], NULL, 0, &r, &e) == PF_OK && r.n_docs == (i < 4) && !strcmp(r.doc_type, ok_empty[i]),
              "empty %s: %s", ok_empty[i], e.msg);
        pf_xresult_free(&r);
    }
    CHECK(t, mem(t, "pdf", "", 0, &r, &e) == PF_ERR_FORMAT && mem(t, "docx", "", 0, &r, &e) == PF_ERR_FORMAT, "empty");
    pf_xresult_free(NULL);
}

/* Hostile shapes: deep nesting and pathological inline markup must stay fast and crash-free. */
static void test_hostile(pf_test *t) {
    pf_xresult r;
    pf_error e = {0};
    size_t n = 400000;
    char *s = malloc(n + 1);
    clock_t c0 = clock();
    for (size_t i = 0; i + 5 <= n; i += 5) memcpy(s + i, "<div>", 5);
    CHECK(t, mem(t, "html", s, n / 5 * 5, &r, &e) == PF_OK, "deep html: %s", e.msg);
    pf_xresult_free(&r);
    size_t k = 0;
    for (; k + 3 <= n - 4; k += 3) memcpy(s + k, "<b>", 3);
    memcpy(s + k, "text", 4);
    CHECK(t, mem(t, "html", s, k + 4, &r, &e) == PF_OK && r.n_docs == 1 && has(&r.docs[0], "text"), "nested b: %s",
          e.msg);
    pf_xresult_free(&r);
    static const char *const pat[] = {"[", "](", "`", "*a", "_", "<1", "![", "&#", "[a]("};
    for (size_t p = 0; p < sizeof pat / sizeof pat[0]; p++) {
        size_t l = strlen(pat[p]);
        for (k = 0; k + l <= n; k += l) memcpy(s + k, pat[p], l);
        CHECK(t, mem(t, "md", s, k, &r, &e) == PF_OK && r.n_docs == 1, "md '%s' line: %s", pat[p], e.msg);
        pf_xresult_free(&r);
    }
    memset(s, '[', n);
    CHECK(t, mem(t, "json", s, n, &r, &e) == PF_ERR_FORMAT, "deep json: %s", e.msg);
    double secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
    CHECK(t, secs < 20, "hostile inputs took %.1f s", secs);
    free(s);
}

/* Ingestion extracts from several threads: results must not depend on what other threads do. */
static const char *const FIXTURES[] = {DOCS "manual.md", DOCS "page.html",    DOCS "manual.pdf",   DOCS "report.docx",
                                       DOCS "parts.csv", DOCS "records.json", DOCS "corpus.jsonl", DOCS "notes.txt"};
enum { NFIX = sizeof FIXTURES / sizeof FIXTURES[0] };
static int64_t fixture_sum(const char *path) { /* a digest of text, headings and pages */
    pf_xresult r;
    pf_error e = {0};
    if (pf_extract_file(path, &r, &e) != PF_OK) return -1;
    uint64_t h = 1469598103934665603ull;
    for (int64_t d = 0; d < r.n_docs; d++) {
        for (int64_t i = 0; i < r.docs[d].len; i++) h = (h ^ (unsigned char)r.docs[d].text[i]) * 1099511628211ull;
        for (int64_t k = 0; k < r.docs[d].n_sections; k++) {
            const pf_xsection *s = &r.docs[d].sections[k];
            h = (h ^ (uint64_t)(s->end * 31 + s->page + s->hard_break)) * 1099511628211ull;
            for (const char *c = s->heading ? s->heading : ""; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
        }
    }
    pf_xresult_free(&r);
    return (int64_t)(h >> 1);
}

typedef struct worker {
    int64_t want[NFIX];
    int bad;
} worker;
static void *work(void *arg) {
    worker *w = arg;
    for (int rep = 0; rep < 5; rep++)
        for (int i = 0; i < NFIX; i++) w->bad += fixture_sum(FIXTURES[(i + rep) % NFIX]) != w->want[(i + rep) % NFIX];
    return NULL;
}

static void test_threads(pf_test *t) {
    worker w[4];
    pthread_t th[4];
    for (int i = 0; i < NFIX; i++) w[0].want[i] = fixture_sum(FIXTURES[i]);
    for (int k = 0; k < 4; k++) {
        memcpy(w[k].want, w[0].want, sizeof w[0].want);
        w[k].bad = 0;
        CHECK(t, pthread_create(&th[k], NULL, work, &w[k]) == 0, "thread %d", k);
    }
    for (int k = 0; k < 4; k++) {
        pthread_join(th[k], NULL);
        CHECK(t, w[k].bad == 0, "thread %d saw %d different results", k, w[k].bad);
    }
}

int main(void) {
    pf_test t = {0};
    test_md(&t);
    test_html(&t);
    test_txt(&t);
    test_pdf(&t);
    test_docx(&t);
    test_csv(&t);
    test_json(&t);
    test_jsonl(&t);
    test_api(&t);
    test_hostile(&t);
    test_threads(&t);
    return TEST_REPORT(&t);
}
