/* Model presets for `phiforge init`: the hyperparameters and metadata of the released Phi-3
 * models (spec 1, 3.4, 4.4, 5.3, 5.4), plus a tiny one for tests. */
#include <math.h>
#include <string.h>

#include "phiforge.h"

/* Phi-3.5-mini-instruct's LongRoPE factors (spec 3.4, from its config.json). */
static const float k_phi35_long[48] = {
    1.0800000429153442f, 1.1100000143051147f, 1.1399999856948853f, 1.340000033378601f,  1.5899999141693115f,
    1.600000023841858f,  1.6200000047683716f, 2.620000123977661f,  3.2300000190734863f, 3.2300000190734863f,
    4.789999961853027f,  7.400000095367432f,  7.700000286102295f,  9.09000015258789f,   12.199999809265137f,
    17.670000076293945f, 24.46000099182129f,  28.57000160217285f,  30.420001983642578f, 30.840002059936523f,
    32.590003967285156f, 32.93000411987305f,  42.320003509521484f, 44.96000289916992f,  50.340003967285156f,
    50.45000457763672f,  57.55000305175781f,  57.93000411987305f,  58.21000289916992f,  60.1400032043457f,
    62.61000442504883f,  62.62000274658203f,  62.71000289916992f,  63.1400032043457f,   63.1400032043457f,
    63.77000427246094f,  63.93000411987305f,  63.96000289916992f,  63.970001220703125f, 64.02999877929688f,
    64.06999969482422f,  64.08000183105469f,  64.12000274658203f,  64.41000366210938f,  64.4800033569336f,
    64.51000213623047f,  64.52999877929688f,  64.83999633789062f};

#define F105 1.0499999523162842f
#define F202 2.0199997425079346f
#define F203 2.0299997329711914f
static const float k_phi35_short[48] = {
    1.0f,  1.0199999809265137f, 1.0299999713897705f, 1.0299999713897705f, F105, F105, F105, F105, F105,
    1.0699999332427979f, 1.0999999046325684f, 1.1099998950958252f, 1.1599998474121094f, 1.1599998474121094f,
    1.1699998378753662f, 1.2899998426437378f, 1.339999794960022f,  1.679999828338623f,  1.7899998426437378f,
    1.8199998140335083f, 1.8499997854232788f, 1.8799997568130493f, 1.9099997282028198f, 1.9399996995925903f,
    1.9899996519088745f, F202, F202, F202, F202, F202, F202, F203, F203, F203, F203, F203, F203, F203, F203, F203,
    2.0799996852874756f, 2.0899996757507324f, 2.189999580383301f,  2.2199995517730713f, 2.5899994373321533f,
    2.729999542236328f,  2.749999523162842f,  2.8399994373321533f};

/* Phi-3-medium: the April-2024 mini template without {{ bos_token }} (spec 5.4). */
static const char k_tmpl_medium[] =
    "{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + message['content'] + "
    "'<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + "
    "'<|end|>' + '\n'}}{% endif %}{% endfor %}";

/* Phi-3.5-mini-instruct (and the June-2024 mini updates): with a system branch (spec 5.4). */
static const char k_tmpl_phi35[] =
    "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{'<|system|>\n' + "
    "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

/* general.name "Phi3" (the early converter's, which llama.cpp's RSTRIP rule keys on, spec 5.6)
 * for the 2024 Phi-3 models; the current converter's title for Phi-3.5. The mini-128k preset
 * borrows Phi-3.5's factors: its own June-2024 arrays are not in the spec (same length, 48). */
static const pf_init_preset k_presets[] = {
    {"phi3-mini", "Phi-3-mini-4k-instruct (3.8 B)", "Phi3", 4096, 4096, 3072, 8192, 32, 32, 32, 0, NULL, NULL, true,
     NULL},
    {"phi3-mini-128k", "Phi-3-mini-128k-instruct (3.8 B, LongRoPE)", "Phi3", 131072, 4096, 3072, 8192, 32, 32, 32, 0,
     k_phi35_long, k_phi35_short, true, NULL},
    {"phi3-medium", "Phi-3-medium-4k-instruct (14 B, GQA)", "Phi3", 4096, 4096, 5120, 17920, 40, 40, 10, 0, NULL, NULL,
     true, k_tmpl_medium},
    {"phi3.5-mini", "Phi-3.5-mini-instruct (3.8 B, LongRoPE)", "Phi 3.5 Mini Instruct", 131072, 4096, 3072, 8192, 32,
     32, 32, 262144, k_phi35_long, k_phi35_short, false, k_tmpl_phi35},
    {"tiny", "2 layers, n_embd 64, 4 heads, n_ff 128 (as tests/data/phi3-tiny-f16.gguf)", "Phi3", 4096, 4096, 64, 128,
     2, 4, 4, 0, NULL, NULL, true, NULL},
};
#define N_PRESETS ((int)(sizeof k_presets / sizeof k_presets[0]))

int pf_init_preset_count(void) { return N_PRESETS; }

const pf_init_preset *pf_init_preset_at(int i) { return i >= 0 && i < N_PRESETS ? &k_presets[i] : NULL; }

const pf_init_preset *pf_init_preset_find(const char *name) {
    for (int i = 0; name && i < N_PRESETS; i++)
        if (!strcmp(k_presets[i].name, name)) return &k_presets[i];
    return NULL;
}

float pf_init_attn_factor(const pf_init_preset *p) {
    if (p == NULL || p->rope_long == NULL || p->n_ctx_orig <= 1 || p->n_ctx_train <= p->n_ctx_orig) return 1.0f;
    double scale = (double)p->n_ctx_train / (double)p->n_ctx_orig;
    return (float)sqrt(1.0 + log(scale) / log((double)p->n_ctx_orig));
}
