/* Command-line plumbing shared by `phiforge generate` and `phiforge chat`: the sampling and
 * model options, loading, streaming output and timings. Implemented in src/cli/cmd_generate.c
 * (CLI only: nothing here is part of libphiforge). */
#ifndef PF_GEN_CLI_H
#define PF_GEN_CLI_H

#include <getopt.h>

#include "cli/cli.h"

#define GEN_CLI_MAX_STOP 32
#define GEN_CLI_MAX_LORA 16

enum {
    GEN_OPT_TEMP = 300, GEN_OPT_SEED, GEN_OPT_TOP_K, GEN_OPT_TOP_P, GEN_OPT_MIN_P, GEN_OPT_REPEAT,
    GEN_OPT_REPEAT_N, GEN_OPT_FREQ, GEN_OPT_PRES, GEN_OPT_STOP, GEN_OPT_SYSTEM, GEN_OPT_LORA, GEN_OPT_LORA_SCALE,
    GEN_OPT_DRAFT,
};

/* Short options and getopt_long entries of the shared options (put them in each command's table). */
#define GEN_CLI_SHORT "hm:n:t:c:"
#define GEN_CLI_LONG                                                                                         \
    {"model", required_argument, 0, 'm'}, {"n-predict", required_argument, 0, 'n'},                         \
    {"threads", required_argument, 0, 't'}, {"ctx", required_argument, 0, 'c'},                             \
    {"temp", required_argument, 0, GEN_OPT_TEMP}, {"seed", required_argument, 0, GEN_OPT_SEED},             \
    {"top-k", required_argument, 0, GEN_OPT_TOP_K}, {"top-p", required_argument, 0, GEN_OPT_TOP_P},         \
    {"min-p", required_argument, 0, GEN_OPT_MIN_P}, {"repeat-penalty", required_argument, 0, GEN_OPT_REPEAT}, \
    {"repeat-last-n", required_argument, 0, GEN_OPT_REPEAT_N},                                               \
    {"frequency-penalty", required_argument, 0, GEN_OPT_FREQ},                                               \
    {"presence-penalty", required_argument, 0, GEN_OPT_PRES}, {"stop", required_argument, 0, GEN_OPT_STOP},  \
    {"system", required_argument, 0, GEN_OPT_SYSTEM}, {"lora", required_argument, 0, GEN_OPT_LORA},          \
    {"lora-scale", required_argument, 0, GEN_OPT_LORA_SCALE}, {"draft", required_argument, 0, GEN_OPT_DRAFT},   \
    {"help", no_argument, 0, 'h'}

typedef struct gen_cli {
    const char *cmd; /* "generate" or "chat", for messages */
    const char *model, *system;
    int threads;
    int64_t n_ctx, n_predict;
    pf_sampler_params sp;
    bool seed_set;
    const char *stop[GEN_CLI_MAX_STOP];
    int n_stop;
    const char *lora_path[GEN_CLI_MAX_LORA];
    float lora_scale[GEN_CLI_MAX_LORA];
    int n_lora;
    int32_t n_draft; /* --draft: prompt-lookup draft tokens per forward, 0 = off */
    /* filled by gen_cli_load */
    pf_lora *lora[GEN_CLI_MAX_LORA];
    pf_model *m;
    pf_tokenizer *tok;
    pf_context *ctx;
    pf_sampler *smp;
    pf_chat_format fmt;
} gen_cli;

void gen_cli_init(gen_cli *g, const char *cmd);
/* Handles one getopt_long result of the shared options: 1 handled, 0 not a shared option,
 * -1 bad value (already reported). */
int gen_cli_option(gen_cli *g, int c, const char *arg);
/* Help text of the shared options. */
void gen_cli_usage(FILE *f);
/* Loads model, tokenizer, context and sampler; 0, or 1 after reporting the error. */
int gen_cli_load(gen_cli *g);
void gen_cli_free(gen_cli *g);
/* pf_text_fn writing to stdout, flushed so that the text streams. */
int gen_cli_print(void *user, const char *text, size_t len);
/* Prompt and generation speed on stderr. */
void gen_cli_timings(const gen_cli *g, const pf_gen_result *r);

#endif
