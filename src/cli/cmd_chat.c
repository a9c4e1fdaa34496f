/* phiforge chat -m M.gguf [--system S] [--kb DIR [-k K] ...] [sampling options]
 * Interactive chat: one user message per line of stdin (a pipe works too), answers streamed to
 * stdout, one per line. "/reset" starts over (keeping the system prompt), "/quit" or EOF ends.
 * The "> " prompt marker is printed only when stdin is a terminal.
 * With --kb every turn retrieves from the knowledge base (see run_kb). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/rag_cli.h"

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge chat -m MODEL.gguf [--system TEXT] [options]\n"
               "  Reads one user message per line from stdin and streams each answer to stdout.\n"
               "  /reset clears the conversation (the system prompt stays); /quit or end of input ends.\n"
               "  Only the new part of each turn's prompt is decoded: the KV cache keeps the rest.\n"
               "  With --kb DIR each turn retrieves passages (for the question and the two before it),\n"
               "  answers from them with [n] citations, or says that the knowledge base does not cover\n"
               "  the question; /sources lists the last turn's sources. With --kb prompt-lookup\n"
               "  speculative decoding is on (--draft 8; --draft 0 turns it off).\n");
    gen_cli_usage(f);
    rag_cli_usage(f);
}

/* One session over the lines of stdin. */
static int run(gen_cli *g) {
    pf_error err = {0};
    pf_chat *chat = NULL;
    if (pf_chat_create(g->ctx, g->tok, &g->fmt, g->system, &chat, &err) != PF_OK) return cli_fail(g->cmd, &err);
    const bool tty = isatty(STDIN_FILENO);
    pf_gen_params gp = pf_gen_default_params();
    gp.max_tokens = g->n_predict;
    gp.stop = g->stop, gp.n_stop = g->n_stop;
    gp.n_draft = g->n_draft;
    gp.on_text = gen_cli_print;
    pf_gen_result total = {0};
    char *line = NULL;
    size_t cap = 0;
    int turns = 0;
    while (cli_read_message(tty, &line, &cap) >= 0) {
        if (!strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            pf_chat_reset(chat);
            if (tty) fputs("(conversation cleared)\n", stderr);
            continue;
        }
        pf_gen_result r;
        if (pf_chat_respond(chat, line, g->smp, &gp, &r, &err) != PF_OK) {
            /* e.g. the conversation outgrew the context: the message was dropped, go on */
            cli_fail(g->cmd, &err);
            if (tty) fputs("(try /reset)\n", stderr);
            continue;
        }
        putchar('\n');
        fflush(stdout);
        turns++;
        total.n_prompt += r.n_prompt, total.prompt_ms += r.prompt_ms;
        total.n_gen += r.n_gen, total.gen_ms += r.gen_ms;
        total.stop = r.stop;
    }
    free(line);
    pf_chat_free(chat);
    if (turns) {
        fprintf(stderr, "chat: %d answers\n", turns);
        gen_cli_timings(g, &total);
    }
    return 0;
}

int cmd_chat(int argc, char **argv) {
    static const struct option opts[] = {GEN_CLI_LONG, RAG_CLI_LONG, {0, 0, 0, 0}};
    gen_cli g;
    gen_cli_init(&g, "chat");
    g.n_draft = -1; /* not given: chosen below by mode */
    rag_cli kb;
    rag_cli_init(&kb, "chat");
    bool kb_option = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, GEN_CLI_SHORT RAG_CLI_SHORT, opts, NULL)) != -1) {
        int r = gen_cli_option(&g, c, optarg);
        if (r == 0 && (r = rag_cli_option(&kb, c, optarg)) > 0) kb_option = true;
        if (r < 0) return 1;
        if (r > 0) continue;
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        usage(stderr);
        return 1;
    }
    if (optind != argc || !g.model) {
        usage(stderr);
        return 1;
    }
    if (kb_option && !kb.kb_dir) return cli_failf("chat", "knowledge-base options need --kb DIR");
    /* answers over sources quote them: prompt lookup is on by default with --kb */
    if (g.n_draft < 0) g.n_draft = kb.kb_dir ? PF_LOOKUP_DEFAULT_N_DRAFT : 0;
    int rc = kb.kb_dir ? rag_cli_open(&kb, g.threads) : 0;
    if (rc == 0) rc = gen_cli_load(&g);
    if (rc == 0) rc = kb.kb_dir ? rag_cli_chat(&g, &kb) : run(&g);
    gen_cli_free(&g);
    rag_cli_free(&kb);
    return rc;
}
