#!/usr/bin/python3
"""LLMBar and its case-study sets -> shape-2 JSONL (734 pairs).

Every llmbar/Dataset/**/dataset.json is a JSON array of
{"input", "output_1", "output_2", "label"} with label 1 or 2 naming the
objectively better output (no ties). The pair:

  prompt = input, chosen = output_<label>, rejected = the other output;
  subset = the dataset's folder below Dataset/ ("LLMBar/Natural",
           "LLMBar/Adversarial/Neighbor", "CaseStudy/Constraint", ...);
  id     = "llmbar/<subset>/<index in the array>".

Files are taken in sorted path order, records in file order.
"""
import glob
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import common  # noqa: E402


def convert(data_dir):
    root = os.path.join(data_dir, "llmbar", "Dataset")
    files = sorted(glob.glob(os.path.join(root, "**", "dataset.json"), recursive=True))
    if not files:
        raise common.InputError(root, "", "no **/dataset.json found below this folder")
    pairs = []
    for path in files:
        subset = os.path.relpath(os.path.dirname(path), root).replace(os.sep, "/")
        data = common.read_json(path)
        if not isinstance(data, list):
            raise common.InputError(path, "", "expected a JSON array of records")
        for i, rec in enumerate(data):
            where = "record %d" % i
            common.need_keys(rec, ("input", "output_1", "output_2", "label"), path, where)
            label = rec["label"]
            if type(label) is not int or label not in (1, 2):
                raise common.InputError(path, where, "label is %r, expected 1 or 2" % (label,))
            out = {k: common.need_str(rec, "output_%d" % k, path, where) for k in (1, 2)}
            p = common.pair(common.need_str(rec, "input", path, where), out[label], out[3 - label],
                            subset, common.make_id("llmbar", subset, i))
            common.check_pair(p, path, where)
            pairs.append(p)
    return pairs


if __name__ == "__main__":
    sys.exit(common.main("llmbar", __doc__.splitlines()[0], convert))
