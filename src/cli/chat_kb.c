/* phiforge chat --kb DIR -m M.gguf: a conversation answered from a knowledge base.
 *
 * Each turn: retrieve for the question and the two user questions before it (a follow-up such
 * as "and how often?" needs the earlier ones), gate on the question alone (on the combined text
 * when the question has no content word of its own), then answer with the sources in this
 * turn's user message. Earlier turns stay as they were sent, sources included, so the KV cache
 * keeps the whole conversation and only the new turn is decoded. When the next prompt would not
 * fit, the oldest turns lose their sources (their question stays), then the oldest turns go. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/rag_cli.h"

typedef struct kb_turn {
    char *question, *user, *answer; /* user: the message sent (sources + question) */
} kb_turn;

typedef struct kb_chat {
    gen_cli *g;
    rag_cli *r;
    pf_chat *chat;
    kb_turn *turns;
    int64_t n_turns, cap_turns;
    rag_turn last;                  /* the last turn's retrieval, for /sources */
    int32_t *hit_of;                /* source n -> hit index of `last`          */
    int32_t n_sources;
    pf_rag_citations cit;
    char *last_answer;
    bool last_refused;
    int64_t prompt_tokens, reused_tokens;
} kb_chat;

static void turn_free(kb_turn *t) {
    free(t->question), free(t->user), free(t->answer);
}

/* Rebuilds the conversation from the stored turns (after compaction). */
static int rebuild(kb_chat *k, pf_error *err) {
    pf_chat_reset(k->chat);
    for (int64_t i = 0; i < k->n_turns; i++) {
        int rc = pf_chat_add(k->chat, PF_CHAT_USER, k->turns[i].user, err);
        if (!rc) rc = pf_chat_add(k->chat, PF_CHAT_ASSISTANT, k->turns[i].answer, err);
        if (rc) return rc;
    }
    return PF_OK;
}

/* Frees room: the oldest turn that still carries sources keeps only its question; when none
 * does, the oldest turn is dropped. false when there is nothing left to drop. */
static bool compact(kb_chat *k) {
    for (int64_t i = 0; i < k->n_turns; i++)
        if (strcmp(k->turns[i].user, k->turns[i].question)) {
            char *q = strdup(k->turns[i].question);
            if (!q) return false;
            free(k->turns[i].user);
            k->turns[i].user = q;
            return true;
        }
    if (k->n_turns == 0) return false;
    turn_free(&k->turns[0]);
    memmove(k->turns, k->turns + 1, (size_t)(k->n_turns - 1) * sizeof *k->turns);
    k->n_turns--;
    return true;
}

static int push_turn(kb_chat *k, const char *question, const char *user, const char *answer) {
    if (k->n_turns == k->cap_turns) {
        int64_t cap = k->cap_turns ? 2 * k->cap_turns : 8;
        kb_turn *v = realloc(k->turns, (size_t)cap * sizeof *v);
        if (!v) return PF_ERR_NOMEM;
        k->turns = v, k->cap_turns = cap;
    }
    kb_turn *t = &k->turns[k->n_turns];
    t->question = strdup(question), t->user = strdup(user), t->answer = strdup(answer);
    if (!t->question || !t->user || !t->answer) {
        turn_free(t);
        return PF_ERR_NOMEM;
    }
    k->n_turns++;
    return PF_OK;
}

/* The retrieval query: up to two earlier questions, then this one. */
static char *retrieval_query(const kb_chat *k, const char *question) {
    size_t n = strlen(question) + 1;
    int64_t from = k->n_turns > 2 ? k->n_turns - 2 : 0;
    for (int64_t i = from; i < k->n_turns; i++) n += strlen(k->turns[i].question) + 1;
    char *q = malloc(n);
    if (!q) return NULL;
    q[0] = '\0';
    for (int64_t i = from; i < k->n_turns; i++) strcat(strcat(q, k->turns[i].question), " ");
    return strcat(q, question);
}

static void forget_last(kb_chat *k) {
    rag_turn_free(&k->last);
    pf_rag_citations_free(&k->cit);
    free(k->hit_of), k->hit_of = NULL;
    free(k->last_answer), k->last_answer = NULL;
    k->n_sources = 0;
}

static void print_last_sources(const kb_chat *k) {
    if (k->last_refused) printf("(no sources: the knowledge base does not cover the last question)\n");
    else if (!k->last_answer) printf("(no question asked yet)\n");
    else rag_cli_print_sources(stdout, &k->last.res, k->hit_of, k->n_sources, &k->cit, k->last_answer);
}

/* The history handed to the prompt builder: the conversation without its system message. */
static pf_chat_msg *history(const kb_chat *k, int64_t *n) {
    int64_t m = pf_chat_n_messages(k->chat), j = 0;
    pf_chat_msg *h = malloc(((size_t)m + 1) * sizeof *h);
    for (int64_t i = 0; h && i < m; i++)
        if (pf_chat_message(k->chat, i)->role != PF_CHAT_SYSTEM) h[j++] = *pf_chat_message(k->chat, i);
    *n = j;
    return h;
}

/* One question. Returns 0 (answered or refused), 1 after reporting an error for this turn. */
static int kb_turn_run(kb_chat *k, const char *question) {
    pf_error err = {0};
    gen_cli *g = k->g;
    forget_last(k);
    k->last_refused = false;
    char *query = retrieval_query(k, question);
    if (!query) return cli_failf("chat", "out of memory");
    int rc = rag_cli_retrieve(k->r, query, question, &k->last, &err);
    if (!rc && k->last.rel.n_terms == 0) /* "and how often?": judge it with the questions before */
        rc = pf_rag_relevance_check(k->r->kb, query, k->last.res.hits, k->last.res.n, &k->r->gate, &k->last.rel,
                                    k->last.coverage, &err);
    free(query);
    if (rc) return cli_fail("chat", &err);
    if (!k->last.rel.relevant) {
        printf("%s\n", PF_RAG_NOT_COVERED);
        fflush(stdout);
        k->last_refused = true;
        rag_cli_print_refusal_reason(k->r, &k->last);
        if (push_turn(k, question, question, PF_RAG_NOT_COVERED) || rebuild(k, &err))
            return err.code ? cli_fail("chat", &err) : cli_failf("chat", "out of memory");
        return 0;
    }
    int64_t n_ctx = pf_context_n_ctx(g->ctx);
    int64_t reserve = g->n_predict > 0 ? g->n_predict : (n_ctx / 4 < 512 ? n_ctx / 4 : 512);
    pf_rag_prompt_params pp = pf_rag_prompt_default_params();
    pp.instructions = g->system;
    pp.max_tokens = n_ctx - reserve;
    pf_rag_prompt pr = {0};
    for (;;) {
        int64_t nh;
        pf_chat_msg *h = history(k, &nh);
        if (!h) return cli_failf("chat", "out of memory");
        pp.history = h, pp.n_history = nh;
        rc = pf_rag_build_prompt(g->tok, &g->fmt, question, k->last.res.hits, k->last.n_use, &pp, &pr, &err);
        free(h);
        if (rc && rc != PF_ERR_ARG) break;
        bool starved = rc == PF_OK && pr.n_sources == 0 && k->last.n_use > 0;
        if (rc == PF_OK && !starved) break;
        if (rc == PF_OK) pf_rag_prompt_free(&pr);
        if (!compact(k)) { /* the history is empty and still no source fits */
            if (rc == PF_OK)
                rc = pf_error_set(&err, PF_ERR_ARG, "a context of %lld tokens leaves no room for a source (use a larger -c)",
                                  (long long)n_ctx);
            break;
        }
        if ((rc = rebuild(k, &err))) break;
    }
    if (rc) return cli_fail("chat", &err);
    if (k->r->show_prompt) fprintf(stderr, "---- user ----\n%s\n---- (%lld tokens, %d sources) ----\n", pr.user,
                                   (long long)pr.n_ids, pr.n_sources);
    pf_gen_params gp = rag_cli_gen_params(g, gen_cli_print, NULL);
    pf_gen_result res;
    if (pf_chat_respond(k->chat, pr.user, g->smp, &gp, &res, &err)) {
        pf_rag_prompt_free(&pr);
        return cli_fail("chat", &err);
    }
    putchar('\n');
    pf_chat_stats st = pf_chat_last_stats(k->chat);
    k->prompt_tokens += st.n_prompt, k->reused_tokens += st.n_reused;
    const pf_chat_msg *ans = pf_chat_message(k->chat, pf_chat_n_messages(k->chat) - 1);
    k->last_answer = strdup(ans ? ans->content : "");
    k->hit_of = malloc(((size_t)pr.n_sources + 1) * sizeof *k->hit_of);
    k->n_sources = pr.n_sources;
    if (!k->last_answer || !k->hit_of || push_turn(k, question, pr.user, k->last_answer)) {
        pf_rag_prompt_free(&pr);
        return cli_failf("chat", "out of memory");
    }
    for (int32_t i = 0; i < pr.n_sources; i++) k->hit_of[i] = pr.sources[i].hit;
    pf_rag_prompt_free(&pr);
    if (pf_rag_parse_citations(k->last_answer, strlen(k->last_answer), k->n_sources, &k->cit, &err))
        return cli_fail("chat", &err);
    /* cited sources right away (the full list with /sources); markers naming nothing flagged */
    for (int32_t i = 0; i < k->n_sources; i++)
        if (k->cit.count[i] > 0) {
            char label[1024];
            rag_cli_label(&k->last.res.hits[k->hit_of[i]], label, sizeof label);
            printf("  [%d] %s\n", i + 1, label);
        }
    for (int64_t i = 0; i < k->cit.n_markers; i++)
        if (!k->cit.markers[i].valid)
            printf("warning: [%d] names no source (%d sources were given)\n", k->cit.markers[i].source, k->n_sources);
    fflush(stdout);
    return 0;
}

int rag_cli_chat(gen_cli *g, rag_cli *r) {
    pf_error err = {0};
    kb_chat k = {.g = g, .r = r};
    const char *system = g->system ? g->system : pf_rag_default_instructions();
    if (pf_chat_create(g->ctx, g->tok, &g->fmt, system, &k.chat, &err) != PF_OK) return cli_fail(g->cmd, &err);
    const bool tty = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    int turns = 0;
    while (cli_read_message(tty, &line, &cap) >= 0) {
        if (!strcmp(line, "/quit")) break;
        if (!strcmp(line, "/sources")) {
            print_last_sources(&k);
            continue;
        }
        if (!strcmp(line, "/reset")) {
            pf_chat_reset(k.chat);
            for (int64_t i = 0; i < k.n_turns; i++) turn_free(&k.turns[i]);
            k.n_turns = 0;
            forget_last(&k);
            k.last_refused = false;
            if (tty) fputs("(conversation cleared)\n", stderr);
            continue;
        }
        if (kb_turn_run(&k, line) == 0) turns++;
        else if (tty) fputs("(try /reset)\n", stderr);
    }
    free(line);
    forget_last(&k);
    for (int64_t i = 0; i < k.n_turns; i++) turn_free(&k.turns[i]);
    free(k.turns);
    pf_chat_free(k.chat);
    if (turns)
        fprintf(stderr, "chat: %d turns, %lld prompt tokens, %lld of them reused from the KV cache\n", turns,
                (long long)k.prompt_tokens, (long long)k.reused_tokens);
    return 0;
}

