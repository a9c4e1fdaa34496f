/* The phiforge command-line tool: one cmd_<name>.c per command, a shared toolbox here. */
#ifndef PF_CLI_H
#define PF_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "phiforge.h"

typedef struct pf_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name; returns exit status */
} pf_command;

int cmd_info(int argc, char **argv);
int cmd_tensor(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_bench_kernels(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_ingest(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_kb(int argc, char **argv);
int cmd_bench_search(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_lora_convert(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_ask(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench_nf4(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_bench_train(int argc, char **argv);
int cmd_bench_lookup(int argc, char **argv);

/* Prints "phiforge <cmd>: <message>" to stderr; returns 1 (the exit status for failures). */
int cli_fail(const char *cmd, const pf_error *err);
int cli_failf(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Human-readable byte count ("2.39 GB"). */
const char *cli_human_bytes(double bytes, char *buf, size_t cap);
/* "3.82 B", "4.1 M" */
const char *cli_human_count(double n, char *buf, size_t cap);
/* "[3072, 9216]" */
const char *cli_shape(const int64_t *ne, uint32_t n_dims, char *buf, size_t cap);

/* JSON output helpers: write a string literal with escapes. */
void cli_json_str(FILE *f, const char *s);

/* Progress bar on stderr with rate and ETA; silent when stderr is not a terminal. */
typedef struct cli_progress {
    bool tty;
    const char *label;
    double total, done, t0, last_draw;
    const char *rate_unit; /* set after start (e.g. "files") to show "12.3 files/s" */
} cli_progress;
void cli_progress_start(cli_progress *p, const char *label, double total);
void cli_progress_update(cli_progress *p, double done, const char *item);
void cli_progress_finish(cli_progress *p);
double cli_now(void);
/* argv[0..argc) joined by single spaces (malloc'd; NULL on OOM): a question typed unquoted. */
char *cli_join_args(int argc, char **argv);
/* Reads the next non-empty line of stdin into *line (getline's buffer), without its CR/LF,
 * after a "> " prompt on a TTY. Returns its length, or -1 at end of input. */
ssize_t cli_read_message(bool tty, char **line, size_t *cap);
/* After creating a QLoRA trainer: its NF4 base on stderr, and a warning for a quantized GGUF (qlora_note.c). */
void cli_qlora_note(const char *cmd, const pf_trainer *tr);

/* Replaces model arguments (-m, --model, --embed-model) that name a pulled registry model by
 * its path (src/cli/model_arg.c); argv[0] is the command. 0, or 1 after reporting the error. */
#define CLI_MAX_MODEL_ARGS 16
typedef struct cli_model_args { char *ptr[CLI_MAX_MODEL_ARGS]; int n; } cli_model_args;
int cli_resolve_model_args(const char *cmd, int argc, char **argv, cli_model_args *owned);
void cli_model_args_free(cli_model_args *owned);

#endif
