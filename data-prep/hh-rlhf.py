#!/usr/bin/python3
"""HH-RLHF harmless-base test split -> shape-2 JSONL (2,312 pairs).

Each source record holds two whole transcripts ("\\n\\nHuman: ...\\n\\nAssistant: ...")
that share the dialogue and differ in the final assistant turn. The split:

  prompt   = the longest common prefix of the two transcripts, cut back to end
             just after its last "\\n\\nAssistant:" (the marker included);
  chosen   = the rest of the chosen transcript   (prompt + chosen == source chosen);
  rejected = the rest of the rejected transcript (prompt + rejected == source rejected).

For 2,307 records this is exactly "everything up to the last \\n\\nAssistant:".
In the other 5 (source lines 1255, 1689, 1951, 1953, 2037) one final assistant
turn itself contains "\\n\\nAssistant:" or "Human:" text, so the last marker of a
transcript is not where the two sides part; cutting the common prefix at its
own last marker still puts the whole shared dialogue in the prompt and the
whole differing final turn (with its stray markers) in chosen/rejected.
Responses keep their leading space (" What?"), so nothing is lost or invented.
In 4 records (lines 87, 517, 926, 1104) the chosen final turn is blank (a lone
space: the assistant said nothing, which the labeller preferred); they are
kept, as the set's 2,312 pairs include them.

subset "harmless-base"; id "hh-rlhf/harmless-base/test/<line number>".
"""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import common  # noqa: E402

MARK = "\n\nAssistant:"
REL = os.path.join("hh-rlhf", "harmless-base", "test.jsonl.gz")


def split(chosen, rejected):
    """(prompt, chosen rest, rejected rest), or None when no marker is shared."""
    n = 0
    limit = min(len(chosen), len(rejected))
    while n < limit and chosen[n] == rejected[n]:
        n += 1
    cut = chosen.rfind(MARK, 0, n)
    if cut < 0:
        return None
    end = cut + len(MARK)
    return chosen[:end], chosen[end:], rejected[end:]


def convert(data_dir):
    path = os.path.join(data_dir, REL)
    pairs = []
    for lineno, rec in common.read_jsonl(path):
        where = "line %d" % lineno
        common.need_keys(rec, ("chosen", "rejected"), path, where)
        chosen = common.need_str(rec, "chosen", path, where)
        rejected = common.need_str(rec, "rejected", path, where)
        parts = split(chosen, rejected)
        if parts is None:
            raise common.InputError(path, where, "the two transcripts share no %r turn marker" % MARK)
        prompt, c, r = parts
        p = common.pair(prompt, c, r, "harmless-base",
                        common.make_id("hh-rlhf", "harmless-base", "test", lineno))
        common.check_pair(p, path, where, allow_blank=True)
        pairs.append(p)
    return pairs


if __name__ == "__main__":
    sys.exit(common.main("hh-rlhf", __doc__.splitlines()[0], convert))
