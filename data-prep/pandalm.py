#!/usr/bin/python3
"""PandaLM human-annotated test set -> shape-2 JSONL (894 pairs).

pandalm/data/testset-v1.json is a JSON array of 999 records, each with two
responses to one instruction and three annotator labels (1 or 2: that response
is better, 0: tie). The pair follows the majority of the three annotators
(every record has one); the 105 records whose majority is a tie are dropped.

  prompt   = instruction and input joined by a blank line ("\\n\\n"), a blank
             part left out (input is empty in 167 records; the instruction of
             idx 466 is a lone space, so its prompt is just the input);
  chosen   = the majority's response, rejected = the other;
  subset   = "pandalm" (the model pair is in the id);
  id       = "pandalm/<idx>/<cmp_key>".

Source quirks kept as they are, since the 894 pairs include them:
- 6 responses (idx 157-164, a "verify this statement" task) are JSON booleans
  (true) instead of strings; they become the string "True".
- 51 rejected responses are empty strings (the annotators rated an empty
  output worse than a real one), and one chosen response is (idx 305, where
  all three preferred the empty output to "When someone arrives safely, it's
  a great day.").
Records are taken in file order.
"""
import collections
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import common  # noqa: E402

REL = os.path.join("pandalm", "data", "testset-v1.json")
KEYS = ("idx", "cmp_key", "instruction", "input", "response1", "response2",
        "annotator1", "annotator2", "annotator3")


def text(rec, key, path, where):
    v = rec[key]
    if isinstance(v, bool):  # the source's JSON true for "True"
        return str(v)
    return common.need_str(rec, key, path, where)


def convert(data_dir):
    path = os.path.join(data_dir, REL)
    data = common.read_json(path)
    if not isinstance(data, list):
        raise common.InputError(path, "", "expected a JSON array of records")
    pairs = []
    for i, rec in enumerate(data):
        where = "record %d" % i
        common.need_keys(rec, KEYS, path, where)
        votes = [rec["annotator%d" % k] for k in (1, 2, 3)]
        if any(type(v) is not int or v not in (0, 1, 2) for v in votes):
            raise common.InputError(path, where, "annotator labels %r, expected 0, 1 or 2 each" % (votes,))
        label, n = collections.Counter(votes).most_common(1)[0]
        if n < 2:
            raise common.InputError(path, where, "annotator labels %r have no majority" % (votes,))
        if label == 0:
            continue  # a tie
        if type(rec["idx"]) is not int:
            raise common.InputError(path, where, "idx is %r, expected an integer" % (rec["idx"],))
        parts = [common.need_str(rec, k, path, where) for k in ("instruction", "input")]
        prompt = "\n\n".join(s for s in parts if s.strip())
        resp = {k: text(rec, "response%d" % k, path, where) for k in (1, 2)}
        p = common.pair(prompt, resp[label], resp[3 - label], "pandalm",
                        common.make_id("pandalm", rec["idx"], common.need_str(rec, "cmp_key", path, where)))
        common.check_pair(p, path, where, allow_blank=True)
        pairs.append(p)
    return pairs


if __name__ == "__main__":
    sys.exit(common.main("pandalm", __doc__.splitlines()[0], convert))
