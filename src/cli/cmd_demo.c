/* phiforge demo [--quick] [--model M] [--embed-model E] [--workdir DIR] [--pack DIR]
 *
 * The main job end to end on the industry pack (examples/pumps), by running the commands a user
 * would type (each printed before it runs):
 *   1. ingest the pack's documents into a knowledge base;
 *   2. ask three questions (two the documents answer, one they do not) and print the answers with
 *      their sources;
 *   3. fine-tune a LoRA adapter on the pack's training chats (`phiforge finetune`; the tiny model
 *      offline: CPU training of Phi-3-mini takes hours);
 *   4. evaluate: the eval table of every mode the models present allow.
 * Models: pulled ones when the cache has them (phi-3-mini-4k-instruct, bge-small-en-v1.5 or
 * all-minilm-l6-v2), else what works offline: BM25 retrieval, extractive answers and the tiny
 * random-weight test model, which shows the mechanics and nothing about quality. What was used
 * and what it means for the numbers is printed. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

#define DEMO_TINY "tests/data/phi3-tiny-f16.gguf"
#define DEMO_MAX_ARGS 32

enum { DEMO_OPT_QUICK = 800, DEMO_OPT_MODEL, DEMO_OPT_EMBED, DEMO_OPT_WORKDIR, DEMO_OPT_PACK };

static void usage(FILE *f) {
    fprintf(f, "usage: phiforge demo [--quick] [--model M] [--embed-model E] [--workdir DIR] [--pack DIR]\n"
               "  Ingests the industry pack, answers three questions with sources, fine-tunes a LoRA on\n"
               "  the pack's training chats and prints the eval table (base / rag / lora / rag+lora).\n"
               "  Uses pulled models when the cache has them (phiforge pull phi-3-mini-4k-instruct,\n"
               "  bge-small-en-v1.5), else BM25, extractive answers and the tiny random-weight test model.\n"
               "      --quick               a short run (CI): fewer questions for the generating modes\n"
               "      --model M             the chat model (GGUF path or pulled name)\n"
               "      --embed-model E       the embedding model (GGUF path or pulled name)\n"
               "      --workdir DIR         where the knowledge base and the adapter go (build/demo)\n"
               "      --pack DIR            the industry pack (examples/pumps)\n"
               "  -t, --threads N           threads (default: all cores)\n");
}

/* argv builder: each run is printed as the command line a user would type. */
typedef struct demo_cmd {
    char *argv[DEMO_MAX_ARGS + 1];
    int argc;
} demo_cmd;

static void add(demo_cmd *c, const char *a) {
    if (c->argc < DEMO_MAX_ARGS) c->argv[c->argc++] = (char *)a, c->argv[c->argc] = NULL;
}

static int run_cmd(demo_cmd *c, int (*fn)(int, char **)) {
    printf("\n$ phiforge");
    for (int i = 0; i < c->argc; i++) printf(strchr(c->argv[i], ' ') || strchr(c->argv[i], '?') ? " '%s'" : " %s", c->argv[i]);
    printf("\n");
    fflush(stdout);
    int rc = fn(c->argc, c->argv);
    fflush(stdout);
    fflush(stderr);
    return rc;
}

static void step(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void step(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("\n==== ");
    vprintf(fmt, ap);
    printf(" ====\n");
    va_end(ap);
}

static bool is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int mkdir_one(const char *p) { return mkdir(p, 0755) == 0 || errno == EEXIST ? 0 : -1; }

/* First pulled model of names[], into out; false when none is in the cache. */
static bool find_pulled(const char *const *names, int n, char *out, size_t cap, const char **which) {
    for (int i = 0; i < n; i++) {
        pf_error err = {0};
        if (pf_model_resolve(names[i], out, cap, &err) == PF_OK) {
            *which = names[i];
            return true;
        }
    }
    return false;
}

typedef struct demo_opts {
    bool quick;
    const char *model, *embed, *workdir, *pack, *threads;
} demo_opts;

typedef struct demo_models {
    char chat[4096], embed[4096];
    bool have_chat, have_embed, chat_is_tiny;
} demo_models;

static void choose_models(const demo_opts *o, demo_models *m) {
    static const char *const chats[] = {"phi-3-mini-4k-instruct"};
    static const char *const embeds[] = {"bge-small-en-v1.5", "all-minilm-l6-v2"};
    const char *which = NULL;
    if (o->model) snprintf(m->chat, sizeof m->chat, "%s", o->model), m->have_chat = true;
    else if (find_pulled(chats, 1, m->chat, sizeof m->chat, &which)) m->have_chat = true;
    else if (is_file(DEMO_TINY)) snprintf(m->chat, sizeof m->chat, "%s", DEMO_TINY), m->have_chat = m->chat_is_tiny = true;
    if (o->embed) snprintf(m->embed, sizeof m->embed, "%s", o->embed), m->have_embed = true;
    else if (find_pulled(embeds, 2, m->embed, sizeof m->embed, &which)) m->have_embed = true;

    step("Models");
    if (m->have_chat && !m->chat_is_tiny) printf("chat model:  %s\n", m->chat);
    else if (m->chat_is_tiny)
        printf("chat model:  %s: a TINY RANDOM-WEIGHT model (no Phi-3-mini in the cache). Its answers are\n"
               "             noise: it shows the mechanics (prompting, generation, LoRA, scoring), its scores\n"
               "             are meaningless. For real answers: phiforge pull phi-3-mini-4k-instruct\n",
               m->chat);
    else printf("chat model:  none: answers are extractive only\n");
    if (m->have_embed) printf("embeddings:  %s (hybrid retrieval: BM25 + dense, fused)\n", m->embed);
    else printf("embeddings:  none in the cache: lexical retrieval (BM25) only. Paraphrased questions find less;\n"
                "             phiforge pull bge-small-en-v1.5 adds dense retrieval.\n");
    printf("answers:     %s\n", m->have_chat && !m->chat_is_tiny
                                    ? "generated by the chat model from the retrieved sources, with [n] citations"
                                    : "extractive: the retrieved sentences that match the question, with [n] citations");
}

static int demo_ingest(const demo_opts *o, const demo_models *m, const char *kb, const char *docs) {
    step("1. Ingest the %s documents into a knowledge base", o->pack);
    demo_cmd c = {0};
    add(&c, "ingest"), add(&c, "--kb"), add(&c, kb);
    if (m->have_embed) add(&c, "--embed-model"), add(&c, m->embed);
    if (o->threads) add(&c, "-t"), add(&c, o->threads);
    add(&c, docs);
    return run_cmd(&c, cmd_ingest);
}

static int demo_ask(const demo_opts *o, const demo_models *m, const char *kb) {
    static const char *const questions[3] = {
        "How often do the bearings of a frame-mounted H-300 need fresh grease?",
        "What does fault E-171 indicate?",
        "Can HydraLink C3 be connected to a BACnet/IP building management system?", /* not in the documents */
    };
    step("2. Ask: answers with their sources (the third question is not covered by the documents)");
    bool generate = m->have_chat && !m->chat_is_tiny;
    for (int i = 0; i < 3; i++) {
        demo_cmd c = {0};
        add(&c, "ask"), add(&c, "--kb"), add(&c, kb);
        if (generate) add(&c, "-m"), add(&c, m->chat), add(&c, "-n"), add(&c, "160");
        if (o->threads) add(&c, "-t"), add(&c, o->threads);
        add(&c, questions[i]);
        int rc = run_cmd(&c, cmd_ask);
        if (rc == 1) return 1; /* 2 is "not covered": an answer too */
    }
    return 0;
}

/* Fine-tunes on the pack (tiny model offline); *adapter gets the adapter to evaluate, "" when none. */
static int demo_finetune(const demo_opts *o, const demo_models *m, const char *workdir, const char *kb, char *adapter,
                         size_t cap) {
    step("3. Fine-tune a LoRA adapter on %s/train.jsonl", o->pack);
    adapter[0] = '\0';
    /* CPU training of a 3.8B model takes hours on 2 cores: the demo trains the tiny model, which
     * shows the loop (loss, progress, adapter files) in seconds. */
    const char *base = m->chat_is_tiny || !m->have_chat ? DEMO_TINY : NULL;
    if (!base) {
        printf("Training a LoRA for %s on this CPU takes hours, so the demo skips it. Run it yourself:\n"
               "  phiforge finetune -m %s --data %s/train.jsonl --val %s/val.jsonl -o %s/lora-phi3\n"
               "then: phiforge eval --kb %s --qa %s/qa.jsonl -m %s --lora %s/lora-phi3/adapter.gguf\n",
               m->chat, m->chat, o->pack, o->pack, workdir, kb, o->pack, m->chat, workdir);
        return 0;
    }
    if (!is_file(base)) {
        printf("%s is missing: no adapter is trained.\n", base);
        return 0;
    }
    printf("Training on the tiny random-weight model: this shows the mechanics (data, loss, progress, the\n"
           "adapter files), not a useful adapter.\n");
    char data[4096], val[4096], out[2048];
    snprintf(data, sizeof data, "%s/train.jsonl", o->pack);
    snprintf(val, sizeof val, "%s/val.jsonl", o->pack);
    snprintf(out, sizeof out, "%s/lora", workdir);
    demo_cmd c = {0};
    add(&c, "finetune"), add(&c, "-m"), add(&c, base), add(&c, "--data"), add(&c, data), add(&c, "--val"), add(&c, val);
    /* 384 tokens hold a whole sample (the long system prompt included) with its answer */
    add(&c, "-o"), add(&c, out), add(&c, "--epochs"), add(&c, "1"), add(&c, "--seq"), add(&c, "384");
    if (o->quick) add(&c, "--max-steps"), add(&c, "4");
    if (o->threads) add(&c, "-t"), add(&c, o->threads);
    int rc = run_cmd(&c, cmd_finetune);
    if (rc) return rc;
    snprintf(adapter, cap, "%s/adapter.gguf", out);
    return 0;
}

static int demo_eval(const demo_opts *o, const demo_models *m, const char *kb, const char *adapter) {
    step("4. Evaluate on %s/qa.jsonl: RAG, fine-tuning, or both?", o->pack);
    char qa[4096];
    snprintf(qa, sizeof qa, "%s/qa.jsonl", o->pack);
    printf("Columns: exact match and token F1 against the reference answers (SQuAD), cite-acc = the gold\n"
           "document is among the cited sources, recall@5 = it is among the 5 passages retrieved,\n"
           "refusal = unanswerable questions refused, false-ref = answerable questions refused.\n");
    demo_cmd c = {0};
    add(&c, "eval"), add(&c, "--kb"), add(&c, kb), add(&c, "--qa"), add(&c, qa);
    if (o->threads) add(&c, "-t"), add(&c, o->threads);
    int rc = run_cmd(&c, cmd_eval);
    if (rc || !m->have_chat) return rc;
    /* the generating modes cost a prompt + answer per question: a sample of the questions */
    const char *limit = m->chat_is_tiny ? (o->quick ? "6" : "24") : (o->quick ? "3" : "12");
    c = (demo_cmd){0};
    add(&c, "eval"), add(&c, "--kb"), add(&c, kb), add(&c, "--qa"), add(&c, qa), add(&c, "-m"), add(&c, m->chat);
    if (adapter[0]) add(&c, "--lora"), add(&c, adapter);
    add(&c, "--limit"), add(&c, limit), add(&c, "-n"), add(&c, m->chat_is_tiny ? "16" : "48");
    if (o->threads) add(&c, "-t"), add(&c, o->threads);
    printf("\nThe generating modes on the first %s questions (each costs a prompt and an answer):\n", limit);
    return run_cmd(&c, cmd_eval);
}

static void conclude(const demo_models *m) {
    step("What the numbers say");
    if (m->chat_is_tiny || !m->have_chat)
        printf("Offline, only the first table means something: retrieval finds the gold document for most\n"
               "questions (recall@5) and the extractive answer cites it (cite-acc); exact match stays low\n"
               "because a quoted sentence is longer than a reference answer (F1 credits the overlap). The\n"
               "tiny model's rows are noise by construction: they prove that every mode runs and is scored.\n"
               "With Phi-3-mini (phiforge pull phi-3-mini-4k-instruct) the rag rows become real answers, and\n"
               "base vs rag shows how much the documents add to what the model knows by itself.\n");
    else
        printf("base vs rag: what the documents add to what the model knows by itself. A LoRA trained on the\n"
               "pack's chats teaches terminology and answer style; facts still come from retrieval, which\n"
               "is also what gives citations and refusals. Compare lora and rag+lora once you have trained one.\n");
}

int cmd_demo(int argc, char **argv) {
    static const struct option opts[] = {{"quick", no_argument, 0, DEMO_OPT_QUICK},   {"model", required_argument, 0, DEMO_OPT_MODEL},
                                         {"embed-model", required_argument, 0, DEMO_OPT_EMBED},
                                         {"workdir", required_argument, 0, DEMO_OPT_WORKDIR},
                                         {"pack", required_argument, 0, DEMO_OPT_PACK},
                                         {"threads", required_argument, 0, 't'},      {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    demo_opts o = {.workdir = "build/demo", .pack = "examples/pumps"};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ht:", opts, NULL)) != -1) {
        switch (c) {
        case DEMO_OPT_QUICK: o.quick = true; break;
        case DEMO_OPT_MODEL: o.model = optarg; break;
        case DEMO_OPT_EMBED: o.embed = optarg; break;
        case DEMO_OPT_WORKDIR: o.workdir = optarg; break;
        case DEMO_OPT_PACK: o.pack = optarg; break;
        case 't': o.threads = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind < argc) { usage(stderr); return cli_failf("demo", "unexpected argument '%s'", argv[optind]); }
    char docs[4096], kb[4096], adapter[4096];
    snprintf(docs, sizeof docs, "%s/docs", o.pack);
    struct stat sb;
    if (stat(docs, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return cli_failf("demo", "%s: no such folder (run from the repository root, or give --pack DIR)", docs);
    if (mkdir_one(o.workdir)) return cli_failf("demo", "cannot create %s: %s", o.workdir, strerror(errno));
    double t0 = cli_now();
    demo_models m = {0};
    choose_models(&o, &m);
    /* one KB per retrieval setup, so switching models never mixes embeddings */
    snprintf(kb, sizeof kb, "%s/kb-%s", o.workdir, m.have_embed ? "hybrid" : "bm25");
    int rc = demo_ingest(&o, &m, kb, docs);
    if (!rc) rc = demo_ask(&o, &m, kb);
    /* a failed training still lets the eval table show (without the lora modes); the exit
     * status reports it */
    int ft_rc = rc ? 0 : demo_finetune(&o, &m, o.workdir, kb, adapter, sizeof adapter);
    if (ft_rc) {
        adapter[0] = '\0';
        printf("phiforge finetune failed (exit status %d): the eval below has no lora modes.\n", ft_rc);
    }
    if (!rc) rc = demo_eval(&o, &m, kb, adapter);
    if (rc || ft_rc) return cli_failf("demo", "the %s step failed (see above)", rc ? "ingest, ask or eval" : "fine-tuning");
    conclude(&m);
    printf("\ndemo finished in %.1f s (knowledge base in %s)\n", cli_now() - t0, kb);
    return 0;
}
