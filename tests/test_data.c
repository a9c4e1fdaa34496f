/* Fine-tuning data: the loss mask of chat records checked token by token against an
 * independent rendering (the whole conversation tokenized at once, assistant spans found by
 * tokenizing each answer on its own), alpaca / prompt-completion / text records, .txt windows,
 * packing invariants (seg/pos, no sample lost or cut), truncation, seeded shuffling and epoch
 * order, the validation split, and every malformed-line error (file:line: field). */
#include <stdint.h>
#include <unistd.h>

#include "testing.h"

static pf_tokenizer *g_tok;
static int32_t g_asst, g_end;

/* ---- helpers ------------------------------------------------------------------------------ */

static pf_dataset *load_str(pf_test *t, const char *name, const char *text, const pf_data_params *p,
                            const pf_chat_format *fmt, pf_dataset **val) {
    pf_error e = {0};
    pf_dataset *d = NULL;
    int rc = pf_dataset_load_memory(name, text, strlen(text), g_tok, fmt, p, &d, val, &e);
    CHECK(t, rc == PF_OK, "load %s: %s", name, e.msg);
    return d;
}

static pf_data_params single_rows(int64_t seq_len) {
    pf_data_params p = pf_data_default_params();
    p.seq_len = seq_len, p.pack = false;
    return p;
}

/* Tokenizes text (parse_special, add_special as given) into a malloc'd array. */
static int32_t *tokenize(const char *text, bool add_special, int64_t *n) {
    *n = pf_tokenize(g_tok, text, strlen(text), add_special, true, NULL, 0, NULL);
    int32_t *ids = malloc((size_t)(*n + 1) * sizeof *ids);
    pf_tokenize(g_tok, text, strlen(text), add_special, true, ids, *n, NULL);
    return ids;
}

/* The reference for one conversation: all tokens (BOS + the whole rendered text tokenized at
 * once) and which of them are targets, found by locating, after each <|assistant|> token, the
 * tokens of that answer + "<|end|>" tokenized on their own. */
static int64_t reference(pf_test *t, const pf_chat_format *fmt, const pf_chat_msg *m, int n, bool all, int32_t **ids,
                         uint8_t **loss) {
    char text[4096];
    pf_chat_render(fmt, m, n, false, text, sizeof text, NULL);
    int64_t len;
    *ids = tokenize(text, true, &len);
    *loss = calloc((size_t)len, 1);
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        if (m[i].role != PF_CHAT_ASSISTANT) continue;
        while (at < len && (*ids)[at] != g_asst) at++;
        CHECK(t, at < len, "reference: no <|assistant|> for message %d", i);
        at++;
        char span[2048];
        snprintf(span, sizeof span, "%s<|end|>", m[i].content);
        int64_t ns;
        int32_t *s = tokenize(span, false, &ns);
        CHECK(t, at + ns <= len && !memcmp(*ids + at, s, (size_t)ns * sizeof *s), "answer %d tokens not found in place", i);
        CHECK(t, s[ns - 1] == g_end, "answer span must end with <|end|>");
        for (int64_t k = 0; k < ns && at + k < len; k++) (*loss)[at + k] = 1;
        free(s);
    }
    if (all) memset(*loss, 1, (size_t)len);
    return len;
}

/* Checks that row 0 of d (one sample per row) holds ids[0..len-1) with the reference targets. */
static void check_row(pf_test *t, const char *what, const pf_dataset *d, const int32_t *ids, const uint8_t *loss,
                      int64_t len) {
    pf_train_row r;
    pf_error e = {0};
    if (!d || pf_dataset_row(d, 0, &r, &e) != PF_OK) {
        CHECK(t, 0, "%s: no row: %s", what, e.msg);
        return;
    }
    CHECK(t, r.n == len - 1, "%s: %lld positions, reference %lld tokens", what, (long long)r.n, (long long)len);
    int64_t bad = -1, n_tgt = 0;
    for (int64_t j = 0; j < r.n && j + 1 < len; j++) {
        const int32_t want = loss[j + 1] ? ids[j + 1] : -1;
        n_tgt += want >= 0;
        if (bad < 0 && (r.ids[j] != ids[j] || r.targets[j] != want || r.pos[j] != j || r.seg[j] != 0)) bad = j;
    }
    CHECK(t, bad < 0, "%s: position %lld differs (id %d/%d target %d/%d)", what, (long long)bad,
          bad >= 0 ? r.ids[bad] : 0, bad >= 0 ? ids[bad] : 0, bad >= 0 ? r.targets[bad] : 0,
          bad >= 0 ? (loss[bad + 1] ? ids[bad + 1] : -1) : 0);
    CHECK(t, pf_dataset_n_target_tokens(d) == n_tgt, "%s: %lld targets, reference %lld", what,
          (long long)pf_dataset_n_target_tokens(d), (long long)n_tgt);
}

/* ---- chat masks --------------------------------------------------------------------------- */

static void test_chat_masks(pf_test *t) {
    const pf_chat_msg conv[] = {
        {PF_CHAT_SYSTEM, "You are a maintenance expert."},
        {PF_CHAT_USER, "What torque for an M8 bolt?"},
        {PF_CHAT_ASSISTANT, "About 25 N·m for class 8.8 steel."},
        {PF_CHAT_USER, "And M10?\nThanks"},
        {PF_CHAT_ASSISTANT, "Roughly 49 N·m.\n\nCheck the datasheet."},
    };
    const char *jsonl =
        "{\"messages\":[{\"role\":\"system\",\"content\":\"You are a maintenance expert.\"},"
        "{\"role\":\"user\",\"content\":\"What torque for an M8 bolt?\"},"
        "{\"role\":\"assistant\",\"content\":\"About 25 N\\u00b7m for class 8.8 steel.\"},"
        "{\"role\":\"user\",\"content\":\"And M10?\\nThanks\"},"
        "{\"role\":\"assistant\",\"content\":\"Roughly 49 N\\u00b7m.\\n\\nCheck the datasheet.\"}]}\n";
    for (int variant = 0; variant < 3; variant++) {
        const pf_chat_format fmt = {.system = variant != 1}; /* 1: system folded into the user turn */
        const bool all = variant == 2;
        pf_data_params p = single_rows(512);
        p.train_on_prompt = all;
        int32_t *ids;
        uint8_t *loss;
        const int64_t len = reference(t, &fmt, conv, 5, all, &ids, &loss);
        CHECK(t, ids[0] == pf_token_bos(g_tok) && pf_tokenizer_add_bos(g_tok), "reference starts with BOS");
        CHECK(t, ids[len - 1] == g_end && loss[len - 1], "last token is a target <|end|>");
        pf_dataset *d = load_str(t, "chat.jsonl", jsonl, &p, &fmt, NULL);
        const char *what = variant == 0 ? "chat" : variant == 1 ? "chat (system folded)" : "chat train_on_prompt";
        check_row(t, what, d, ids, loss, len);
        if (d) CHECK(t, pf_dataset_n_samples(d) == 1 && pf_dataset_n_rows(d) == 1, "%s: one sample", what);
        pf_dataset_free(d);
        free(ids), free(loss);
    }
    /* the default system prompt goes first when a record has none */
    const pf_chat_msg with_sys[] = {{PF_CHAT_SYSTEM, "Be brief."}, {PF_CHAT_USER, "Hi"}, {PF_CHAT_ASSISTANT, "Hello."}};
    const pf_chat_format fmt = {.system = true};
    pf_data_params p = single_rows(512);
    p.system = "Be brief.";
    int32_t *ids;
    uint8_t *loss;
    int64_t len = reference(t, &fmt, with_sys, 3, false, &ids, &loss);
    pf_dataset *d = load_str(t, "s.jsonl",
                             "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},"
                             "{\"role\":\"assistant\",\"content\":\"Hello.\"}]}",
                             &p, &fmt, NULL);
    check_row(t, "default system prompt", d, ids, loss, len);
    pf_dataset_free(d);
    /* alpaca (instruction + input) and prompt/completion are user/assistant conversations */
    const pf_chat_msg alp[] = {{PF_CHAT_USER, "Translate to French.\n\nGood morning"}, {PF_CHAT_ASSISTANT, "Bonjour"}};
    free(ids), free(loss);
    len = reference(t, &fmt, alp, 2, false, &ids, &loss);
    p = single_rows(512);
    d = load_str(t, "a.jsonl", "{\"instruction\":\"Translate to French.\",\"input\":\"Good morning\",\"output\":\"Bonjour\"}",
                 &p, &fmt, NULL);
    check_row(t, "alpaca", d, ids, loss, len);
    pf_dataset_free(d);
    p.format = PF_DATA_ALPACA;
    d = load_str(t, "a.jsonl", "{\"instruction\":\"Translate to French.\",\"input\":\"Good morning\",\"output\":\"Bonjour\"}",
                 &p, &fmt, NULL);
    check_row(t, "alpaca (explicit)", d, ids, loss, len);
    pf_dataset_free(d);
    free(ids), free(loss);
    const pf_chat_msg pc[] = {{PF_CHAT_USER, "2+2="}, {PF_CHAT_ASSISTANT, "4"}};
    len = reference(t, &fmt, pc, 2, false, &ids, &loss);
    p = single_rows(512);
    d = load_str(t, "c.jsonl", "{\"prompt\":\"2+2=\",\"completion\":\"4\"}", &p, &fmt, NULL);
    check_row(t, "prompt/completion", d, ids, loss, len);
    pf_dataset_free(d);
    d = load_str(t, "c.jsonl", "{\"prompt\":\"2+2=\",\"response\":\"4\",\"input\":\"\"}", &p, &fmt, NULL);
    check_row(t, "prompt/response", d, ids, loss, len);
    pf_dataset_free(d);
    free(ids), free(loss);
}

/* ---- text --------------------------------------------------------------------------------- */

static void test_text(pf_test *t) {
    /* {"text"}: BOS text EOS, every token a target */
    int64_t n;
    int32_t *body = tokenize("Bearings fail when lubrication breaks down.", false, &n);
    int32_t *ids = malloc((size_t)(n + 2) * sizeof *ids);
    uint8_t *loss = malloc((size_t)(n + 2));
    ids[0] = pf_token_bos(g_tok), ids[n + 1] = pf_token_eos(g_tok);
    memcpy(ids + 1, body, (size_t)n * sizeof *ids);
    memset(loss, 1, (size_t)n + 2);
    pf_data_params p = single_rows(512);
    pf_dataset *d = load_str(t, "t.jsonl", "\n  \n{\"text\":\"Bearings fail when lubrication breaks down.\"}\r\n\n", &p,
                             NULL, NULL);
    check_row(t, "text record", d, ids, loss, n + 2);
    pf_dataset_free(d);
    free(body), free(ids), free(loss);

    /* .txt: windows of seq_len + 1 tokens overlapping by one cover the whole text once */
    char txt[8192] = "";
    for (int i = 0; i < 60; i++) {
        char line[96];
        snprintf(line, sizeof line, "Line %d: the pump %s at %d rpm.\n", i, i % 3 ? "runs" : "stops", 1000 + 37 * i);
        strcat(txt, line);
    }
    int64_t nt;
    int32_t *all = tokenize(txt, true, &nt);
    int32_t *all2 = realloc(all, (size_t)(nt + 1) * sizeof *all2);
    all = all2;
    all[nt++] = pf_token_eos(g_tok);
    p = single_rows(64);
    d = load_str(t, "corpus.txt", txt, &p, NULL, NULL);
    if (d) {
        const int64_t want_rows = (nt - 1 + 63) / 64;
        CHECK(t, pf_dataset_n_rows(d) == want_rows, ".txt: %lld rows, want %lld", (long long)pf_dataset_n_rows(d),
              (long long)want_rows);
        CHECK(t, pf_dataset_n_tokens(d) == nt - 1 && pf_dataset_n_target_tokens(d) == nt - 1,
              ".txt: %lld positions / %lld targets, want %lld", (long long)pf_dataset_n_tokens(d),
              (long long)pf_dataset_n_target_tokens(d), (long long)nt - 1);
        /* every (input, target) pair of the text appears exactly once */
        uint8_t *seen = calloc((size_t)nt, 1);
        int64_t bad = 0;
        for (int64_t r = 0; r < pf_dataset_n_rows(d); r++) {
            pf_train_row row;
            pf_dataset_row(d, r, &row, NULL);
            /* find the window start: the text position whose next tokens match */
            int64_t s0 = -1;
            for (int64_t s = 0; s + row.n < nt && s0 < 0; s += 64)
                if (!memcmp(all + s, row.ids, (size_t)row.n * sizeof *row.ids) && row.targets[row.n - 1] == all[s + row.n])
                    s0 = s;
            if (s0 < 0) {
                bad++;
                continue;
            }
            for (int64_t j = 0; j < row.n; j++) {
                bad += row.targets[j] != all[s0 + j + 1] || row.pos[j] != j;
                seen[s0 + j + 1]++;
            }
        }
        int64_t missing = 0;
        for (int64_t k = 1; k < nt; k++) missing += seen[k] != 1;
        CHECK(t, bad == 0 && missing == 0, ".txt windows: %lld bad, %lld tokens not predicted exactly once",
              (long long)bad, (long long)missing);
        free(seen);
    }
    pf_dataset_free(d);
    free(all);
}

/* ---- packing, truncation, determinism, split ------------------------------------------------ */

/* n chat records with answers of varied length; record i's answer starts with "R<i> ". */
static char *many_records(int n, uint64_t seed) {
    pf_test_rng rng = {seed};
    size_t cap = (size_t)n * 600 + 1, len = 0;
    char *s = malloc(cap);
    for (int i = 0; i < n; i++) {
        char ans[400];
        int k = snprintf(ans, sizeof ans, "R%d", i);
        const int words = 1 + (int)(pf_test_next(&rng) % 40);
        for (int w = 0; w < words && k < (int)sizeof ans - 16; w++) k += snprintf(ans + k, sizeof ans - (size_t)k, " w%d", (int)(pf_test_next(&rng) % 97));
        len += (size_t)snprintf(s + len, cap - len,
                                "{\"messages\":[{\"role\":\"user\",\"content\":\"Q%d\"},{\"role\":\"assistant\","
                                "\"content\":\"%s\"}]}\n",
                                i, ans);
    }
    return s;
}

/* Order-independent fingerprint of a dataset's samples: sum over samples of a hash of their
 * (id, target) pairs (a sample = a maximal run of equal seg inside a row). */
static uint64_t samples_hash(const pf_dataset *d, int64_t *n_samples) {
    uint64_t sum = 0;
    *n_samples = 0;
    for (int64_t r = 0; r < pf_dataset_n_rows(d); r++) {
        pf_train_row row;
        pf_dataset_row(d, r, &row, NULL);
        uint64_t h = 1469598103934665603ull;
        for (int64_t j = 0; j < row.n; j++) {
            if (j > 0 && row.seg[j] != row.seg[j - 1]) sum += h, h = 1469598103934665603ull, (*n_samples)++;
            h = (h ^ (uint32_t)row.ids[j]) * 1099511628211ull;
            h = (h ^ (uint32_t)row.targets[j]) * 1099511628211ull;
        }
        if (row.n) sum += h, (*n_samples)++;
    }
    return sum;
}

static void test_packing(pf_test *t) {
    char *recs = many_records(200, 7);
    pf_data_params p = pf_data_default_params();
    p.seq_len = 128;
    pf_dataset *packed = load_str(t, "many.jsonl", recs, &p, NULL, NULL);
    p.pack = false;
    pf_dataset *single = load_str(t, "many.jsonl", recs, &p, NULL, NULL);
    if (packed && single) {
        int64_t bad_seg = 0, bad_pos = 0, bad_n = 0, positions = 0;
        for (int64_t r = 0; r < pf_dataset_n_rows(packed); r++) {
            pf_train_row row;
            pf_dataset_row(packed, r, &row, NULL);
            bad_n += row.n < 1 || row.n > p.seq_len;
            positions += row.n;
            for (int64_t j = 0; j < row.n; j++) {
                if (j == 0) bad_seg += row.seg[0] != 0, bad_pos += row.pos[0] != 0;
                else if (row.seg[j] == row.seg[j - 1]) bad_pos += row.pos[j] != row.pos[j - 1] + 1;
                else bad_seg += row.seg[j] != row.seg[j - 1] + 1, bad_pos += row.pos[j] != 0;
            }
        }
        CHECK(t, bad_n == 0 && bad_seg == 0 && bad_pos == 0, "packing: %lld bad rows, %lld seg, %lld pos", (long long)bad_n,
              (long long)bad_seg, (long long)bad_pos);
        int64_t ns_p, ns_s;
        const uint64_t hp = samples_hash(packed, &ns_p), hs = samples_hash(single, &ns_s);
        CHECK(t, ns_p == 200 && ns_s == 200 && hp == hs, "packing lost or changed samples (%lld / %lld)", (long long)ns_p,
              (long long)ns_s);
        CHECK(t, positions == pf_dataset_n_tokens(single) &&
                     pf_dataset_n_target_tokens(packed) == pf_dataset_n_target_tokens(single),
              "packing changed token counts");
        /* best-fit decreasing: rows are full except for a small remainder */
        const double fill = (double)positions / (double)(pf_dataset_n_rows(packed) * p.seq_len);
        CHECK(t, pf_dataset_n_rows(packed) < 200 && fill > 0.9, "packing fill %.3f with %lld rows", fill,
              (long long)pf_dataset_n_rows(packed));
        printf("packing: 200 samples -> %lld rows of %lld, fill %.1f%%\n", (long long)pf_dataset_n_rows(packed),
               (long long)p.seq_len, 100 * fill);
    }
    pf_dataset_free(packed), pf_dataset_free(single);

    /* determinism: same seed same rows; another seed another order, same samples */
    p = pf_data_default_params();
    p.seq_len = 128;
    pf_dataset *a = load_str(t, "many.jsonl", recs, &p, NULL, NULL), *b = load_str(t, "many.jsonl", recs, &p, NULL, NULL);
    p.seed = 43;
    pf_dataset *c = load_str(t, "many.jsonl", recs, &p, NULL, NULL);
    if (a && b && c) {
        bool same = pf_dataset_n_rows(a) == pf_dataset_n_rows(b), differ = false;
        for (int64_t r = 0; same && r < pf_dataset_n_rows(a); r++) {
            pf_train_row x, y, z;
            pf_dataset_row(a, r, &x, NULL), pf_dataset_row(b, r, &y, NULL);
            same = x.n == y.n && !memcmp(x.ids, y.ids, (size_t)x.n * 4) && !memcmp(x.targets, y.targets, (size_t)x.n * 4) &&
                   !memcmp(x.seg, y.seg, (size_t)x.n * 4);
            if (r < pf_dataset_n_rows(c) && pf_dataset_row(c, r, &z, NULL) == PF_OK)
                differ |= z.n != x.n || memcmp(x.ids, z.ids, (size_t)x.n * 4) != 0;
        }
        CHECK(t, same, "same seed gave different rows");
        CHECK(t, differ, "another seed gave the same rows");
        int64_t n1, n2;
        CHECK(t, samples_hash(a, &n1) == samples_hash(c, &n2) && n1 == n2, "another seed changed the samples");
        /* epoch order: a permutation, fixed by seed and epoch */
        const int64_t nr = pf_dataset_n_rows(a);
        int64_t *o1 = malloc((size_t)nr * 8), *o2 = malloc((size_t)nr * 8), *o3 = malloc((size_t)nr * 8);
        uint8_t *hit = calloc((size_t)nr, 1);
        pf_dataset_epoch_order(a, 5, 0, o1), pf_dataset_epoch_order(a, 5, 0, o2), pf_dataset_epoch_order(a, 5, 1, o3);
        bool perm = true;
        for (int64_t i = 0; i < nr; i++) perm &= o1[i] >= 0 && o1[i] < nr && !hit[o1[i]]++;
        CHECK(t, perm, "epoch order is not a permutation");
        CHECK(t, !memcmp(o1, o2, (size_t)nr * 8), "epoch order not reproducible");
        CHECK(t, memcmp(o1, o3, (size_t)nr * 8) != 0, "epochs 0 and 1 in the same order");
        free(o1), free(o2), free(o3), free(hit);
    }
    pf_dataset_free(a), pf_dataset_free(b), pf_dataset_free(c);

    /* the thread count does not change the result, nor which bad line is reported */
    p = pf_data_default_params();
    p.seq_len = 128, p.n_threads = 1;
    a = load_str(t, "many.jsonl", recs, &p, NULL, NULL);
    p.n_threads = 3;
    b = load_str(t, "many.jsonl", recs, &p, NULL, NULL);
    if (a && b) {
        bool same = pf_dataset_n_rows(a) == pf_dataset_n_rows(b) && pf_dataset_n_tokens(a) == pf_dataset_n_tokens(b);
        for (int64_t r = 0; same && r < pf_dataset_n_rows(a); r++) {
            pf_train_row x, y;
            pf_dataset_row(a, r, &x, NULL), pf_dataset_row(b, r, &y, NULL);
            same = x.n == y.n && !memcmp(x.ids, y.ids, (size_t)x.n * 4) && !memcmp(x.targets, y.targets, (size_t)x.n * 4) &&
                   !memcmp(x.pos, y.pos, (size_t)x.n * 4) && !memcmp(x.seg, y.seg, (size_t)x.n * 4);
        }
        CHECK(t, same, "1 and 3 threads gave different rows");
    }
    pf_dataset_free(a), pf_dataset_free(b);
    {   /* bad lines at 150 and 190 of 200: line 150 is reported whatever the split */
        char *bad = strdup(recs);
        int64_t ln = 1;
        for (char *q = bad; *q; q++)
            if (*q == '\n' && (++ln == 150 || ln == 190)) q[1] = '[';
        for (int nt = 1; nt <= 4; nt++) {
            pf_error e = {0};
            pf_dataset *d = NULL;
            p.n_threads = nt;
            int rc = pf_dataset_load_memory("many.jsonl", bad, strlen(bad), g_tok, NULL, &p, &d, NULL, &e);
            CHECK(t, rc == PF_ERR_FORMAT && strstr(e.msg, "many.jsonl:150: record: invalid JSON") && !d, "%d threads: %s", nt, e.msg);
        }
        free(bad);
    }

    /* validation split: disjoint, together the whole set, round(0.25 * 200) held out */
    p = pf_data_default_params();
    p.seq_len = 128, p.pack = false, p.val_fraction = 0.25;
    pf_dataset *val = NULL, *tr = load_str(t, "many.jsonl", recs, &p, NULL, &val);
    p.val_fraction = 0;
    pf_dataset *whole = load_str(t, "many.jsonl", recs, &p, NULL, NULL);
    if (tr && val && whole) {
        int64_t nt, nv, nw;
        const uint64_t ht = samples_hash(tr, &nt), hv = samples_hash(val, &nv), hw = samples_hash(whole, &nw);
        CHECK(t, nv == 50 && nt == 150 && ht + hv == hw, "split: %lld train + %lld val samples", (long long)nt, (long long)nv);
        CHECK(t, pf_dataset_n_samples(val) == 50 && pf_dataset_n_samples(tr) == 150, "split sample counts");
    }
    pf_dataset_free(tr), pf_dataset_free(val), pf_dataset_free(whole);
    free(recs);

    /* truncation: a sample longer than seq_len + 1 is cut, counted, still starts right */
    p = single_rows(16);
    const char *longrec = "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\",\"content\":"
                          "\"one two three four five six seven eight nine ten eleven twelve thirteen fourteen\"}]}";
    const pf_chat_msg lm[] = {{PF_CHAT_USER, "Hi"},
                              {PF_CHAT_ASSISTANT,
                               "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"}};
    const pf_chat_format fmt = {.system = true};
    int32_t *ids;
    uint8_t *loss;
    const int64_t len = reference(t, &fmt, lm, 2, false, &ids, &loss);
    pf_dataset *d = load_str(t, "long.jsonl", longrec, &p, NULL, NULL);
    if (d) {
        CHECK(t, len > 17 && pf_dataset_n_truncated(d) == 1, "truncated %lld", (long long)pf_dataset_n_truncated(d));
        check_row(t, "truncated sample", d, ids, loss, 17);
    }
    pf_dataset_free(d);
    /* a sample whose targets all fall past seq_len is dropped; none left is an error */
    p = single_rows(4);
    pf_error e = {0};
    pf_dataset *tr2 = NULL;
    const char *late = "{\"messages\":[{\"role\":\"user\",\"content\":\"a long question with many words in it\"},"
                       "{\"role\":\"assistant\",\"content\":\"ok\"}]}";
    int rc = pf_dataset_load_memory("late.jsonl", late, strlen(late), g_tok, NULL, &p, &tr2, NULL, &e);
    CHECK(t, rc == PF_ERR_FORMAT && strstr(e.msg, "late.jsonl") && strstr(e.msg, "1 dropped"), "all dropped: %d %s", rc, e.msg);
    free(ids), free(loss);
}

/* ---- errors ------------------------------------------------------------------------------- */

static void test_errors(pf_test *t) {
    static const struct { const char *text, *want; int code; } cases[] = {
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"}]}\n{bad json\n",
         "bad.jsonl:2: record: invalid JSON", PF_ERR_FORMAT},
        {"[1,2]", "bad.jsonl:1: record: not a JSON object", PF_ERR_FORMAT},
        {"{\"a\":1} x", "bad.jsonl:1: record: data after the JSON value", PF_ERR_FORMAT},
        {"{\"foo\":\"bar\"}", "bad.jsonl:1: record: no known field", PF_ERR_FORMAT},
        {"{\"messages\":\"hi\"}", "bad.jsonl:1: messages: not an array", PF_ERR_FORMAT},
        {"{\"messages\":[]}", "bad.jsonl:1: messages: empty", PF_ERR_FORMAT},
        {"{\"messages\":[1]}", "bad.jsonl:1: messages[0]: not an object", PF_ERR_FORMAT},
        {"{\"messages\":[{\"content\":\"x\"}]}", "bad.jsonl:1: messages[0].role: missing", PF_ERR_FORMAT},
        {"{\"messages\":[{\"role\":3,\"content\":\"x\"}]}", "bad.jsonl:1: messages[0].role: not a string", PF_ERR_FORMAT},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"bot\",\"content\":\"b\"}]}",
         "bad.jsonl:1: messages[1].role: unknown role 'bot'", PF_ERR_FORMAT},
        {"{\"messages\":[{\"role\":\"user\"}]}", "bad.jsonl:1: messages[0].content: missing", PF_ERR_FORMAT},
        {"{\"messages\":[{\"role\":\"user\",\"content\":[\"a\"]}]}", "bad.jsonl:1: messages[0].content: not a string",
         PF_ERR_FORMAT},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"\"}]}",
         "bad.jsonl:1: messages[1].content: empty assistant message", PF_ERR_FORMAT},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}", "bad.jsonl:1: messages: no assistant message",
         PF_ERR_FORMAT},
        {"{\"instruction\":\"a\"}", "bad.jsonl:1: output: missing", PF_ERR_FORMAT},
        {"{\"instruction\":\"a\",\"input\":5,\"output\":\"b\"}", "bad.jsonl:1: input: not a string", PF_ERR_FORMAT},
        {"{\"instruction\":\"a\",\"output\":\"\"}", "bad.jsonl:1: output: empty assistant message", PF_ERR_FORMAT},
        {"{\"prompt\":\"a\"}", "bad.jsonl:1: completion: missing", PF_ERR_FORMAT},
        {"{\"prompt\":null,\"completion\":\"b\"}", "bad.jsonl:1: prompt: not a string", PF_ERR_FORMAT},
        {"{\"text\":\"\"}", "bad.jsonl:1: text: empty", PF_ERR_FORMAT},
        {"{\"text\":1}", "bad.jsonl:1: text: not a string", PF_ERR_FORMAT},
        {"\n\n", "bad.jsonl: no samples", PF_ERR_FORMAT},
    };
    pf_data_params p = pf_data_default_params();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pf_error e = {0};
        pf_dataset *d = NULL, *v = NULL;
        int rc = pf_dataset_load_memory("bad.jsonl", cases[i].text, strlen(cases[i].text), g_tok, NULL, &p, &d, &v, &e);
        CHECK(t, rc == cases[i].code && strstr(e.msg, cases[i].want) && !d && !v, "case %zu: rc %d, '%s' (want '%s')", i, rc,
              e.msg, cases[i].want);
    }
    /* a forced format reports its own missing field */
    pf_error e = {0};
    pf_dataset *d = NULL;
    p.format = PF_DATA_CHAT;
    int rc = pf_dataset_load_memory("f.jsonl", "{\"text\":\"x\"}", 12, g_tok, NULL, &p, &d, NULL, &e);
    CHECK(t, rc == PF_ERR_FORMAT && strstr(e.msg, "f.jsonl:1: messages: missing"), "forced chat: %s", e.msg);
    /* bad parameters */
    p = pf_data_default_params();
    p.seq_len = 1;
    rc = pf_dataset_load_memory("f.jsonl", "{\"text\":\"x\"}", 12, g_tok, NULL, &p, &d, NULL, &e);
    CHECK(t, rc == PF_ERR_ARG && strstr(e.msg, "seq_len"), "seq_len 1: %s", e.msg);
    p = pf_data_default_params();
    p.val_fraction = 1.0;
    rc = pf_dataset_load_memory("f.jsonl", "{\"text\":\"x\"}", 12, g_tok, NULL, &p, &d, NULL, &e);
    CHECK(t, rc == PF_ERR_ARG && strstr(e.msg, "val_fraction"), "val_fraction 1: %s", e.msg);
    rc = pf_dataset_load("/nonexistent/x.jsonl", g_tok, NULL, &p, &d, NULL, &e);
    CHECK(t, rc == PF_ERR_IO && strstr(e.msg, "/nonexistent/x.jsonl"), "missing file: %s", e.msg);
    pf_train_row row;
    CHECK(t, pf_dataset_row(NULL, 0, &row, &e) == PF_ERR_ARG, "row of NULL");
    pf_data_format f;
    CHECK(t, pf_data_format_from_name("alpaca", &f) == PF_OK && f == PF_DATA_ALPACA, "format name");
    CHECK(t, pf_data_format_from_name("sharegpt", &f) == PF_ERR_NOT_FOUND, "unknown format name");
    CHECK(t, !strcmp(pf_data_format_name(PF_DATA_COMPLETION), "completion"), "format_name");
}

/* pf_dataset_load from a real file (and AUTO picking .txt by extension). */
static void test_file(pf_test *t) {
    char path[] = "/tmp/pf_test_data_XXXXXX.txt";
    int fd = mkstemps(path, 4);
    CHECK(t, fd >= 0, "mkstemps");
    if (fd < 0) return;
    const char *text = "{\"messages\":[]} is not parsed as JSON in a .txt file";
    CHECK(t, write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write");
    close(fd);
    pf_data_params p = pf_data_default_params();
    pf_error e = {0};
    pf_dataset *d = NULL;
    int rc = pf_dataset_load(path, g_tok, NULL, &p, &d, NULL, &e);
    CHECK(t, rc == PF_OK && d && pf_dataset_n_rows(d) == 1 && pf_dataset_n_target_tokens(d) == pf_dataset_n_tokens(d),
          ".txt file: %s", e.msg);
    pf_dataset_free(d);
    unlink(path);
}

int main(void) {
    pf_test t = {0};
    char path[512];
    pf_gguf *g = NULL;
    pf_error e = {0};
    if (!pf_test_data_path(path, sizeof path, "models", "phi3-tiny-f16.gguf") || pf_gguf_open(path, &g, &e) != PF_OK ||
        pf_tokenizer_load(g, &g_tok, &e) != PF_OK) {
        printf("SKIP: phi3-tiny-f16.gguf tokenizer: %s\n", e.msg);
        pf_gguf_close(g);
        return TEST_REPORT(&t);
    }
    g_asst = pf_token_lookup(g_tok, "<|assistant|>", 13);
    g_end = pf_token_lookup(g_tok, "<|end|>", 7);
    CHECK(&t, g_asst >= 0 && g_end >= 0, "Phi-3 role tokens");
    test_chat_masks(&t);
    test_text(&t);
    test_packing(&t);
    test_errors(&t);
    test_file(&t);
    pf_tokenizer_free(g_tok);
    pf_gguf_close(g);
    return TEST_REPORT(&t);
}
