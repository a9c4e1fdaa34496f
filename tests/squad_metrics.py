#!/usr/bin/env python3
"""SQuAD v1.1's official answer normalization, exact match and token F1 (the algorithm of the
evaluate-v1.1.py script, re-typed from its published description), used by tests/test_eval.c as
the reference. Reads TSV lines "prediction<TAB>reference" on stdin and writes
"normalized_prediction<TAB>em<TAB>f1" per line."""
import collections
import re
import string
import sys


def normalize(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def f1(pred, ref):
    p, r = normalize(pred).split(), normalize(ref).split()
    common = collections.Counter(p) & collections.Counter(r)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(r)
    return 2 * precision * recall / (precision + recall)


for line in sys.stdin.read().split("\n"):
    if not line:
        continue
    pred, ref = line.split("\t")
    print("%s\t%d\t%.12f" % (normalize(pred), normalize(pred) == normalize(ref), f1(pred, ref)))
