/* The line a command prints after creating a QLoRA trainer: what the NF4 base holds, and the
 * warning the issue asks for when the GGUF was already quantized (its rounding is rounded again). */
#include "cli.h"

void cli_qlora_note(const char *cmd, const pf_trainer *tr) {
    pf_qlora_info qi;
    if (pf_trainer_qlora_info(tr, &qi, NULL) != PF_OK || qi.n_tensors == 0) return;
    char a[32], b[32], n[32];
    fprintf(stderr, "%s: QLoRA base: %lld linears, %s weights in NF4: %s (%.3f bits/weight; %s in the GGUF)\n", cmd,
            (long long)qi.n_tensors, cli_human_count((double)qi.n_weights, n, sizeof n),
            cli_human_bytes((double)qi.nf4_bytes, a, sizeof a),
            8.0 * (double)qi.nf4_bytes / (double)qi.n_weights, cli_human_bytes((double)qi.src_bytes, b, sizeof b));
    if (qi.n_requantized > 0)
        fprintf(stderr,
                "%s: warning: %lld base tensors are %s (already quantized): dequantized then requantized to NF4, "
                "so their rounding is compounded; an F16/BF16/F32 base is better for QLoRA\n",
                cmd, (long long)qi.n_requantized, pf_type_name(qi.src_type));
}
