/* phiforge eval: Q&A file loading (errors name file:line: field), gold-document matching, marker
 * stripping, scoring of hand-made answers with known outcomes, and a whole extractive run on a
 * small KB whose metrics are recomputed here independently from the primitives (retriever, gate,
 * extractive answer, SQuAD metrics). Then the command: table without a model, JSON with the tiny
 * random-weight model in all four modes (well-formed; its text is noise), and its errors. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"

#define BIN "build/phiforge"
#define TINY "tests/data/phi3-tiny-f16.gguf"
#define TINY_LORA "tests/data/phi3-tiny-lora-r4.gguf"

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

/* ---- Q&A files ---------------------------------------------------------------------------- */

static void test_qa_load(pf_test *t, const char *dir) {
    char path[512];
    pf_qa_set qa;
    pf_error err = {0};
    snprintf(path, sizeof path, "%s/ok.jsonl", dir);
    write_file(path, "{\"id\":\"q1\",\"question\":\"Q one?\",\"answer\":\"A one\",\"source\":\"docs/a.md\",\"page\":3,\"type\":\"fact\"}\n"
                     "\n"
                     "{\"question\":\"Q two?\",\"answer\":\"not covered\",\"source\":null,\"type\":\"unanswerable\"}\n"
                     "{\"id\":7,\"question\":\"Q three?\",\"answer\":\"x\"}\n");
    CHECK(t, pf_qa_load(path, &qa, &err) == PF_OK, "load: %s", err.msg);
    CHECK(t, qa.n == 3, "%lld items", (long long)qa.n);
    if (qa.n == 3) {
        CHECK(t, !strcmp(qa.items[0].id, "q1") && qa.items[0].page == 3 && !strcmp(qa.items[0].source, "docs/a.md") &&
                     !qa.items[0].unanswerable && qa.items[0].line == 1, "item 0");
        CHECK(t, qa.items[1].unanswerable && qa.items[1].source == NULL && qa.items[1].line == 3 && !strcmp(qa.items[1].id, "line3"),
              "item 1: id %s line %lld", qa.items[1].id, (long long)qa.items[1].line);
        CHECK(t, !strcmp(qa.items[2].id, "7") && qa.items[2].source == NULL && !qa.items[2].unanswerable, "item 2");
    }
    pf_qa_free(&qa);

    static const struct { const char *text, *want; } bad[] = {
        {"{\"question\":\"q\",\"answer\":\"a\"}\n{\"question\": oops}\n", ":2: not a JSON object"},
        {"{\"question\":\"q\",\"answer\":\"a\"}\n\n{\"answer\":\"a\"}\n", ":3: field 'question': missing"},
        {"{\"question\":\"q\",\"answer\":5}\n", ":1: field 'answer': not a string"},
        {"{\"question\":\"q\",\"answer\":\"a\",\"source\":[1]}\n", ":1: field 'source': not a string"},
        {"{\"question\":\"q\",\"answer\":\"a\",\"page\":\"x\"}\n", ":1: field 'page': not a page number"},
        {"[1, 2]\n", ":1: not a JSON object"},
        {"\n\n", "no questions"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "%s/bad%zu.jsonl", dir, i);
        write_file(path, bad[i].text);
        pf_error e = {0};
        CHECK(t, pf_qa_load(path, &qa, &e) == PF_ERR_FORMAT && strstr(e.msg, bad[i].want) && strstr(e.msg, path),
              "bad %zu: '%s', want '%s'", i, e.msg, bad[i].want);
    }
    pf_error e = {0};
    CHECK(t, pf_qa_load("/nonexistent/qa.jsonl", &qa, &e) == PF_ERR_IO, "missing file");
}

static void test_matching(pf_test *t) {
    CHECK(t, pf_eval_doc_matches("/home/u/pack/docs/x.md", "docs/x.md"), "suffix");
    CHECK(t, pf_eval_doc_matches("docs/x.md", "./docs/x.md"), "./");
    CHECK(t, pf_eval_doc_matches("x.md", "x.md"), "equal");
    CHECK(t, !pf_eval_doc_matches("/p/mydocs/x.md", "docs/x.md"), "not at a path boundary");
    CHECK(t, !pf_eval_doc_matches("/p/docs/x.md.bak", "docs/x.md"), "longer name");
    CHECK(t, !pf_eval_doc_matches("/p/docs/x.md", NULL), "no source");

    const char *text = "Every 500 hours [1]. Grease [2, 3] it.[1]";
    pf_rag_citations c;
    pf_error err = {0};
    CHECK(t, pf_rag_parse_citations(text, strlen(text), 3, &c, &err) == PF_OK, "parse");
    char *s = pf_rag_strip_markers(text, &c);
    CHECK(t, s && !strcmp(s, "Every 500 hours  . Grease   it. "), "stripped: '%s'", s ? s : "(null)");
    free(s);
    pf_rag_citations_free(&c);
}

/* A hand-made answer: text, one source per doc key (cited when its number is in the text). */
static void make_answer(pf_rag_answer *a, const char *text, bool refused, const char **docs, int n_docs) {
    memset(a, 0, sizeof *a);
    a->text = strdup(text);
    a->refused = refused;
    a->retrieval.res.n = n_docs;
    a->retrieval.ranked = (const char **)docs;
    a->sources = calloc((size_t)n_docs + 1, sizeof *a->sources);
    a->n_sources = n_docs;
    pf_error err = {0};
    pf_rag_parse_citations(text, strlen(text), n_docs, &a->cit, &err);
    for (int i = 0; i < n_docs; i++) a->sources[i].doc_key = docs[i], a->sources[i].n_cited = a->cit.count[i];
}

static void free_answer(pf_rag_answer *a) {
    free(a->text);
    free(a->sources);
    pf_rag_citations_free(&a->cit);
}

/* Known outcomes, worked out by hand. */
static void test_scoring(pf_test *t) {
    const char *docs[2] = {"/kb/docs/seal.md", "/kb/docs/pump.md"};
    pf_qa_item ans = {.id = "a", .question = "q", .answer = "every 500 hours", .source = "docs/pump.md"};
    pf_qa_item unans = {.id = "u", .question = "q", .answer = "not covered", .unanswerable = true};
    pf_rag_answer a;
    pf_eval_item it;
    pf_error err = {0};
    pf_eval_scores s = {0};

    make_answer(&a, "Every 500 hours [2].", false, docs, 2); /* exact once the marker is gone */
    CHECK(t, pf_eval_score(&ans, &a, true, &it, &err) == PF_OK, "score");
    CHECK(t, it.exact && fabs(it.f1 - 1) < 1e-12 && it.cited_gold && it.retrieved_gold && !it.refused, "exact, cited");
    pf_eval_scores_add(&s, &ans, &it);
    free_answer(&a);

    /* cites the wrong document; F1: pred {every,500,operating,hours}, ref {every,500,hours}: P 3/4 R 1 -> 6/7 */
    make_answer(&a, "Every 500 operating hours [1].", false, docs, 2);
    pf_eval_score(&ans, &a, true, &it, &err);
    CHECK(t, !it.exact && fabs(it.f1 - 6.0 / 7) < 1e-12 && !it.cited_gold && it.retrieved_gold, "wrong citation: f1 %g", it.f1);
    pf_eval_scores_add(&s, &ans, &it);
    free_answer(&a);

    /* a model's refusal in its own words on an unanswerable question: exact "not covered" */
    make_answer(&a, "Sorry: the knowledge base does NOT cover this question.", false, docs, 0);
    pf_eval_score(&unans, &a, false, &it, &err);
    CHECK(t, it.refused && it.exact && fabs(it.f1 - 1) < 1e-12, "refusal detected");
    pf_eval_scores_add(&s, &unans, &it);
    free_answer(&a);

    /* an answer to an unanswerable question */
    make_answer(&a, "Paris.", false, docs, 0);
    pf_eval_score(&unans, &a, false, &it, &err);
    CHECK(t, !it.refused && !it.exact && it.f1 == 0, "not refused");
    pf_eval_scores_add(&s, &unans, &it);
    free_answer(&a);

    /* a gate refusal of an answerable question */
    make_answer(&a, PF_RAG_NOT_COVERED, true, docs, 0);
    pf_eval_score(&ans, &a, true, &it, &err);
    CHECK(t, it.refused && !it.exact && it.f1 == 0 && !it.cited_gold && !it.retrieved_gold, "false refusal");
    pf_eval_scores_add(&s, &ans, &it);
    free_answer(&a);

    pf_eval_scores_finish(&s, true, false);
    CHECK(t, s.n == 5 && s.n_answerable == 3 && s.n_unanswerable == 2 && s.n_sourced == 3, "counts");
    CHECK(t, fabs(s.exact_match - 2.0 / 5) < 1e-12, "EM %g", s.exact_match);
    CHECK(t, fabs(s.f1 - (1 + 6.0 / 7 + 1 + 0 + 0) / 5) < 1e-12, "F1 %g", s.f1);
    CHECK(t, fabs(s.citation_acc - 1.0 / 3) < 1e-12 && fabs(s.recall_at_k - 2.0 / 3) < 1e-12, "cite %g recall %g", s.citation_acc,
          s.recall_at_k);
    CHECK(t, fabs(s.refusal_acc - 0.5) < 1e-12 && fabs(s.false_refusal - 1.0 / 3) < 1e-12, "refusal %g false %g", s.refusal_acc,
          s.false_refusal);
    CHECK(t, isnan(s.tokens_per_s), "no tokens/s for extractive answers");
    pf_eval_scores_finish(&s, false, false);
    CHECK(t, isnan(s.citation_acc) && isnan(s.recall_at_k), "closed book has no citation or recall");
}

/* ---- a whole extractive run, recomputed independently ---------------------------------------- */

#define QA_TEXT                                                                                                                  \
    "{\"id\":\"filter\",\"question\":\"How often should I replace the suction strainer filter?\",\"answer\":\"every 500 operating hours\",\"source\":\"rag/pump_manual.md\"}\n" \
    "{\"id\":\"grease\",\"question\":\"How much grease goes into the motor bearings?\",\"answer\":\"15 g of lithium-complex grease\",\"source\":\"pump_manual.md\"}\n" \
    "{\"id\":\"wrongdoc\",\"question\":\"What does cavitation sound like?\",\"answer\":\"like gravel passing through the pump\",\"source\":\"compressor_guide.txt\"}\n" \
    "{\"id\":\"paris\",\"question\":\"What is the capital of France?\",\"answer\":\"not covered\",\"source\":null,\"type\":\"unanswerable\"}\n" \
    "{\"id\":\"cake\",\"question\":\"How do I bake a chocolate cake?\",\"answer\":\"not covered\",\"source\":null,\"type\":\"unanswerable\"}\n"

static bool ends_with_path(const char *key, const char *src) {
    size_t n = strlen(key), m = strlen(src);
    return m <= n && !strcmp(key + n - m, src) && (n == m || key[n - m - 1] == '/');
}

/* "[digits]" groups removed (the extractive answer's only markers), each replaced by a space. */
static void strip_simple(const char *s, char *out) {
    while (*s) {
        if (*s == '[') {
            const char *e = s + 1;
            while (*e >= '0' && *e <= '9') e++;
            if (*e == ']' && e > s + 1) {
                *out++ = ' ';
                s = e + 1;
                continue;
            }
        }
        *out++ = *s++;
    }
    *out = 0;
}

static void test_run(pf_test *t, const char *kbdir, const char *dir) {
    char qa_path[512];
    snprintf(qa_path, sizeof qa_path, "%s/qa.jsonl", dir);
    write_file(qa_path, QA_TEXT);
    pf_error err = {0};
    pf_qa_set qa;
    pf_kb *kb = NULL;
    pf_retriever *r = NULL;
    CHECK(t, pf_qa_load(qa_path, &qa, &err) == PF_OK, "qa: %s", err.msg);
    CHECK(t, pf_kb_open(kbdir, false, &kb, &err) == PF_OK && pf_kb_retriever(kb, false, 1, &r, &err) == PF_OK, "kb: %s", err.msg);
    if (!kb || !r) return;
    pf_rag_answer_params p = pf_rag_answer_default_params();
    p.search.mode = PF_SEARCH_BM25;
    p.search.k = 3;
    if (p.search.depth < 3) p.search.depth = 3;
    pf_eval_scores s;
    CHECK(t, pf_eval_run(kb, r, NULL, &qa, -1, &p, NULL, NULL, &s, &err) == PF_OK, "run: %s", err.msg);

    /* independent: search, gate, partition, extract, strip, score, aggregate */
    double em = 0, f1 = 0, cited = 0, recalled = 0, ref_un = 0, ref_ans = 0;
    int n_src = 0, n_un = 0, n_ans = 0;
    bool refused_of[8] = {0};
    for (int64_t i = 0; i < qa.n; i++) {
        const pf_qa_item *q = &qa.items[i];
        pf_search_results res;
        pf_search_params sp = p.search;
        pf_retriever_search(r, q->question, &sp, &res, &err);
        double cov[16] = {0};
        pf_rag_relevance rel;
        pf_rag_relevance_check(kb, q->question, res.hits, res.n, &p.gate, &rel, cov, &err);
        bool recall = false;
        for (int32_t j = 0; j < res.n && q->source; j++) recall |= ends_with_path(res.hits[j].doc_key, q->source);
        pf_search_hit use[16];
        int n_use = 0;
        for (int32_t j = 0; j < res.n; j++)
            if (cov[j] > 0) use[n_use++] = res.hits[j];
        bool refused = !rel.relevant, cite = false;
        char pred[4096] = "not covered";
        if (!refused) {
            pf_rag_extract x;
            pf_rag_extract_answer(kb, q->question, use, n_use, &p.extract, &x, &err);
            if (x.n_sentences == 0) refused = true;
            else strip_simple(x.text, pred);
            for (int32_t j = 0; j < x.n_sentences && q->source; j++) cite |= ends_with_path(use[x.sentences[j].source - 1].doc_key, q->source);
            pf_rag_extract_free(&x);
        }
        if (refused) strcpy(pred, "not covered"), cite = false;
        refused_of[i] = refused;
        bool ex;
        double f;
        pf_answer_exact_match(pred, q->unanswerable ? "not covered" : q->answer, &ex);
        pf_answer_f1(pred, q->unanswerable ? "not covered" : q->answer, &f);
        em += ex, f1 += f;
        if (q->unanswerable) n_un++, ref_un += refused;
        else {
            n_ans++, ref_ans += refused;
            if (q->source) n_src++, cited += cite, recalled += recall;
        }
        pf_search_results_free(&res);
    }
    CHECK(t, s.n == 5 && s.n_unanswerable == n_un && s.n_sourced == n_src, "counts");
    CHECK(t, fabs(s.exact_match - em / 5) < 1e-12, "EM %g vs %g", s.exact_match, em / 5);
    CHECK(t, fabs(s.f1 - f1 / 5) < 1e-12, "F1 %g vs %g", s.f1, f1 / 5);
    CHECK(t, fabs(s.citation_acc - cited / n_src) < 1e-12, "cite %g vs %g", s.citation_acc, cited / n_src);
    CHECK(t, fabs(s.recall_at_k - recalled / n_src) < 1e-12, "recall %g vs %g", s.recall_at_k, recalled / n_src);
    CHECK(t, fabs(s.refusal_acc - ref_un / n_un) < 1e-12 && fabs(s.false_refusal - ref_ans / n_ans) < 1e-12, "refusals");
    /* what the small KB makes certain: both off-topic questions refused, the on-topic ones not,
     * the pump manual found and cited for the two questions about it, the wrong gold document
     * never cited */
    CHECK(t, refused_of[3] && refused_of[4] && !refused_of[0] && !refused_of[1], "refusals as expected");
    CHECK(t, s.refusal_acc == 1.0 && s.false_refusal == 0, "refusal %g false %g", s.refusal_acc, s.false_refusal);
    CHECK(t, fabs(s.citation_acc - 2.0 / 3) < 1e-12, "cite %g", s.citation_acc);
    CHECK(t, s.f1 > 0.3, "extractive answers hold the reference words: F1 %g", s.f1);
    printf("extractive run: EM %.3f F1 %.3f cite %.3f recall@3 %.3f refusal %.3f\n", s.exact_match, s.f1, s.citation_acc,
           s.recall_at_k, s.refusal_acc);

    /* the command prints the same figures */
    char cmd[2048], out[16384];
    snprintf(cmd, sizeof cmd, BIN " eval --kb %s --qa %s --mode bm25 -k 3 2>/dev/null", kbdir, qa_path);
    int rc = pf_test_run(cmd, out, sizeof out);
    char row[256];
    snprintf(row, sizeof row, "rag           5   %.3f   %.3f     %.3f     %.3f    %.3f     %.3f        -", s.exact_match, s.f1,
             s.citation_acc, s.recall_at_k, s.refusal_acc, s.false_refusal);
    CHECK(t, rc == 0 && strstr(out, "mode          n   exact      F1  cite-acc  recall@3") && strstr(out, row), "table:\n%s\nwant row\n%s", out, row);
    snprintf(cmd, sizeof cmd, BIN " eval --kb %s --qa %s --mode bm25 -k 3 --json", kbdir, qa_path);
    rc = pf_test_run(cmd, out, sizeof out);
    cJSON *j = cJSON_Parse(out);
    const cJSON *modes = cJSON_GetObjectItem(j, "modes"), *m0 = cJSON_GetArrayItem(modes, 0);
    CHECK(t, rc == 0 && cJSON_GetArraySize(modes) == 1 && m0, "json: %s", out);
    if (m0) {
        CHECK(t, fabs(cJSON_GetObjectItem(m0, "f1")->valuedouble - s.f1) < 1e-5 &&
                     fabs(cJSON_GetObjectItem(m0, "citation_accuracy")->valuedouble - s.citation_acc) < 1e-5 &&
                     cJSON_IsNull(cJSON_GetObjectItem(m0, "tokens_per_s")) &&
                     !strcmp(cJSON_GetObjectItem(m0, "answers")->valuestring, "extractive"),
              "json values");
    }
    cJSON_Delete(j);

    /* the tiny random-weight model in all four modes: well-formed, the right nulls */
    snprintf(cmd, sizeof cmd, BIN " eval --kb %s --qa %s -m " TINY " --lora " TINY_LORA " --limit 2 -n 4 -t 1 --json 2>/dev/null", kbdir,
             qa_path);
    rc = pf_test_run(cmd, out, sizeof out);
    j = cJSON_Parse(out);
    modes = cJSON_GetObjectItem(j, "modes");
    CHECK(t, rc == 0 && cJSON_GetArraySize(modes) == 4, "4 modes: %s", out);
    static const char *names[4] = {"base", "rag", "lora", "rag+lora"};
    for (int i = 0; i < cJSON_GetArraySize(modes) && i < 4; i++) {
        const cJSON *m = cJSON_GetArrayItem(modes, i);
        bool rag = i == 1 || i == 3;
        CHECK(t, !strcmp(cJSON_GetObjectItem(m, "mode")->valuestring, names[i]) && cJSON_GetObjectItem(m, "n")->valueint == 2 &&
                     !strcmp(cJSON_GetObjectItem(m, "answers")->valuestring, "generated"),
              "mode %d", i);
        CHECK(t, cJSON_IsNumber(cJSON_GetObjectItem(m, "tokens_per_s")) && cJSON_GetObjectItem(m, "gen_tokens")->valueint > 0,
              "mode %d tokens/s", i);
        CHECK(t, rag == cJSON_IsNumber(cJSON_GetObjectItem(m, "recall_at_k")) && rag == cJSON_IsNumber(cJSON_GetObjectItem(m, "citation_accuracy")),
              "mode %d: recall/citation only with retrieval", i);
        double f = cJSON_GetObjectItem(m, "f1")->valuedouble;
        CHECK(t, f >= 0 && f <= 1, "mode %d F1 %g", i, f);
    }
    cJSON_Delete(j);

    /* errors */
    char bad[512];
    snprintf(bad, sizeof bad, "%s/bad.jsonl", dir);
    write_file(bad, "{\"question\":\"q\",\"answer\":\"a\"}\n{\"question\":\"q2\"}\n");
    snprintf(cmd, sizeof cmd, BIN " eval --kb %s --qa %s 2>&1", kbdir, bad);
    char want[600];
    snprintf(want, sizeof want, "%s:2: field 'answer': missing", bad);
    CHECK(t, pf_test_run(cmd, out, sizeof out) == 1 && strstr(out, want), "bad qa: %s", out);
    snprintf(cmd, sizeof cmd, BIN " eval --kb %s --qa %s --modes base 2>&1", kbdir, qa_path);
    CHECK(t, pf_test_run(cmd, out, sizeof out) == 1 && strstr(out, "need a model"), "base without -m: %s", out);
    snprintf(cmd, sizeof cmd, BIN " eval --kb %s --qa %s -m " TINY " --modes lora 2>&1", kbdir, qa_path);
    CHECK(t, pf_test_run(cmd, out, sizeof out) == 1 && strstr(out, "--lora"), "lora without adapter: %s", out);
    snprintf(cmd, sizeof cmd, BIN " eval --kb %s --qa %s --lora " TINY_LORA " 2>&1", kbdir, qa_path);
    CHECK(t, pf_test_run(cmd, out, sizeof out) == 1 && strstr(out, "--lora needs a model"), "lora without -m: %s", out);
    snprintf(cmd, sizeof cmd, BIN " eval --kb %s --qa %s --modes rag,bogus 2>&1", kbdir, qa_path);
    CHECK(t, pf_test_run(cmd, out, sizeof out) == 1 && strstr(out, "bogus"), "bad mode: %s", out);
    CHECK(t, pf_test_run(BIN " eval --qa x.jsonl 2>/dev/null", out, sizeof out) == 1, "no --kb");
    CHECK(t, pf_test_run(BIN " eval -h", out, sizeof out) == 0 && strstr(out, "usage: phiforge eval"), "eval -h");
    /* demo: its own help and a missing pack (the whole run is CI's `demo --quick`) */
    CHECK(t, pf_test_run(BIN " demo -h", out, sizeof out) == 0 && strstr(out, "usage: phiforge demo"), "demo -h");
    snprintf(cmd, sizeof cmd, BIN " demo --pack %s/nopack --workdir %s/demo 2>&1", dir, dir);
    CHECK(t, pf_test_run(cmd, out, sizeof out) == 1 && strstr(out, "nopack/docs: no such folder"), "demo without a pack: %s", out);

    pf_retriever_free(r);
    pf_kb_close(kb);
    pf_qa_free(&qa);
}

int main(void) {
    pf_test t = {0};
    char dir[] = "/tmp/pf_eval_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    test_qa_load(&t, dir);
    test_matching(&t);
    test_scoring(&t);
    if (access(BIN, X_OK) != 0) {
        CHECK(&t, 0, BIN " missing (run make)");
    } else {
        char kbdir[600], cmd[1400];
        snprintf(kbdir, sizeof kbdir, "%s/kb", dir);
        snprintf(cmd, sizeof cmd, BIN " ingest --kb %s tests/data/rag >/dev/null 2>&1", kbdir);
        CHECK(&t, system(cmd) == 0, "ingest");
        test_run(&t, kbdir, dir);
    }
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return TEST_REPORT(&t);
}
