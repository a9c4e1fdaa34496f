/* phiforge <command> [options] — dispatch to one cmd_<name>.c per command. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const pf_command commands[] = {
    {"info", "show a GGUF file's metadata, hyperparameters and tensors", cmd_info},
    {"tensor", "write one tensor dequantized to raw float32", cmd_tensor},
    {"quantize", "requantize a model's 2-D weights to another type", cmd_quantize},
    {"tokenize", "print the token ids of a text", cmd_tokenize},
    {"embed", "embedding vectors of texts (BERT / nomic-bert GGUF)", cmd_embed},
    {"logits", "float32 logits of every position of a token sequence", cmd_logits},
    {"generate", "generate text from a prompt, streaming", cmd_generate},
    {"chat", "interactive chat with a Phi-3 model", cmd_chat},
    {"bench", "prompt-processing and generation speed vs the bandwidth bound", cmd_bench},
    {"init", "write a random-weight model in the exact layout of a real one", cmd_init},
    {"ingest", "add files and folders to a knowledge base", cmd_ingest},
    {"search", "retrieve passages from a knowledge base", cmd_search},
    {"kb", "knowledge base stats, list, rm", cmd_kb},
    {"ask", "answer a question from a knowledge base, with citations", cmd_ask},
    {"eval", "RAG vs LoRA vs both: exact match, F1, citations, recall@k on a Q&A file", cmd_eval},
    {"demo", "the main job end to end on the industry pack: ingest, ask, fine-tune, eval", cmd_demo},
    {"bench-search", "search latency (p50/p99) at 100k chunks", cmd_bench_search},
    {"bench-lookup", "generation speed with / without prompt lookup on a RAG workload", cmd_bench_lookup},
    {"bench-kernels", "benchmark matvec/matmul kernels against memory bandwidth", cmd_bench_kernels},
    {"data", "load a fine-tuning dataset: rows, loss tokens, packing, split", cmd_data},
    {"merge", "bake LoRA adapters (GGUF or PEFT) into a model's weights", cmd_merge},
    {"lora-convert", "convert a LoRA adapter between llama.cpp GGUF and a PEFT directory", cmd_lora_convert},
    {"pull", "download a published GGUF model (phi-3, embedders) into the cache", cmd_pull},
    {"convert", "convert a Hugging Face Phi-3 checkpoint to GGUF", cmd_convert},
    {"bench-nf4", "NF4 kernels (QLoRA base) vs Q8_0 matmul, GB/s and GFLOP/s", cmd_bench_nf4},
    {"finetune", "train a LoRA adapter on chat / completion / text samples", cmd_finetune},
    {"bench-train", "LoRA training tokens/s and peak memory", cmd_bench_train},
};

static void usage(FILE *f) {
    fprintf(f, "phiforge %s — make a Phi-3 model an expert of your industry (RAG + LoRA)\n\n"
               "usage: phiforge <command> [options]   (phiforge <command> -h for its options)\n\ncommands:\n",
            PF_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 1; }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) { usage(stdout); return 0; }
    if (!strcmp(name, "--version") || !strcmp(name, "version")) { printf("phiforge %s\n", PF_VERSION); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name)) {
            cli_model_args owned; /* `-m NAME` of a pulled model -> its path */
            if (cli_resolve_model_args(name, argc - 1, argv + 1, &owned)) return 1;
            int rc = commands[i].run(argc - 1, argv + 1);
            cli_model_args_free(&owned);
            return rc;
        }
    fprintf(stderr, "phiforge: unknown command '%s'\n\n", name);
    usage(stderr);
    return 1;
}
