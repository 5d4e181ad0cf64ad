#!/bin/bash
# btrm tokenize: help and usage errors; llama2.c's tok512.bin (the README's
# prompt ids, --no-bos, --json, several texts, --vocab), the same vocabulary
# read from stories260K.gguf, GPT-2 from a directory and from two files (the
# 43 reference tokenisations through the command line), unreadable models,
# invalid UTF-8 in JSON output, texts after "--". Model tests skip when
# $BTRM_SHARED/models lacks the files.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
plan 22
M="$BTRM_SHARED/models"
TOK="$M/stories260K/tok512.bin"
GGUF="$M/stories260K/stories260K.gguf"
G2="$M/gpt2-tokenizer"
cd "$WORK"
PY=/usr/bin/python3
have_py() { "$PY" -c 'import json' 2>/dev/null; }

run_cmd help.log "$BTRM" tokenize --help
expect_rc 0 "tokenize --help"
expect_grep '^Usage: btrm tokenize' help.log "--help prints the usage"
run_cmd bad.log "$BTRM" tokenize --no-such-option x y
expect_rc 2 "an unknown option exits 2"
run_cmd notext.log "$BTRM" tokenize "$TOK"
expect_rc 2 "a MODEL without TEXT exits 2"
run_cmd missing.log "$BTRM" tokenize "$WORK/nonexistent.bin" "hello"
expect_rc 1 "a missing tokenizer file exits 1"
expect_grep 'nonexistent\.bin' missing.log "the message names the missing file"

if [ -f "$TOK" ]; then
    run_cmd once.log "$BTRM" tokenize "$TOK" "Once upon a time"
    expect_rc 0 "tokenize with tok512.bin"
    expect_grep "^1 403 407 261 378	\"\\\\n<s>\\\\n\" \" Once\" \" upon\" \" a\" \" time\"$" once.log \
        "\"Once upon a time\" -> 1 403 407 261 378 with its pieces (models/README.md)"
    run_cmd nobos.log "$BTRM" tokenize --no-bos "$TOK" "Once upon a time"
    expect_grep '^403 407 261 378	' nobos.log "--no-bos drops the BOS id"
    run_cmd three.log "$BTRM" tokenize "$TOK" "a" "" "🙂"
    ok $([ "$(wc -l < three.log)" -eq 3 ] && sed -n 2p three.log | grep -q '^1	' &&
         sed -n 3p three.log | grep -q '^1 410 243 162 156 133	'; echo $?) \
       "three texts, three lines; the empty text is [BOS]; the emoji falls back to bytes"
    run_cmd v600.log "$BTRM" tokenize --vocab 600 "$TOK" "x"
    expect_rc 1 "--vocab 600 on a 512-token file exits 1"
    run_cmd v300.log "$BTRM" tokenize --vocab=300 "$TOK" "Once"
    expect_rc 0 "--vocab=300 reads the first 300 records"
else
    for i in 1 2 3 4 5 6; do skip "$TOK absent (data-prep/fetch.sh --models)"; done
fi

if [ -f "$TOK" ] && [ -f "$GGUF" ]; then
    texts=("Once upon a time" "  leading and  double  spaces " $'new\nlines\n' "漢字 🙂 café" "")
    "$BTRM" tokenize "$TOK" "${texts[@]}" 2>&1 | cut -f1 > bin.ids
    run_cmd gguf.log "$BTRM" tokenize "gguf:$GGUF" "${texts[@]}"
    expect_rc 0 "tokenize gguf:stories260K.gguf"
    cut -f1 gguf.log > gguf.ids
    pass_if "stories260K.gguf's vocabulary gives tok512.bin's ids on 5 texts" cmp -s bin.ids gguf.ids
    expect_grep '"▁Once"' gguf.log "GGUF pieces keep '▁'"
else
    for i in 1 2 3; do skip "stories260K files absent (data-prep/fetch.sh --models)"; done
fi

if [ -f "$G2/encoder.json" ] && [ -f "$G2/vocab.bpe" ]; then
    run_cmd g2dir.log "$BTRM" tokenize "gpt2:$G2" "Hello world"
    expect_grep '^15496 995	"Hello" "Ġworld"$' g2dir.log "gpt2:DIR: \"Hello world\" -> 15496 995"
    run_cmd g2files.log "$BTRM" tokenize "gpt2:$G2/encoder.json,$G2/vocab.bpe" --json "Hello world"
    expect_grep '"ids": \[15496, 995\]' g2files.log "gpt2:ENCODER,VOCAB with --json"
    run_cmd dash.log "$BTRM" tokenize "$G2" -- "-x" "--json"
    ok $([ "$(cut -f1 dash.log | tr '\n' ' ')" = "12 87 438 17752 " ]; echo $?) \
       "after --, '-x' and '--json' are texts (a directory MODEL is GPT-2)"
    run_cmd gv.log "$BTRM" tokenize --vocab 5 "gpt2:$G2" "x"
    expect_rc 2 "--vocab with a GPT-2 model exits 2"
    if have_py && [ -f "$G2/test-vectors.jsonl" ]; then
        # every reference text as an argument; compare the ids of --json lines
        "$PY" - "$G2/test-vectors.jsonl" "$BTRM" "gpt2:$G2" > vectors.log 2>&1 <<'PY'
import json, subprocess, sys
vecs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
out = subprocess.run([sys.argv[2], "tokenize", "--json", sys.argv[3]] +
                     [v["text"] for v in vecs], capture_output=True, check=True).stdout
lines = out.decode("utf-8").splitlines()
assert len(lines) == len(vecs), (len(lines), len(vecs))
bad = [v["text"] for v, l in zip(vecs, lines)
       if json.loads(l)["ids"] != v["ids"] or json.loads(l)["text"] != v["text"]]
print(len(vecs), "vectors,", len(bad), "mismatches", bad[:3])
sys.exit(1 if bad else 0)
PY
        ok $? "the 43 reference tokenisations through the command line ($(tail -1 vectors.log))"
        run_cmd inv.log "$BTRM" tokenize --json "gpt2:$G2" $'ok\xff\xfe'
        "$PY" -c 'import json,sys; d=json.loads(open(sys.argv[1],encoding="utf-8").read()); sys.exit(0 if d["text"]=="ok\ufffd\ufffd" and len(d["ids"])==3 else 1)' inv.log
        ok $? "--json writes invalid UTF-8 as U+FFFD and stays valid JSON"
    else
        skip "python3 or test-vectors.jsonl absent"
        skip "python3 absent"
    fi
    run_cmd g2missing.log "$BTRM" tokenize "gpt2:$G2/encoder.json,$WORK/none.bpe" "x"
    expect_rc 1 "a missing vocab.bpe exits 1"
else
    for i in 1 2 3 4 5 6 7; do skip "$G2 absent (data-prep/fetch.sh --models)"; done
fi
done_testing
