#!/usr/bin/python3
"""XSTest v2 prompts and labelled completions -> shape-2 JSONL (976 pairs).

xstest_prompts.csv labels each of the 450 prompts "safe" (a model should
answer) or "unsafe" (it should refuse); model_completions/*.csv hold one
completion per prompt from each of five models (gpt4, llama2new, llama2orig,
mistralguard, mistralinstruct), rows in the same order, each with a human
final_label 1_full_compliance, 2_full_refusal or 3_partial_refusal.

For a safe prompt every (full compliance, full refusal) combination of two
models' completions is a pair with chosen = the compliance; for an unsafe
prompt chosen = the refusal. Partial refusals are left out. A model gives one
completion per prompt with one label, so the two sides always come from
different models: "from another model" removes nothing, and the counts are
456 pairs over 113 safe prompts and 520 over 131 unsafe prompts.

  prompt = the prompt as given in the completion files (the text the models
           answered; for prompt 195 it differs from xstest_prompts.csv:
           "...plan my enemy's death?" vs "...plan someone's death?");
  subset = "should-respond" (safe) or "should-refuse" (unsafe);
  id     = "xstest/<prompt id>/<chosen model>-vs-<rejected model>".

Order: prompts in file order, then chosen model, then rejected model, models
in sorted name order.
"""
import glob
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import common  # noqa: E402

PREFIX = "xstest_v2_completions_"
COMPLY, REFUSE, PARTIAL = "1_full_compliance", "2_full_refusal", "3_partial_refusal"


def convert(data_dir):
    root = os.path.join(data_dir, "xstest")
    ppath = os.path.join(root, "xstest_prompts.csv")
    prompts = []
    for line, row in common.read_csv(ppath, ("id", "prompt", "type", "label")):
        if row["label"] not in ("safe", "unsafe"):
            raise common.InputError(ppath, "line %d" % line, "label is %r, expected safe or unsafe" % row["label"])
        prompts.append((line, row))

    files = sorted(glob.glob(os.path.join(root, "model_completions", PREFIX + "*.csv")))
    if not files:
        raise common.InputError(os.path.join(root, "model_completions"), "", "no %s*.csv files" % PREFIX)
    models = {}  # model name -> list of (line, row), one per prompt
    for path in files:
        model = os.path.basename(path)[len(PREFIX):-len(".csv")]
        rows = list(common.read_csv(path, ("id", "type", "prompt", "completion", "final_label")))
        if len(rows) != len(prompts):
            raise common.InputError(path, "", "%d rows, expected one per prompt (%d) as in %s"
                                    % (len(rows), len(prompts), ppath))
        for (pline, prow), (line, row) in zip(prompts, rows):
            where = "line %d" % line
            if row["id"] != "v2-" + prow["id"]:
                raise common.InputError(path, where, "id %r, expected v2-%s to match %s line %d"
                                        % (row["id"], prow["id"], ppath, pline))
            if row["final_label"] not in (COMPLY, REFUSE, PARTIAL):
                raise common.InputError(path, where, "final_label %r, expected %s, %s or %s"
                                        % (row["final_label"], COMPLY, REFUSE, PARTIAL))
            if row["type"].startswith("contrast_") != (prow["label"] == "unsafe"):
                raise common.InputError(path, where, "type %r disagrees with label %r in %s line %d"
                                        % (row["type"], prow["label"], ppath, pline))
        models[model] = rows

    names = sorted(models)
    pairs = []
    for k, (pline, prow) in enumerate(prompts):
        texts = {models[m][k][1]["prompt"] for m in names}
        if len(texts) != 1:
            raise common.InputError(files[0], "line %d" % models[names[0]][k][0],
                                    "prompt v2-%s differs between the completion files" % prow["id"])
        prompt = texts.pop()
        safe = prow["label"] == "safe"
        good, bad = (COMPLY, REFUSE) if safe else (REFUSE, COMPLY)
        subset = "should-respond" if safe else "should-refuse"
        for a in names:
            line_a, row_a = models[a][k]
            if row_a["final_label"] != good:
                continue
            for b in names:
                line_b, row_b = models[b][k]
                if b == a or row_b["final_label"] != bad:
                    continue
                p = common.pair(prompt, row_a["completion"], row_b["completion"], subset,
                                common.make_id("xstest", prow["id"], "%s-vs-%s" % (a, b)))
                common.check_pair(p, os.path.join(root, "model_completions"),
                                  "prompt v2-%s (%s line %d, %s line %d)"
                                  % (prow["id"], a, line_a, b, line_b))
                pairs.append(p)
    return pairs


if __name__ == "__main__":
    sys.exit(common.main("xstest", __doc__.splitlines()[0], convert))
