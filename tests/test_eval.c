/* Answer metrics (src/eval/answer_metrics.c) against SQuAD v1.1's reference algorithm in Python
 * (tests/squad_metrics.py, run with /usr/bin/python3 or python3): the normalized text, exact
 * match and token F1 of every pair below must agree. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "phiforge.h"
#include "testing.h"

static pf_test T;

static const char *const k_pairs[][2] = {
    {"The pump", "pump"},
    {"a 7.5 kW motor", "7.5 kW"},
    {"7.5 kW", "7,5 kW"},
    {"Replace the mechanical seal (part MS-220).", "replace mechanical seal MS-220"},
    {"", "anything"},
    {"the a an", "the"},
    {"An answer, an apple; the end!", "answer apple end"},
    {"theater and anathema", "theater anathema"},
    {"  multiple   spaces\x0bhere\r", "multiple spaces here"},
    {"E-17: low suction pressure", "E17 low suction pressure"},
    {"Ölpumpe ÜBERDRUCK", "ölpumpe überdruck"},
    {"café the_pump a_b", "cafe the_pump a_b"},
    {"a-b the-end", "ab theend"},
    {"50 bar at 2900 rpm", "2900 rpm at 50 bar"},
    {"pump pump pump", "pump"},
    {"not covered", "not covered"},
    {"Ｔｈｅ full-width", "full width"},
    {"x\xc2\xa0the\xc2\xa0y", "x y"},
    {"every 2,000 operating hours", "2000 operating hours"},
    {"The answer is: 42.", "42"},
};
#define N_PAIRS (sizeof k_pairs / sizeof k_pairs[0])

static void test_against_reference(void) {
    char in[] = "/tmp/pf_eval_in_XXXXXX";
    int fd = mkstemp(in);
    CHECK(&T, fd >= 0, "temp file");
    if (fd < 0) return;
    FILE *f = fdopen(fd, "w");
    for (size_t i = 0; i < N_PAIRS; i++) fprintf(f, "%s\t%s\n", k_pairs[i][0], k_pairs[i][1]);
    fclose(f);
    char cmd[512];
    const char *py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    snprintf(cmd, sizeof cmd, "%s tests/squad_metrics.py < %s", py, in);
    FILE *p = popen(cmd, "r");
    CHECK(&T, p != NULL, "run the reference");
    if (p == NULL) return;
    char line[2048];
    size_t i = 0;
    while (fgets(line, sizeof line, p) && i < N_PAIRS) {
        line[strcspn(line, "\n")] = '\0';
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        CHECK(&T, t1 && t2, "reference line %zu well formed", i);
        if (!t1 || !t2) break;
        *t1 = *t2 = '\0';
        char norm[512];
        int64_t n = pf_answer_normalize(k_pairs[i][0], norm, sizeof norm);
        CHECK(&T, n >= 0 && (size_t)n == strlen(line) && strcmp(norm, line) == 0, "normalize(\"%s\") = \"%s\", reference \"%s\"",
              k_pairs[i][0], n >= 0 ? norm : "?", line);
        bool em = false;
        double f1 = -1.0;
        CHECK(&T, pf_answer_exact_match(k_pairs[i][0], k_pairs[i][1], &em) == PF_OK, "em ok");
        CHECK(&T, pf_answer_f1(k_pairs[i][0], k_pairs[i][1], &f1) == PF_OK, "f1 ok");
        CHECK(&T, em == (atoi(t1 + 1) == 1), "EM(\"%s\", \"%s\") = %d, reference %s", k_pairs[i][0], k_pairs[i][1], em, t1 + 1);
        CHECK(&T, fabs(f1 - atof(t2 + 1)) < 1e-9, "F1(\"%s\", \"%s\") = %.6f, reference %s", k_pairs[i][0], k_pairs[i][1], f1,
              t2 + 1);
        i++;
    }
    int rc = pclose(p);
    CHECK(&T, rc == 0 && i == N_PAIRS, "reference ran over all %zu pairs (got %zu, exit %d)", N_PAIRS, i, rc);
    remove(in);
}

static void test_edges(void) {
    char buf[8];
    CHECK(&T, pf_answer_normalize(NULL, buf, 8) == PF_ERR_ARG, "NULL text");
    CHECK(&T, pf_answer_normalize("The Longer Answer", NULL, 0) == (int64_t)strlen("longer answer"), "sizing call");
    CHECK(&T, pf_answer_normalize("The Longer Answer", buf, sizeof buf) == 13 && memcmp(buf, "longer a", 8) == 0,
          "truncated output keeps the length");
    bool em;
    double f1;
    CHECK(&T, pf_answer_exact_match(NULL, "x", &em) == PF_ERR_ARG && pf_answer_f1("x", NULL, &f1) == PF_ERR_ARG, "NULL args");
    CHECK(&T, pf_answer_f1("", "", &f1) == PF_OK && f1 == 0.0, "two empty answers: F1 0 (v1.1)");
    CHECK(&T, pf_answer_exact_match("", "the", &em) == PF_OK && em, "empty vs only-article: EM");
}

int main(void) {
    test_against_reference();
    test_edges();
    return TEST_REPORT(&T);
}
