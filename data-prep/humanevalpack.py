#!/usr/bin/python3
"""HumanEvalPack (HumanEvalFix) in six languages -> shape-2 JSONL (984 pairs).

Each humaneval-x/data/<lang>/data/humanevalpack.jsonl holds the 164 HumanEval
problems in one language, each with a correct `canonical_solution` and a
`buggy_solution` that differs in one or two lines. The README's pair is
chosen = prompt + canonical_solution, rejected = prompt + buggy_solution; as
shape 2 it is written

  prompt   = the `instruction` field, the natural-language task ("Write a
             Python function `f(x)` to solve the following problem: ...");
  chosen   = `prompt` + `canonical_solution` (the code prompt, i.e. imports,
             signature and docstring, followed by the correct body);
  rejected = `prompt` + `buggy_solution`;
  subset   = "hep-<lang>" (hep-python, hep-cpp, hep-go, hep-java, hep-js,
             hep-rust, as RewardBench names its HumanEvalPack subsets);
  id       = "humanevalpack/<task_id>" (e.g. "humanevalpack/Python/0").

So the response is a complete function, the two sides differ only in the bug,
and the task text is not repeated inside the response. Languages are taken
in the order above, records in file order.
"""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import common  # noqa: E402

LANGS = ("python", "cpp", "go", "java", "js", "rust")
KEYS = ("task_id", "instruction", "prompt", "canonical_solution", "buggy_solution")


def convert(data_dir):
    pairs = []
    for lang in LANGS:
        path = os.path.join(data_dir, "humanevalpack", "evaluation", "create", "humaneval-x",
                            "data", lang, "data", "humanevalpack.jsonl")
        for lineno, rec in common.read_jsonl(path):
            where = "line %d" % lineno
            common.need_keys(rec, KEYS, path, where)
            f = {k: common.need_str(rec, k, path, where) for k in KEYS}
            if not f["instruction"].strip():
                raise common.InputError(path, where, "instruction is empty")
            p = common.pair(f["instruction"], f["prompt"] + f["canonical_solution"],
                            f["prompt"] + f["buggy_solution"], "hep-" + lang,
                            common.make_id("humanevalpack", f["task_id"]))
            common.check_pair(p, path, where)
            pairs.append(p)
    return pairs


if __name__ == "__main__":
    sys.exit(common.main("humanevalpack", __doc__.splitlines()[0], convert))
