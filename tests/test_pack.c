/* The industry pack in examples/pumps: every document is read by phiforge's own extractors,
 * the five formats are all there, the Q&A set (qa.jsonl) is well-formed and every reference
 * answer really is in its gold document (on the stated page for PDFs, where citations name the
 * page), and the fine-tuning sets (train.jsonl, val.jsonl) are well-formed chat samples that do
 * not leak a test question. The PDF/DOCX generator is rerun into a temporary folder to prove that
 * the committed files are its reproducible output. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <unistd.h>

#include "testing.h"

#define PACK "examples/pumps/"
#define MAX_DOCS 64

/* ---- text normalization: ASCII lower case, every whitespace run one space ------------------ */
/* Reference answers are checked "as a reader would find them": case and line breaks (PDF lines,
 * wrapped table cells) do not matter, every other byte does. */
static char *normalize(const char *s, size_t n) {
    char *o = malloc(n + 1);
    if (!o) return NULL;
    size_t k = 0;
    bool space = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isspace(c)) { space = k > 0; continue; }
        if (space) o[k++] = ' ', space = false;
        o[k++] = (char)tolower(c);
    }
    o[k] = '\0';
    return o;
}

/* ---- the documents --------------------------------------------------------------------------- */
typedef struct doc {
    char name[256];     /* "docs/<file>" as qa.jsonl names it */
    pf_xresult x;
    char *norm;         /* normalized text of all its records */
} doc;

static doc *find_doc(doc *docs, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(docs[i].name, name)) return &docs[i];
    return NULL;
}

/* Normalized text of the sections of page `page` (PDF). */
static char *page_text(const pf_xdoc *d, int page) {
    int64_t a = -1, b = -1;
    for (int64_t i = 0; i < d->n_sections; i++)
        if (d->sections[i].page == page) {
            if (a < 0) a = d->sections[i].start;
            b = d->sections[i].end;
        }
    return a < 0 ? NULL : normalize(d->text + a, (size_t)(b - a));
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int load_docs(pf_test *t, doc *docs) {
    DIR *dir = opendir(PACK "docs");
    CHECK(t, dir != NULL, "cannot open %sdocs (run from the repository root)", PACK);
    if (!dir) return 0;
    char *names[MAX_DOCS];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) && n < MAX_DOCS)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(dir);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    bool seen_type[5] = {0};
    const char *want[5] = {"md", "html", "pdf", "docx", "csv"};
    for (int i = 0; i < n; i++) {
        doc *d = &docs[i];
        snprintf(d->name, sizeof d->name, "docs/%s", names[i]);
        char path[512];
        snprintf(path, sizeof path, PACK "%s", d->name);
        pf_error err = {0};
        int rc = pf_extract_file(path, &d->x, &err);
        CHECK(t, rc == PF_OK, "%s: %s", path, err.msg);
        CHECK(t, rc != PF_OK || d->x.n_warnings == 0, "%s: %lld warnings, first: %s", path,
              (long long)d->x.n_warnings, d->x.n_warnings ? d->x.warnings[0] : "");
        size_t total = 0;
        for (int64_t k = 0; k < d->x.n_docs; k++) total += (size_t)d->x.docs[k].len + 1;
        char *all = malloc(total + 1);
        size_t at = 0;
        for (int64_t k = 0; all && k < d->x.n_docs; k++) {
            memcpy(all + at, d->x.docs[k].text, (size_t)d->x.docs[k].len);
            at += (size_t)d->x.docs[k].len;
            all[at++] = '\n';
        }
        d->norm = all ? normalize(all, at) : NULL;
        free(all);
        CHECK(t, d->norm && strlen(d->norm) > 1000, "%s: extracted text too short (%zu bytes)", path,
              d->norm ? strlen(d->norm) : 0);
        for (int k = 0; k < 5; k++)
            if (d->x.doc_type && !strcmp(d->x.doc_type, want[k])) seen_type[k] = true;
        if (d->x.doc_type && !strcmp(d->x.doc_type, "pdf") && d->x.n_docs == 1) {
            /* multi-page, and the page poppler reports is the page number printed in the footer */
            const pf_xdoc *x = &d->x.docs[0];
            int pages = x->n_sections ? x->sections[x->n_sections - 1].page : 0;
            CHECK(t, pages >= 3, "%s: %d pages (want a multi-page PDF)", path, pages);
            for (int p = 1; p <= pages; p++) {
                char footer[64], *pt = page_text(x, p);
                snprintf(footer, sizeof footer, "page %d of %d", p, pages);
                CHECK(t, pt && strstr(pt, footer), "%s: page %d does not carry the footer \"%s\"", path, p, footer);
                free(pt);
            }
        }
        free(names[i]);
    }
    CHECK(t, n >= 12, "only %d documents in %sdocs (want at least 12)", n, PACK);
    for (int k = 0; k < 5; k++) CHECK(t, seen_type[k], "no %s document in the pack", want[k]);
    return n;
}

/* ---- JSONL reading ------------------------------------------------------------------------- */
typedef struct lines {
    char *buf;
    char **line;
    int n;
} lines;

static bool read_lines(pf_test *t, const char *path, lines *L) {
    size_t size = 0;
    L->buf = pf_test_read_file(path, &size);
    L->n = 0;
    L->line = NULL;
    CHECK(t, L->buf != NULL, "cannot read %s", path);
    if (!L->buf) return false;
    int cap = 1;
    for (size_t i = 0; i < size; i++) cap += L->buf[i] == '\n';
    L->line = calloc((size_t)cap, sizeof *L->line);
    char *s = L->buf, *end = L->buf + size;
    while (s < end) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        if (!nl) nl = end;
        *nl = '\0';
        if (nl > s) L->line[L->n++] = s;
        s = nl + 1;
    }
    return true;
}

static void free_lines(lines *L) { free(L->buf), free(L->line); }

static const char *str_field(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

/* ---- qa.jsonl ------------------------------------------------------------------------------ */
/* Returns the normalized questions (for the leakage check); *n_out is their count. */
static char **check_qa(pf_test *t, doc *docs, int n_docs, int *n_out) {
    lines L;
    *n_out = 0;
    if (!read_lines(t, PACK "qa.jsonl", &L)) return NULL;
    char **questions = calloc((size_t)L.n + 1, sizeof *questions);
    char **ids = calloc((size_t)L.n + 1, sizeof *ids);
    int n_unanswerable = 0, n_pdf = 0, bad = 0;
    const char *types[] = {"fact", "procedure", "number", "code", "safety", "unanswerable"};
    for (int i = 0; i < L.n; i++) {
        int ln = i + 1;
        cJSON *o = cJSON_Parse(L.line[i]);
        CHECK(t, cJSON_IsObject(o), "qa.jsonl:%d: not a JSON object", ln);
        if (!cJSON_IsObject(o)) { cJSON_Delete(o); bad++; continue; }
        const char *id = str_field(o, "id"), *q = str_field(o, "question"), *a = str_field(o, "answer");
        const char *type = str_field(o, "type");
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(o, "source");
        const cJSON *page = cJSON_GetObjectItemCaseSensitive(o, "page");
        CHECK(t, id && q && a && type, "qa.jsonl:%d: id, question, answer and type must be non-empty strings", ln);
        CHECK(t, cJSON_IsString(src) || cJSON_IsNull(src), "qa.jsonl:%d: source must be a string or null", ln);
        CHECK(t, cJSON_IsNull(page) || (cJSON_IsNumber(page) && page->valueint >= 1),
              "qa.jsonl:%d: page must be null or a page number >= 1", ln);
        if (!id || !q || !a || !type || !(cJSON_IsString(src) || cJSON_IsNull(src))) { cJSON_Delete(o); bad++; continue; }
        bool type_ok = false;
        for (size_t k = 0; k < sizeof types / sizeof *types; k++) type_ok |= !strcmp(type, types[k]);
        CHECK(t, type_ok, "qa.jsonl:%d: unknown type '%s'", ln, type);
        bool dup = false;
        for (int k = 0; k < i; k++) dup |= ids[k] && !strcmp(ids[k], id);
        CHECK(t, !dup, "qa.jsonl:%d: duplicate id %s", ln, id);
        ids[i] = strdup(id);
        questions[(*n_out)++] = normalize(q, strlen(q));

        bool unanswerable = !strcmp(type, "unanswerable");
        if (unanswerable) {
            n_unanswerable++;
            CHECK(t, cJSON_IsNull(src) && cJSON_IsNull(page) && !strcmp(a, "not covered"),
                  "qa.jsonl:%d (%s): an unanswerable question has source null, page null, answer \"not covered\"", ln, id);
        } else {
            /* The gold document exists, and the answer is in its extracted text (on its page). */
            const char *s = cJSON_IsString(src) ? src->valuestring : "";
            doc *d = find_doc(docs, n_docs, s);
            CHECK(t, d != NULL, "qa.jsonl:%d (%s): source '%s' is not a file of %sdocs", ln, id, s, PACK);
            char *na = normalize(a, strlen(a));
            if (d && d->norm && na) {
                CHECK(t, strstr(d->norm, na) != NULL, "qa.jsonl:%d (%s): answer \"%s\" is not in the text of %s", ln,
                      id, a, s);
                bool is_pdf = d->x.doc_type && !strcmp(d->x.doc_type, "pdf");
                CHECK(t, is_pdf == cJSON_IsNumber(page), "qa.jsonl:%d (%s): page must be given for PDF sources only",
                      ln, id);
                if (is_pdf && cJSON_IsNumber(page) && d->x.n_docs == 1) {
                    n_pdf++;
                    char *pt = page_text(&d->x.docs[0], page->valueint);
                    CHECK(t, pt && strstr(pt, na), "qa.jsonl:%d (%s): answer \"%s\" is not on page %d of %s", ln, id,
                          a, page->valueint, s);
                    free(pt);
                }
            }
            free(na);
        }
        cJSON_Delete(o);
    }
    CHECK(t, bad == 0 && L.n >= 60, "qa.jsonl: %d lines, %d malformed (want >= 60 valid)", L.n, bad);
    CHECK(t, n_unanswerable >= 5, "qa.jsonl: %d unanswerable questions (want >= 5)", n_unanswerable);
    CHECK(t, n_pdf >= 5, "qa.jsonl: %d questions cite a PDF page (want >= 5)", n_pdf);
    for (int i = 0; i < L.n; i++) free(ids[i]);
    free(ids);
    free_lines(&L);
    return questions;
}

/* ---- train.jsonl / val.jsonl ------------------------------------------------------------------ */
/* Checks the chat format (system first, then user/assistant turns alternating, ending with the
 * assistant) and that no qa.jsonl question appears (normalized) inside any message. Returns the
 * number of valid samples; appends the normalized user turns to *users when given. */
static int check_chat(pf_test *t, const char *path, char **questions, int n_q, char ***users, int *n_users) {
    lines L;
    if (!read_lines(t, path, &L)) return 0;
    int valid = 0;
    for (int i = 0; i < L.n; i++) {
        int ln = i + 1;
        cJSON *o = cJSON_Parse(L.line[i]);
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(o, "messages");
        int n = cJSON_GetArraySize(msgs);
        bool ok = cJSON_IsArray(msgs) && n >= 3;
        int k = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, msgs) {
            const char *role = str_field(m, "role"), *content = str_field(m, "content");
            const char *want = k == 0 ? "system" : k % 2 ? "user" : "assistant";
            ok &= role && content && !strcmp(role, want);
            if (content) {
                char *nc = normalize(content, strlen(content));
                int leak = -1;
                for (int q = 0; nc && q < n_q && leak < 0; q++)
                    if (strstr(nc, questions[q])) leak = q;
                CHECK(t, leak < 0, "%s:%d: contains the test question \"%s\"", path, ln, leak < 0 ? "" : questions[leak]);
                if (nc && users && role && !strcmp(role, "user")) {
                    *users = realloc(*users, (size_t)(*n_users + 1) * sizeof **users);
                    (*users)[(*n_users)++] = nc;
                } else {
                    free(nc);
                }
            }
            k++;
        }
        ok &= n % 2 == 1; /* system + pairs: ends with the assistant */
        CHECK(t, ok, "%s:%d: want {\"messages\":[system, user, assistant, ...]} with non-empty contents", path, ln);
        valid += ok;
        cJSON_Delete(o);
    }
    free_lines(&L);
    return valid;
}

/* ---- the generator reproduces the committed PDF and DOCX --------------------------------- */
static void check_generator(pf_test *t, doc *docs, int n_docs) {
    if (system("python3 -c 'import zipfile' >/dev/null 2>&1") != 0) {
        printf("test_pack: python3 not found, generator reproducibility not checked\n");
        return;
    }
    char dir[] = "/tmp/pf_pack_XXXXXX";
    CHECK(t, mkdtemp(dir) != NULL, "mkdtemp");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "python3 " PACK "tools/make_docs.py --out %s >/dev/null", dir);
    CHECK(t, system(cmd) == 0, "%s failed", cmd);
    int compared = 0;
    for (int i = 0; i < n_docs; i++) {
        const char *type = docs[i].x.doc_type;
        if (!type || (strcmp(type, "pdf") && strcmp(type, "docx"))) continue;
        char a[512], b[512];
        snprintf(a, sizeof a, PACK "%s", docs[i].name);
        snprintf(b, sizeof b, "%s/%s", dir, docs[i].name + 5);
        size_t na = 0, nb = 0;
        void *da = pf_test_read_file(a, &na), *db = pf_test_read_file(b, &nb);
        CHECK(t, da && db && na == nb && !memcmp(da, db, na), "%s differs from the generator's output %s", a, b);
        free(da), free(db);
        unlink(b);
        compared++;
    }
    CHECK(t, compared >= 2, "compared only %d generated files", compared);
    rmdir(dir);
}

int main(void) {
    pf_test t = {0};
    doc *docs = calloc(MAX_DOCS, sizeof *docs);
    int n_docs = load_docs(&t, docs);

    int n_q = 0;
    char **questions = check_qa(&t, docs, n_docs, &n_q);

    char **train_users = NULL;
    int n_train_users = 0;
    int n_train = check_chat(&t, PACK "train.jsonl", questions, n_q, &train_users, &n_train_users);
    char **val_users = NULL;
    int n_val_users = 0;
    int n_val = check_chat(&t, PACK "val.jsonl", questions, n_q, &val_users, &n_val_users);
    CHECK(&t, n_train >= 150, "train.jsonl: %d valid samples (want >= 150)", n_train);
    CHECK(&t, n_val >= 15, "val.jsonl: %d valid samples (want >= 15)", n_val);
    for (int i = 0; i < n_val_users; i++) {
        int dup = -1;
        for (int k = 0; k < n_train_users && dup < 0; k++)
            if (!strcmp(val_users[i], train_users[k])) dup = k;
        CHECK(&t, dup < 0, "val.jsonl repeats the train question \"%s\"", val_users[i]);
    }

    check_generator(&t, docs, n_docs);

    for (int i = 0; i < n_train_users; i++) free(train_users[i]);
    for (int i = 0; i < n_val_users; i++) free(val_users[i]);
    free(train_users), free(val_users);
    for (int i = 0; i < n_q; i++) free(questions[i]);
    free(questions);
    for (int i = 0; i < n_docs; i++) pf_xresult_free(&docs[i].x), free(docs[i].norm);
    free(docs);
    return TEST_REPORT(&t);
}
