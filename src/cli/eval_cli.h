/* `phiforge eval`'s modes, run and printing, shared with `phiforge demo` (src/cli/cmd_eval.c). */
#ifndef PF_EVAL_CLI_H
#define PF_EVAL_CLI_H

#include "cli/rag_cli.h"

enum { EVAL_BASE = 0, EVAL_RAG = 1, EVAL_LORA = 2, EVAL_RAG_LORA = 3, EVAL_N_MODES = 4 };
extern const char *const eval_mode_name[EVAL_N_MODES];

typedef struct eval_row {
    const char *name;
    bool extractive;
    pf_eval_scores s;
} eval_row;

/* "base,rag+lora" -> bit mask (1 << EVAL_*); -1 for an unknown name or an empty list. */
int eval_parse_modes(const char *s, unsigned *modes);
/* Runs each mode of `modes` over the first `limit` questions (0: all) with the opened KB r and,
 * when g->model is set, the loaded model g (its adapters switched on in the lora modes only);
 * progress bar on a TTY. 0, or 1 after reporting. */
int eval_run_modes(rag_cli *r, gen_cli *g, const pf_qa_set *qa, int64_t limit, unsigned modes, eval_row *rows, int *n_rows);
void eval_print_table(FILE *f, const eval_row *rows, int n, int32_t k);
void eval_print_json(FILE *f, const eval_row *rows, int n, int32_t k, const char *model, const char *lora);

#endif
