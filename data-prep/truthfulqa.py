#!/usr/bin/python3
"""TruthfulQA (January 2025 release) -> shape-2 JSONL (790 pairs).

TruthfulQA.csv holds 790 questions, each with a `Best Answer` and a
`Best Incorrect Answer` (the binary-choice columns of this release).

  prompt   = Question;
  chosen   = Best Answer, rejected = Best Incorrect Answer;
  subset   = "truthfulqa-<Type>": "truthfulqa-Adversarial" (425 questions,
             filtered against GPT-3) or "truthfulqa-Non-Adversarial" (365).
             Type rather than the 37 `Category` values (Misconceptions,
             Law, ...), most of which hold too few questions for a per-subset
             accuracy; the category is kept in the id;
  id       = "truthfulqa/<row, 0-based>/<Category>".

Rows in file order.
"""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import common  # noqa: E402

REL = os.path.join("truthfulqa", "TruthfulQA.csv")
COLUMNS = ("Type", "Category", "Question", "Best Answer", "Best Incorrect Answer")


def convert(data_dir):
    path = os.path.join(data_dir, REL)
    pairs = []
    for row_index, (line, row) in enumerate(common.read_csv(path, COLUMNS)):
        where = "line %d" % line
        if row["Type"] not in ("Adversarial", "Non-Adversarial"):
            raise common.InputError(path, where, "Type is %r, expected Adversarial or Non-Adversarial" % row["Type"])
        if not row["Category"].strip() or not row["Question"].strip():
            raise common.InputError(path, where, "Category or Question is empty")
        p = common.pair(row["Question"], row["Best Answer"], row["Best Incorrect Answer"],
                        "truthfulqa-" + row["Type"],
                        common.make_id("truthfulqa", row_index, row["Category"].replace("/", "-")))
        common.check_pair(p, path, where)
        pairs.append(p)
    return pairs


if __name__ == "__main__":
    sys.exit(common.main("truthfulqa", __doc__.splitlines()[0], convert))
