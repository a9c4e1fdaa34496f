#!/usr/bin/env python3
"""Fails (exit 1) if a qa.jsonl question appears in train.jsonl or val.jsonl, or if a val.jsonl
user turn repeats a train.jsonl one. Comparison is case-insensitive with whitespace runs
collapsed, the same rule tests/test_pack.c applies.

    python3 examples/pumps/tools/check_leakage.py
"""
import json
import os
import sys

PACK = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def norm(s):
    return " ".join(s.split()).lower()


def read(name):
    with open(os.path.join(PACK, name), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    questions = [norm(q["question"]) for q in read("qa.jsonl")]
    users, bad = {}, 0
    for name in ("train.jsonl", "val.jsonl"):
        users[name] = set()
        for n, s in enumerate(read(name), 1):
            for m in s["messages"]:
                text = norm(m["content"])
                if m["role"] == "user":
                    users[name].add(text)
                for q in questions:
                    if q in text:
                        print(f"{name}:{n}: contains the test question: {q}")
                        bad += 1
    for u in sorted(users["val.jsonl"] & users["train.jsonl"]):
        print(f"val.jsonl repeats a train.jsonl question: {u}")
        bad += 1
    print(f"{len(questions)} test questions, {sum(len(u) for u in users.values())} training questions, {bad} leaks")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
