#!/usr/bin/python3
"""Writes N preference pairs as Anthropic-HH JSON lines (for `btrm prep`):
short story-like texts (the words stories260K knows), the chosen answer kind,
the rejected one unkind, drawn from a fixed seed. Used by tests/finetune.sh.

  make_text_pairs.py N SEED > pairs.jsonl
"""
import json
import random
import sys

NAMES = ["Lily", "Tom", "Sue", "Ben", "Max", "Anna", "Tim", "Mia"]
THINGS = ["ball", "cat", "dog", "tree", "cake", "toy", "boat", "bird", "park", "box"]
KIND = ["smiled and shared the", "helped a friend find the", "said thank you for the",
        "gave a hug and played with the", "was happy to see the"]
UNKIND = ["shouted and broke the", "took away the", "was mean about the",
          "cried and threw the", "did not want the"]


def main():
    n, seed = int(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    for _ in range(n):
        who, what = rng.choice(NAMES), rng.choice(THINGS)
        prompt = "Once upon a time, %s had a %s. What did %s do?" % (who, what, who)
        good = "%s %s %s. They were happy." % (who, rng.choice(KIND), what)
        bad = "%s %s %s." % (who, rng.choice(UNKIND), what)
        if rng.random() < 0.5:
            good += " The sun was warm."
        print(json.dumps({"chosen": "\n\nHuman: %s\n\nAssistant: %s" % (prompt, good),
                          "rejected": "\n\nHuman: %s\n\nAssistant: %s" % (prompt, bad)}))


main()
