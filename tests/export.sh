#!/bin/bash
# btrm export --format safetensors, read back by an independent reader
# (tests/safetensors_check.py: Python's standard library and numpy):
#  - the layout rules (header length and 8-byte padding, contiguous offsets,
#    string metadata, format "pt") for every file written;
#  - linear and mlp heads: every tensor equals the model file's bit for bit,
#    the linear bias in __metadata__;
#  - stories260K's GGUF in F32, F16 and BF16 with the backbone: every model.*
#    tensor equals the GGUF's with the q/k rows put back in Hugging Face's
#    order, config.json agrees, and LlamaForSequenceClassification's forward
#    pass as transformers defines it, run in torch on the exported tensors,
#    gives btrm score's rewards;
#  - what cannot be exported is refused with a message (Q8_0 weights, mean
#    pooling, an mlp head with a backbone, llama2c and hash backbones, a
#    width mismatch, an unknown format), leaving no file behind.
. "${BTRM_SRCDIR:-.}/tests/lib.sh"
PY=/usr/bin/python3
"$PY" -c 'import numpy' 2>/dev/null || skip_all "python3 numpy not installed (tools/install-deps.sh --with-python)"
plan 41
cd "$WORK" || exit 1
CHECK="$PY $BTRM_SRCDIR/tests/safetensors_check.py"
have_h5py() { "$PY" -c 'import h5py' 2>/dev/null; }
have_torch() { "$PY" -c 'import torch' 2>/dev/null; }

"$BTRM" synth train.h5 --pairs 400 --dim 64 --seed 3 >synth.log 2>&1
for head in linear mlp; do
    printf 'run: {name: %s, out_dir: %s}\ndata: {train: train.h5}\nmodel: {head: %s, hidden: [16, 8], activation: tanh}\ntrain: {global_batch: 100, steps: 10}\n' \
        $head $head $head > $head.yaml
    "$BTRM" train $head.yaml >train-$head.log 2>&1
    run_cmd export-$head.log "$BTRM" export $head/final.h5 -o exp-$head
    expect_rc 0 "export a $head head"
    run_cmd layout-$head.log $CHECK layout exp-$head/model.safetensors
    expect_rc 0 "$head head: the safetensors layout rules hold"
    if have_h5py; then
        run_cmd head-$head.log $CHECK head exp-$head/model.safetensors $head/final.h5
        expect_rc 0 "$head head: every tensor equals the model file's, bit for bit"
    else
        skip "python3 h5py not installed"
    fi
done
pass_if "no config.json for a head alone" test ! -e exp-mlp/config.json
expect_grep '"btrm_activation":"tanh"' exp-mlp/model.safetensors "the mlp's activation is in __metadata__"

M="$BTRM_SHARED/models/stories260K"
if [ -f "$M/stories260K.gguf" ]; then
    printf '{"text": "Once upon a time, there was a little girl named Lily."}\n{"text": "The cat sat on the mat."}\n{"text": "x"}\n{"text": "She saw a big, red ball in the park and wanted to play with it, but it was too high."}\n' > texts.jsonl
    "$PY" -c 'import json; [print(json.loads(l)["text"]) for l in open("texts.jsonl")]' > texts.txt
    mapfile -t lines < texts.txt
    "$BTRM" tokenize --json "gguf:$M/stories260K.gguf" "${lines[@]}" > ids.jsonl
    "$BTRM" synth llm.h5 --pairs 300 --dim 64 --seed 7 >>synth.log 2>&1
    printf 'run: {name: l, out_dir: llm}\ndata: {train: llm.h5}\ntrain: {global_batch: 100, steps: 10}\n' > llm.yaml
    "$BTRM" train llm.yaml >train-llm.log 2>&1
    cp "$M/stories260K.gguf" f32.gguf
    for t in f16 bf16 q8_0; do "$PY" "$BTRM_SRCDIR/tests/gguf_quantize.py" f32.gguf $t.gguf --type $t >quant.log 2>&1; done
    for t in f32 f16 bf16; do
        spec="gguf:$WORK/$t.gguf,pool=last"
        run_cmd export-$t.log "$BTRM" export llm/final.h5 -o exp-$t --with-backbone --backbone "$spec"
        expect_rc 0 "$t: export with the backbone"
        run_cmd layout-$t.log $CHECK layout exp-$t/model.safetensors
        expect_rc 0 "$t: the layout rules hold"
        run_cmd backbone-$t.log $CHECK backbone exp-$t $t.gguf
        expect_rc 0 "$t: every model.* tensor equals the GGUF's (q/k unpermuted); config.json agrees"
        if have_torch; then
            "$BTRM" score llm/final.h5 --backbone "$spec" texts.jsonl > rewards-$t.jsonl 2>score.log
            run_cmd forward-$t.log $CHECK forward exp-$t ids.jsonl rewards-$t.jsonl --tol 1e-5
            expect_rc 0 "$t: torch's LlamaForSequenceClassification forward on the export = btrm score ($(tail -n 1 forward-$t.log))"
        else
            skip "python3 torch not installed (tools/install-deps.sh --with-python)"
        fi
    done
    # --- fine-tuned models (model.backbone on f32.gguf): LoRA in PEFT's layout, top_k blocks
    "$PY" "$BTRM_SRCDIR/tests/make_text_pairs.py" 48 1 > pairs.jsonl
    "$BTRM" prep -q pairs.jsonl -o pairs.h5 >prep.log 2>&1
    cat > ft.yaml <<YAML
run: {name: ft, seed: 4}
data: {train: pairs.h5}
model: {backbone: "gguf:f32.gguf", finetune: {type: lora, rank: 4, alpha: 8, layers: 2, targets: [q, k, v, o, gate, up, down]}}
embed: {max_tokens: 64}
optim: {type: adamw, lr: 0.01}
train: {global_batch: 16, steps: 10, micro_batch: 8}
YAML
    run_cmd ft.log "$BTRM" train ft.yaml --set run.out_dir=lora
    run_cmd ft-top.log "$BTRM" train ft.yaml --set run.out_dir=top --set model.finetune.type=top_k
    pass_if "train a LoRA model (r 4, alpha 8, every projection of the top 2 blocks) and a top-2 model" \
        test -s lora/final.h5 -a -s top/final.h5
    run_cmd export-lora.log "$BTRM" export lora/final.h5 -o exp-lora
    expect_rc 0 "LoRA: export in PEFT's layout"
    run_cmd layout-lora.log sh -c "$CHECK layout exp-lora/adapter_model.safetensors && $CHECK layout exp-lora/model.safetensors"
    expect_rc 0 "LoRA: adapter_model.safetensors and model.safetensors follow the layout rules"
    if have_h5py; then
        run_cmd peft.log $CHECK peft exp-lora lora/final.h5 --head-dim 8
        expect_rc 0 "LoRA: adapter_config.json and every lora_A/lora_B equal the model file's (q/k lora_B rows unpermuted)"
    else
        skip "python3 h5py not installed"
    fi
    if have_h5py; then
        hash=$("$PY" "$BTRM_SRCDIR/tests/h5tool.py" attr lora/final.h5 /backbone model_hash)
        pass_if "LoRA: README.md and the adapter's metadata name the base file's XXH3-128 ($hash)" \
            sh -c "[ ${#hash} -eq 32 ] && grep -q '$hash' exp-lora/README.md &&
                   grep -q '\"btrm_backbone_base_model_hash\":\"$hash\"' exp-lora/adapter_model.safetensors"
    else
        skip "python3 h5py not installed"
    fi
    "$BTRM" score lora/final.h5 texts.jsonl > rewards-lora.jsonl 2>score.log
    "$BTRM" score top/final.h5 texts.jsonl > rewards-top.jsonl 2>>score.log
    run_cmd export-top.log "$BTRM" export top/final.h5 -o exp-top
    expect_rc 0 "top_k: export the trained blocks"
    if have_torch; then
        run_cmd forward-lora.log $CHECK forward exp-f32 ids.jsonl rewards-lora.jsonl --adapter exp-lora --tol 1e-5
        expect_rc 0 "LoRA: W + (alpha/r) B A on the exported base, float64 forward = btrm score of the fine-tuned model ($(tail -n 1 forward-lora.log))"
        run_cmd forward-nolora.log $CHECK forward exp-f32 ids.jsonl rewards-lora.jsonl --tol 1e-5
        expect_rc 1 "... and the base without the adapter does not give them ($(tail -n 1 forward-nolora.log))"
        run_cmd forward-top.log $CHECK forward exp-f32 ids.jsonl rewards-top.jsonl --replace exp-top/model.safetensors --tol 1e-5
        expect_rc 0 "top_k: the exported blocks in place of the base's, float64 forward = btrm score ($(tail -n 1 forward-top.log))"
    else
        for _ in 1 2 3; do skip "python3 torch not installed (tools/install-deps.sh --with-python)"; done
    fi
    run_cmd wb.log "$BTRM" export lora/final.h5 -o exp-wb --with-backbone
    expect_rc 2 "--with-backbone on a fine-tuned model: usage error"
    run_cmd retop.log "$BTRM" export top/final.h5 -o exp-lora
    pass_if "a top_k export into a LoRA export's folder removes its adapter files" \
        test ! -e exp-lora/adapter_model.safetensors -a ! -e exp-lora/adapter_config.json -a -s exp-lora/model.safetensors
    expect_grep '"torch_dtype": "bfloat16"' exp-bf16/config.json "bf16: config.json says bfloat16"
    run_cmd q8.log "$BTRM" export llm/final.h5 -o exp-q8 --with-backbone --backbone "gguf:$WORK/q8_0.gguf,pool=last"
    expect_rc 2 "Q8_0 weights: refused"
    expect_grep "tensor [a-z_.0-9]+ is Q8_0; .*F32, F16 or BF16" q8.log "... naming the tensor and its type"
    pass_if "... and nothing written" test ! -e exp-q8/model.safetensors
    run_cmd mean.log "$BTRM" export llm/final.h5 -o exp-mean --with-backbone --backbone "gguf:$WORK/f32.gguf,pool=mean"
    expect_rc 2 "pool=mean: refused (the classifier scores the last token)"
    run_cmd mlpbb.log "$BTRM" export mlp/final.h5 -o exp-mlpbb --with-backbone --backbone "gguf:$WORK/f32.gguf,pool=last"
    expect_grep "mlp head.*score layer is linear" mlpbb.log "an mlp head with a backbone: refused"
    run_cmd l2c.log "$BTRM" export llm/final.h5 -o exp-l2c --with-backbone --backbone "llama2c:$M/stories260K.bin"
    expect_grep "only a GGUF backbone" l2c.log "a llama2c backbone: refused"
    # stale config.json from an earlier export goes away with a head-only export
    run_cmd reexp.log "$BTRM" export llm/final.h5 -o exp-f32
    pass_if "a head-only export into that folder removes its config.json" test ! -e exp-f32/config.json
else
    for _ in $(seq 31); do skip "stories260K not found in $M (data-prep/fetch.sh --models fetches it)"; done
fi
run_cmd hashbb.log "$BTRM" export linear/final.h5 -o exp-h --with-backbone --backbone hash
expect_grep "hash backbone has none" hashbb.log "the hash backbone has no weights to export: said so"
run_cmd fmt.log "$BTRM" export linear/final.h5 -o exp-fmt --format onnx
expect_rc 2 "an unknown --format: usage error"
done_testing
