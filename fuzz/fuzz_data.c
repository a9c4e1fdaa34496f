/* libFuzzer target for the fine-tuning data loader. The first input byte picks the format
 * (byte % 5: auto, chat, alpaca, completion, text), packing and train_on_prompt and, through
 * the file name, .txt or .jsonl; the rest is the file. Any input must either be refused with a
 * message that names the file, leaving no dataset, or give rows that keep the pf_train_row
 * contract: 1 <= n <= seq_len, seg starting at 0 and rising by one, pos restarting at 0 with
 * each seg and rising by one, targets -1 or a valid token id, and counts that add up.
 * The tokenizer is the Phi-3 one of tests/data/phi3-tiny-f16.gguf (or $PF_FUZZ_MODEL). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phiforge.h"

#define FUZZ_ASSERT(c)                                                                                                 \
    do {                                                                                                               \
        if (!(c)) __builtin_trap();                                                                                    \
    } while (0)

static pf_tokenizer *tokenizer(void) {
    static pf_tokenizer *tok; /* loaded once per fuzzing process (read-only afterwards) */
    if (tok) return tok;
    const char *path = getenv("PF_FUZZ_MODEL");
    pf_gguf *g = NULL;
    if (pf_gguf_open(path ? path : "tests/data/phi3-tiny-f16.gguf", &g, NULL) != PF_OK) __builtin_trap();
    if (pf_tokenizer_load(g, &tok, NULL) != PF_OK) __builtin_trap();
    pf_gguf_close(g);
    return tok;
}

static void check(const pf_dataset *d, const pf_data_params *p, int32_t n_vocab) {
    int64_t tokens = 0, targets = 0;
    for (int64_t r = 0; r < pf_dataset_n_rows(d); r++) {
        pf_train_row row;
        FUZZ_ASSERT(pf_dataset_row(d, r, &row, NULL) == PF_OK);
        FUZZ_ASSERT(row.n >= 1 && row.n <= p->seq_len);
        for (int64_t j = 0; j < row.n; j++) {
            FUZZ_ASSERT(row.ids[j] >= 0 && row.ids[j] < n_vocab);
            FUZZ_ASSERT(row.targets[j] >= -1 && row.targets[j] < n_vocab);
            if (j == 0) FUZZ_ASSERT(row.seg[0] == 0 && row.pos[0] == 0);
            else if (row.seg[j] == row.seg[j - 1]) FUZZ_ASSERT(row.pos[j] == row.pos[j - 1] + 1);
            else FUZZ_ASSERT(row.seg[j] == row.seg[j - 1] + 1 && row.pos[j] == 0);
            targets += row.targets[j] >= 0;
        }
        tokens += row.n;
    }
    FUZZ_ASSERT(tokens == pf_dataset_n_tokens(d) && targets == pf_dataset_n_target_tokens(d));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    pf_tokenizer *tok = tokenizer();
    pf_data_params p = pf_data_default_params();
    p.format = (pf_data_format)(data[0] % 5);
    p.pack = data[0] & 0x08;
    p.train_on_prompt = data[0] & 0x10;
    p.seq_len = data[0] & 0x20 ? 8 : 64;
    p.val_fraction = data[0] & 0x40 ? 0.3 : 0.0;
    p.system = data[0] & 0x80 ? "sys" : NULL;
    const char *name = data[0] % 5 == 0 && (data[0] & 0x04) ? "fuzz.txt" : "fuzz.jsonl";
    pf_dataset *train = NULL, *val = NULL;
    pf_error err = {0};
    int rc = pf_dataset_load_memory(name, data + 1, size - 1, tok, NULL, &p, &train, &val, &err);
    if (rc != PF_OK) {
        FUZZ_ASSERT(rc < 0 && err.code == rc && !strncmp(err.msg, name, strlen(name)) && !train && !val);
        return 0;
    }
    check(train, &p, pf_tokenizer_n_vocab(tok));
    if (val) check(val, &p, pf_tokenizer_n_vocab(tok));
    pf_dataset_free(train);
    pf_dataset_free(val);
    return 0;
}
