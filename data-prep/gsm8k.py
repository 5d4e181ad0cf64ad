#!/usr/bin/python3
"""GSM8K example model solutions, model against model -> shape-2 JSONL (2,429 pairs).

example_model_solutions.jsonl holds the 1,319 GSM8K test questions, each with
four model solutions (6b_finetuning, 6b_verification, 175b_finetuning,
175b_verification) marked is_correct. For every question, every (correct,
incorrect) combination of two of its model solutions is a pair, so both
sides are model-written step-by-step solutions in the same style (the
human `ground_truth` is not used):

  prompt   = question;
  chosen   = a correct model solution, rejected = an incorrect one;
  subset   = "gsm8k";
  id       = "gsm8k/<question index, 0-based line>/<correct model>-vs-<incorrect model>".

Questions in file order, models in the order above.
"""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import common  # noqa: E402

REL = os.path.join("gsm8k", "grade_school_math", "data", "example_model_solutions.jsonl")
MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def convert(data_dir):
    path = os.path.join(data_dir, REL)
    pairs = []
    for lineno, rec in common.read_jsonl(path):
        where = "line %d" % lineno
        common.need_keys(rec, ("question",) + MODELS, path, where)
        question = common.need_str(rec, "question", path, where)
        sol = {}
        for m in MODELS:
            common.need_keys(rec[m], ("is_correct", "solution"), path, "%s, %s" % (where, m))
            if not isinstance(rec[m]["is_correct"], bool):
                raise common.InputError(path, "%s, %s" % (where, m), "is_correct is %r, expected true or false"
                                        % (rec[m]["is_correct"],))
            sol[m] = (rec[m]["is_correct"], common.need_str(rec[m], "solution", path, "%s, %s" % (where, m)))
        for a in MODELS:
            for b in MODELS:
                if sol[a][0] and not sol[b][0]:
                    p = common.pair(question, sol[a][1], sol[b][1], "gsm8k",
                                    common.make_id("gsm8k", lineno - 1, "%s-vs-%s" % (a, b)))
                    common.check_pair(p, path, where)
                    pairs.append(p)
    return pairs


if __name__ == "__main__":
    sys.exit(common.main("gsm8k", __doc__.splitlines()[0], convert))
