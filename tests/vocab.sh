#!/bin/bash
# GGUF tokenizers against references:
#  - llama.cpp's own test vectors for the four vocabulary-only GGUFs of
#    $BTRM_SHARED/models/ggml-vocab (gpt-2, falcon, mpt: byte-level BPE;
#    phi-3: SentencePiece), tokenised without BOS as test-tokenizer-0 does:
#    every text's ids, through `btrm tokenize`;
#  - every other pre-tokenizer llama.cpp names (one per distinct regex set:
#    default, llama-bpe, dbrx, deepseek-llm, deepseek-coder, deepseek-v3,
#    starcoder, qwen2, bloom, chatglm-bpe, viking, tekken, chameleon) on GPT-2's
#    vocabulary and merges with added control and user-defined tokens, against
#    tests/tok_ref.py (Python's regex module, the pre-tokenizer's regexes and
#    the file's merges), on texts with digits, contractions, CJK, emoji,
#    whitespace runs and special tokens, with and without --special;
#  - SentencePiece with special tokens (phi-3, llama.cpp's rstrip) and
#    Gemma's form (no space prefix) against the same reference;
#  - an unknown pre-tokenizer is refused by name.
# Skips when numpy or the shared vocabularies are absent.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
PY=/usr/bin/python3
GV="$BTRM_SHARED/models/ggml-vocab"
G2="$BTRM_SHARED/models/gpt2-tokenizer"
[ -f "$GV/ggml-vocab-gpt-2.gguf" ] && [ -f "$G2/encoder.json" ] || skip_all "ggml-vocab or gpt2-tokenizer not found in $BTRM_SHARED/models"
"$PY" -c 'import numpy, regex' 2>/dev/null || skip_all "numpy or python3-regex not installed"
PRES="default llama-bpe dbrx deepseek-llm deepseek-coder deepseek-v3 starcoder qwen2 bloom chatglm-bpe viking tekken chameleon"
plan 36
cd "$WORK" || exit 1
export PYTHONPATH="$BTRM_SRCDIR/tests"

# compare NAME VOCAB TEXTS.json WANT.txt [--special]: btrm tokenize's ids of
# each text (no BOS) against the lines of WANT.txt
compare() {
    "$PY" - "$BTRM" "$@" <<'PY'
import json, subprocess, sys
btrm, name, vocab, texts, want = sys.argv[1:6]
extra = sys.argv[6:]
texts = json.load(open(texts, encoding="utf-8"))
want = open(want, encoding="utf-8").read().split("\n")
p = subprocess.run([btrm, "tokenize", "--json", "--no-bos"] + extra + ["gguf:" + vocab, "--"] + texts,
                   capture_output=True, text=True)
got = [json.loads(l)["ids"] for l in p.stdout.splitlines()]
bad = [i for i, t in enumerate(texts) if i >= len(got) or got[i] != [int(x) for x in want[i].split()]]
for i in bad[:3]:
    print(f"# {name}: text {i} {texts[i][:40]!r}: got {got[i][:16] if i < len(got) else p.stderr[:200]} "
          f"want {want[i].split()[:16]}")
print(f"{len(texts) - len(bad)}/{len(texts)}")
sys.exit(1 if bad or p.returncode else 0)
PY
}

# --- llama.cpp's vectors
for v in gpt-2 falcon mpt phi-3; do
    f="$GV/ggml-vocab-$v.gguf"
    "$PY" - "$f" <<'PY'
import json, sys
raw = open(sys.argv[1] + ".inp", encoding="utf-8").read()
sep = "\n__ggml_vocab_test__\n"
assert raw.endswith(sep)
json.dump(raw[:-len(sep)].split(sep), open("texts.json", "w"))
PY
    run_cmd vec-$v.log compare "$v" "$f" texts.json "$f.out"
    expect_rc 0 "$v: llama.cpp's test vectors, $(tail -n 1 vec-$v.log) texts"
done

# --- the other pre-tokenizers on GPT-2's vocabulary
"$PY" - "$G2" <<'PY'
import json, sys
import gguf_quantize as gq
enc = json.load(open(sys.argv[1] + "/encoder.json", encoding="utf-8"))
tokens = [t for t, _ in sorted(enc.items(), key=lambda kv: kv[1])]
merges = [l.rstrip("\n") for l in open(sys.argv[1] + "/vocab.bpe", encoding="utf-8")][1:]
merges = [m for m in merges if m]
types = [1] * len(tokens)
types[50256] = 3
for t, ty in (("<|im_start|>", 3), ("<|im_end|>", 3), ("<user>", 4), ("  \t", 4)):
    tokens.append(t)
    types.append(ty)
base = [("general.architecture", gq.STRING, "gpt2"), ("general.name", gq.STRING, "vocab"),
        ("tokenizer.ggml.model", gq.STRING, "gpt2"),
        ("tokenizer.ggml.tokens", gq.ARRAY, (gq.STRING, tokens)),
        ("tokenizer.ggml.token_type", gq.ARRAY, (gq.I32, types)),
        ("tokenizer.ggml.merges", gq.ARRAY, (gq.STRING, merges)),
        ("tokenizer.ggml.eos_token_id", gq.U32, 50256)]
for pre in sys.argv[2:] or "default llama-bpe dbrx deepseek-llm deepseek-coder deepseek-v3 starcoder qwen2 bloom chatglm-bpe viking tekken chameleon qwen9".split():
    gq.write_gguf(f"bpe-{pre}.gguf", base + [("tokenizer.ggml.pre", gq.STRING, pre)], [])
texts = ["Hello world", " leading and trailing  ", "I'm can't we'll they've SHE'S It's 'quoted'",
         "numbers 1 12 123 1234 12345 3.14159 1,000,000 ²½ ١٢٣", "漢字かなカナ한국어 中文测试 テスト",
         "emoji 🙂👍🏽 🦙.cpp ❤️‍🔥", "tabs\t\tand\nnew\n\nlines\r\n   spaces   \v\f", "   ", "\n\n", "",
         "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", "a<user>b <user> c  \td",
         "Ünïcödé ÄÖÜ ß Δr = r_c − r_r", "code: def f(x):\n    return x**2  # comment",
         "MixedCASE wordsInCamel HTTPServer iPhone", "$+<=>^~| `~ !!??.. ... (a|b)",
         "<sentinel:12> IMGIMGABCZ", "ends with spaces   \n"]
json.dump(texts, open("texts.json", "w"))
PY
for pre in $PRES; do
    for sp in "" --special; do
        "$PY" "$BTRM_SRCDIR/tests/tok_ref.py" bpe-$pre.gguf texts.json $sp > ref-$pre$sp.txt
        run_cmd bpe-$pre$sp.log compare "$pre" bpe-$pre.gguf texts.json ref-$pre$sp.txt $sp
        expect_rc 0 "$pre${sp:+ $sp}: $(tail -n 1 bpe-$pre$sp.log) texts as the Python reference"
    done
done

# --- SentencePiece: phi-3 with its special tokens, and Gemma's form
"$PY" - "$GV/ggml-vocab-phi-3.gguf" <<'PY'
import sys
import gguf_quantize as gq
_, kvs, _, al = gq.read_gguf(sys.argv[1])
kvs = [(k, t, v) for k, t, v in kvs if k not in ("tokenizer.ggml.add_space_prefix", "general.name")]
gq.write_gguf("gemma-style.gguf", kvs + [("general.name", gq.STRING, "gemma-style"),
              ("tokenizer.ggml.add_space_prefix", gq.BOOL, False)], [], al)
PY
for v in "$GV/ggml-vocab-phi-3.gguf" gemma-style.gguf; do
    n=$(basename "$v" .gguf)
    for sp in "" --special; do
        "$PY" "$BTRM_SRCDIR/tests/tok_ref.py" "$v" texts.json $sp > ref-$n$sp.txt
        run_cmd spm-$n$sp.log compare "$n" "$v" texts.json ref-$n$sp.txt $sp
        expect_rc 0 "$n${sp:+ $sp}: $(tail -n 1 spm-$n$sp.log) texts as the Python reference"
    done
done
ok $("$PY" -c '
import json, subprocess, sys
out = subprocess.run([sys.argv[1], "tokenize", "--json", "--no-bos", "--special", "gguf:" + sys.argv[2],
                      "<|user|>  Hi<|end|>\n"], capture_output=True, text=True).stdout
ids = json.loads(out)["ids"]
sys.exit(0 if ids[0] == 32010 and 32007 in ids and ids[1] != 29871 else 1)' "$BTRM" "$GV/ggml-vocab-phi-3.gguf"; echo $?) \
   "phi-3 --special: <|user|> is one token and strips the spaces after it (llama.cpp's rstrip)"

run_cmd unknown.log "$BTRM" tokenize gguf:bpe-qwen9.gguf "x"
ok $([ $rc -eq 1 ] && grep -q "tokenizer.ggml.pre = 'qwen9' is not a pre-tokenizer btrm knows (known: default llama3" unknown.log; echo $?) \
   "an unknown pre-tokenizer is refused by name, with the known ones"
done_testing
