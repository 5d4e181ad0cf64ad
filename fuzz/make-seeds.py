#!/usr/bin/env python3
"""fuzz/make-seeds.py: writes the hand-made seed inputs of the fuzz harnesses
into fuzz/corpus/<harness>/seed-* (docs/reliability.md). Deterministic: the
same script gives the same bytes. Run from anywhere; needs numpy (for
tests/gguf_quantize.py's GGUF writer). The HDF5 seeds (pairs, modelfile,
ckpt) are written by btrm itself: give the binary as BTRM=src/btrm (with
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 as root); without
it they are left as they are. The campaigns' merged inputs live
beside the seeds under hash names (make fuzz-merge); this script never
touches them.

Each harness's input layout is documented at the top of fuzz/fuzz-<name>.c;
SEP below is fuzz.h's FUZZ_SEP."""
import gzip
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests"))
import gguf_quantize as gq  # noqa: E402

SEP = b"\n@@@\n"


def put(harness, name, data):
    d = os.path.join(HERE, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def read(rel):
    with open(os.path.join(TOP, rel), "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------
# config: a file, then SEP and --set lines
def config_seeds():
    for name in ("full", "chain-child", "cycle-a", "syntax", "typo", "bad-value", "empty",
                 "not-mapping"):
        put("config", name, read(f"tests/data/config/{name}.yaml"))
    put("config", "demo-normbt", read("configs/demo/normbt.yaml"))
    put("config", "sets", b"run: {name: x}\n" + SEP +
        b"optim.lr=3e-4\nmodel.hidden=[1024, 256]\nloss={type: normbt, normbt: {ema: 0.5}}\n"
        b"model.head=mlp\ndata.eval=[a.h5, b.h5]\ncheckpoint.dir=\ntrain.steps=-1\n")
    put("config", "set-only", SEP + b"train.global_batch=all\noptim.betas=[0.8, 0.99]\n")
    put("config", "anchors", b"base: &b {seed: 1}\nrun: *b\nmodel: {hidden: [1, 2, 3], head: mlp}\n"
        b"optim: !!map {lr: .inf}\n")


# sweep: a sweep file; base.yaml and other.yaml sit beside it
def sweep_seeds():
    put("sweep", "grid", "name: s\nbase: base.yaml\ngrid:\n  loss.type: [bt, normbt]\n"
        "  run.seed: [1, 2, 3]\n")
    put("sweep", "zip", "base: [base.yaml, other.yaml]\nsettings: other.yaml\n"
        "grid: {base: [base.yaml, other.yaml]}\n"
        "zip:\n  - {optim.lr: [1e-3, 3e-4], optim.warmup_steps: [0, 100]}\n")
    put("sweep", "bad", "grid: {loss.type: [bt, nope]}\nbase: base.yaml\n")


# prep: a mode byte, the records, then SEP template, then SEP category map
def prep_seeds():
    files = {"hh": "tests/data/prep/hh.jsonl", "skywork": "tests/data/prep/skywork.jsonl",
             "rewardbench": "tests/data/prep/rewardbench.json",
             "ultrafeedback": "tests/data/prep/ultrafeedback.jsonl",
             "bad": "tests/data/prep/bad.jsonl"}
    for name, rel in files.items():
        data = read(rel)
        lines = data.split(b"\n")
        if len(data) > 4000 and rel.endswith(".jsonl"):
            data = b"\n".join(lines[:6]) + b"\n"
        elif len(data) > 4000:
            recs = json.loads(data)[:4]
            data = json.dumps(recs, indent=1).encode()
        put("prep", name, bytes([0]) + data)
        put("prep", name + "-gzip", bytes([1 << 3]) + data)
    put("prep", "hh-cut-gzip-strict", bytes([(2 << 3) | 4 | (3 << 5) | 1]) +
        read("tests/data/prep/hh.jsonl")[:1500])
    put("prep", "two-members", bytes([3 << 3]) + read("tests/data/prep/skywork.jsonl")[:2000])
    put("prep", "prompt-template", bytes([2]) +
        b'{"prompt": "hi", "chosen": "a", "rejected": "b", "subset": "x"}\n' + SEP +
        read("tests/data/prep/template-hh.yaml") + SEP + b"x: chat\ny: safety\n")
    put("prep", "messages", bytes([3]) +
        b'{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],'
        b' "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}\n')


# ---------------------------------------------------------------------------
# GGUF: a tiny Llama with a SentencePiece vocabulary; a GPT-2 vocabulary
SPM_WORDS = ["<unk>", "<s>", "</s>", "\u2581", "\u2581Once", "\u2581upon", "\u2581a", "\u2581time",
             "\u2581there", "\u2581was", "\u2581tiny", "\u2581model", ",", ".", "O", "n", "c", "e",
             "u", "p", "o", "a", "t", "i", "m", "h", "r", "w", "s", "y", "d", "l"]


def spm_kvs():
    n = len(SPM_WORDS)
    types = [2, 3, 3] + [1] * (n - 3)
    return [("tokenizer.ggml.model", gq.STRING, "llama"),
            ("tokenizer.ggml.tokens", gq.ARRAY, (gq.STRING, SPM_WORDS)),
            ("tokenizer.ggml.scores", gq.ARRAY, (gq.F32, [-float(i) for i in range(n)])),
            ("tokenizer.ggml.token_type", gq.ARRAY, (gq.I32, types)),
            ("tokenizer.ggml.bos_token_id", gq.U32, 1),
            ("tokenizer.ggml.eos_token_id", gq.U32, 2)]


def gpt2_kvs():
    alphabet, nxt = [], 256
    for b in range(256):
        printable = 33 <= b <= 126 or 0xA1 <= b <= 0xAC or b >= 0xAE
        alphabet.append(chr(b) if printable else chr(nxt))
        nxt += 0 if printable else 1
    merges = ["\u0120 t", "h e", "\u0120t he", "a n", "o n"]
    tokens = alphabet + ["\u0120t", "he", "\u0120the", "an", "on", "<|endoftext|>"]
    return [("tokenizer.ggml.model", gq.STRING, "gpt2"),
            ("tokenizer.ggml.pre", gq.STRING, "gpt-2"),
            ("tokenizer.ggml.tokens", gq.ARRAY, (gq.STRING, tokens)),
            ("tokenizer.ggml.merges", gq.ARRAY, (gq.STRING, merges)),
            ("tokenizer.ggml.eos_token_id", gq.U32, len(tokens) - 1)]


def tiny_llama_gguf(path, ttype, dim=8, heads=2, kv_heads=1, ffn=16, layers=1, tied=True):
    rng = np.random.default_rng(7)
    vocab = len(SPM_WORDS)
    kvs = [("general.architecture", gq.STRING, "llama"),
           ("general.name", gq.STRING, "fuzz-seed"),
           ("llama.context_length", gq.U32, 64),
           ("llama.embedding_length", gq.U32, dim),
           ("llama.block_count", gq.U32, layers),
           ("llama.feed_forward_length", gq.U32, ffn),
           ("llama.attention.head_count", gq.U32, heads),
           ("llama.attention.head_count_kv", gq.U32, kv_heads),
           ("llama.rope.freq_base", gq.F32, 10000.0),
           ("llama.attention.layer_norm_rms_epsilon", gq.F32, 1e-5)] + spm_kvs()
    tensors = []

    def matrix(name, rows, cols):
        x = (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)
        t = gq.GGML_F16 if ttype == gq.GGML_Q8_0 and cols % 32 else ttype
        tensors.append((name, [cols, rows], t, gq.convert(t, x)))

    def vector(name, n):
        tensors.append((name, [n], gq.GGML_F32, np.ones(n, dtype="<f4").tobytes()))

    kv_dim = kv_heads * (dim // heads)
    matrix("token_embd.weight", vocab, dim)
    vector("output_norm.weight", dim)
    if not tied:
        matrix("output.weight", vocab, dim)
    for l in range(layers):
        vector(f"blk.{l}.attn_norm.weight", dim)
        matrix(f"blk.{l}.attn_q.weight", dim, dim)
        matrix(f"blk.{l}.attn_k.weight", kv_dim, dim)
        matrix(f"blk.{l}.attn_v.weight", kv_dim, dim)
        matrix(f"blk.{l}.attn_output.weight", dim, dim)
        vector(f"blk.{l}.ffn_norm.weight", dim)
        matrix(f"blk.{l}.ffn_gate.weight", ffn, dim)
        matrix(f"blk.{l}.ffn_down.weight", dim, ffn)
        matrix(f"blk.{l}.ffn_up.weight", ffn, dim)
    gq.write_gguf(path, kvs, tensors)


def gguf_bytes(write):
    tmp = os.path.join(HERE, ".seed.tmp")
    write(tmp)
    with open(tmp, "rb") as f:
        data = f.read()
    os.remove(tmp)
    return data


def every_type_kvs():
    return [("u8", gq.U8, 7), ("i8", gq.I8, -7), ("u16", gq.U16, 700), ("i16", gq.I16, -700),
            ("u32", gq.U32, 70000), ("i32", gq.I32, -70000), ("f32", gq.F32, 0.5),
            ("bool", gq.BOOL, True), ("str", gq.STRING, "text"), ("u64", gq.U64, 1 << 40),
            ("i64", gq.I64, -(1 << 40)), ("f64", gq.F64, 0.25),
            ("arr.i32", gq.ARRAY, (gq.I32, [1, -2, 3])),
            ("arr.str", gq.ARRAY, (gq.STRING, ["a", "bc", ""])),
            ("arr.bool", gq.ARRAY, (gq.BOOL, [True, False])),
            ("general.alignment", gq.U32, 64)]


def gguf_seeds():
    f32 = gguf_bytes(lambda p: tiny_llama_gguf(p, gq.GGML_F32))
    put("gguf", "llama-f32", f32)
    put("gguf", "gpt2-vocab", gguf_bytes(lambda p: gq.write_gguf(p, gpt2_kvs(), [])))
    put("gguf", "every-type", gguf_bytes(lambda p: gq.write_gguf(
        p, every_type_kvs(), [("t", [4, 2], gq.GGML_F32, np.arange(8, dtype="<f4").tobytes()),
                              ("h", [4], gq.GGML_F16, gq.to_f16(np.ones(4))),
                              ("b", [4], gq.GGML_BF16, gq.to_bf16(np.ones(4))),
                              ("q", [32], gq.GGML_Q8_0, gq.quantize_q8_0(np.ones(32)))],
        alignment=64)))
    put("gguf", "v2", gguf_bytes(lambda p: gq.write_gguf(p, spm_kvs(), [], version=2)))
    # one row of 256 values in every block type btrm reads (the dequantisers)
    x = np.sin(np.arange(256, dtype=np.float32) * 0.37) * 3
    quants = [("q4_0", gq.GGML_Q4_0), ("q4_1", gq.GGML_Q4_1), ("q5_0", gq.GGML_Q5_0),
              ("q5_1", gq.GGML_Q5_1), ("q8_0", gq.GGML_Q8_0), ("q2_k", gq.GGML_Q2_K),
              ("q3_k", gq.GGML_Q3_K), ("q4_k", gq.GGML_Q4_K), ("q5_k", gq.GGML_Q5_K),
              ("q6_k", gq.GGML_Q6_K), ("q8_k", gq.GGML_Q8_K)]
    put("gguf", "every-quant", gguf_bytes(lambda p: gq.write_gguf(
        p, [("general.architecture", gq.STRING, "llama")],
        [(name, [256], t, gq.convert(t, x)) for name, t in quants])))
    put("llama-model", "gguf-f32", bytes([0]) + f32)
    put("llama-model", "gguf-f16-untied", bytes([2]) + gguf_bytes(
        lambda p: tiny_llama_gguf(p, gq.GGML_F16, tied=False)))
    put("llama-model", "gguf-q8", bytes([2]) + gguf_bytes(
        lambda p: tiny_llama_gguf(p, gq.GGML_Q8_0, dim=32, heads=4, kv_heads=2, ffn=32)))
    put("llama-model", "gguf-bf16-2layers", bytes([0]) + gguf_bytes(
        lambda p: tiny_llama_gguf(p, gq.GGML_BF16, layers=2)))
    # the other architectures (F32, tiny), and K-quant / Q8_0 models through
    # the int8 kernel (mode bits 2-3 = 2)
    vocab = os.path.join(HERE, ".vocab.tmp")
    tiny_llama_gguf(vocab, gq.GGML_F32)
    try:
        for arch in sorted(gq.ARCHS):
            if arch == "llama":
                continue
            put("llama-model", f"gguf-{arch}", bytes([0]) + gguf_bytes(
                lambda p: gq.synthetic_model(arch, p, dim=8, layers=1, heads=2, kv_heads=1,
                                             ffn=16, vocab_from=vocab, context=64)))
        put("llama-model", "gguf-q4k-int8", bytes([8]) + gguf_bytes(
            lambda p: gq.synthetic_model("llama", p, dim=256, layers=1, heads=2, kv_heads=1,
                                         head_dim=8, ffn=16, want=gq.GGML_Q4_K,
                                         vocab_from=vocab, context=64)))
        put("llama-model", "gguf-q6k-dequant", bytes([4]) + gguf_bytes(
            lambda p: gq.synthetic_model("qwen2", p, dim=256, layers=1, heads=2, kv_heads=1,
                                         head_dim=8, ffn=16, want=gq.GGML_Q6_K,
                                         vocab_from=vocab, context=64)))
    finally:
        os.remove(vocab)
    put("llama-model", "gguf-q8-int8", bytes([8]) + gguf_bytes(
        lambda p: tiny_llama_gguf(p, gq.GGML_Q8_0, dim=32, heads=4, kv_heads=2, ffn=32)))
    put("llama-model", "llama2c", bytes([1]) + llama2c_model() + SEP + tokenizer_bin())
    put("llama-model", "llama2c-untied", bytes([3]) + llama2c_model(tied=False) + SEP +
        tokenizer_bin())


# ---------------------------------------------------------------------------
# llama2.c: legacy checkpoint and tokenizer.bin
def llama2c_model(dim=8, hidden=16, layers=1, heads=2, kv_heads=1, seq_len=16, tied=True):
    rng = np.random.default_rng(3)
    vocab = len(SPM_WORDS)
    head = dim // heads
    kv_dim = kv_heads * head
    h = struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab if tied else -vocab, seq_len)
    n = (vocab * dim + layers * dim + layers * dim * dim + 2 * layers * dim * kv_dim +
         layers * dim * dim + layers * dim + 3 * layers * dim * hidden + dim + seq_len * head +
         (0 if tied else vocab * dim))
    w = (rng.standard_normal(n) * 0.3).astype("<f4")
    return h + w.tobytes()


def tokenizer_bin(words=None):
    words = words or [w.replace("\u2581", " ") for w in SPM_WORDS]
    out = [struct.pack("<i", max(len(w.encode()) for w in words))]
    for i, w in enumerate(words):
        b = w.encode()
        out.append(struct.pack("<fi", -float(i), len(b)) + b)
    return b"".join(out)


def tokenizer_seeds():
    put("tokenizer", "spm-bin", bytes([0]) + tokenizer_bin())
    byte_words = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + [" a", " the"]
    put("tokenizer", "spm-bin-bytes", bytes([4]) + tokenizer_bin(byte_words))
    enc = {"!": 0, "\"": 1, "a": 2, "b": 3, "ab": 4, "\u0120": 5, "\u0120a": 6,
           "<|endoftext|>": 7}
    put("tokenizer", "bpe-files", bytes([1]) + json.dumps(enc).encode() + SEP +
        b"#version: 0.2\na b\n\xc4\xa0 a\n")
    for i, text in enumerate([b"Once upon a time, there was a tiny model.",
                              "h\u00e9llo \u4e16\u754c \U0001F600 \u2581x".encode(),
                              b"\xff\xfe\x00 bytes\n\n  spaces\t123456 I'm you've"]):
        put("tokenizer", f"spm-text-{i}", bytes([2]) + text)
        put("tokenizer", f"bpe-text-{i}", bytes([3]) + text)
        put("tokenizer", f"llama3-text-{i}", bytes([7]) + text)
    # every pre-tokenizer (mode 3 + 4 * its index in btrm_tok_bpe_pre_names)
    text = "Hello world! It's 2025: 12345 \u4e16\u754c caf\u00e9\r\n\t  x".encode()
    for i in range(64):
        put("tokenizer", f"bpe-pre-{i:02d}", bytes([3 + 4 * i]) + text)


# ---------------------------------------------------------------------------
# report: summary.json, SEP config.yaml, SEP eval.jsonl
def report_seeds():
    summary = {"status": "ok", "run_name": "r", "data": [{"role": "train", "path": "train.h5"},
                                                         {"role": "eval", "path": "test.h5"}],
               "final_eval": [{"file": "test.h5", "n_pairs": 32, "accuracy": 0.84375,
                               "by_category": {"fine": {"n": 16, "accuracy": 0.75},
                                               "coarse": {"n": 16, "accuracy": 0.9375}},
                               "step": 8}], "loss": "bt", "seed": 3}
    put("report", "ok", json.dumps(summary, indent=2))
    cfg = b"run: {name: r, seed: 4}\nloss: {type: bt}\ndata: {train: train.h5}\n"
    evals = b"".join(json.dumps({"file": "test.h5", "accuracy": a, "step": s,
                                 "by_category": {"c": {"accuracy": a}}}).encode() + b"\n"
                     for s, a in ((4, 0.5), (8, 0.75), (8, 0.7)))
    put("report", "from-jsonl", json.dumps({"status": "ok"}).encode() + SEP + cfg + SEP + evals)
    put("report", "failed", json.dumps({"status": "failed", "error": "boom"}) + "\n")
    put("report", "preempted-no-summary-json", b"" + SEP + cfg)


# ---------------------------------------------------------------------------
# HDF5 files made by btrm: pair stores (synth, prep), a model file, checkpoints
def hdf5_seeds(btrm):
    import shutil
    import subprocess
    import tempfile
    work = tempfile.mkdtemp(prefix="btrm-seeds.")
    try:
        def run(*args):
            subprocess.run([btrm, *args], cwd=work, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

        def take(harness, name, rel):
            with open(os.path.join(work, rel), "rb") as f:
                put(harness, name, f.read())

        run("synth", "s.h5", "--pairs", "12", "--dim", "4", "--seed", "1")
        run("synth", "h.h5", "--pairs", "12", "--dim", "4", "--seed", "2", "--f16", "--margins")
        with open(os.path.join(work, "hh.jsonl"), "wb") as f:
            f.write(b"\n".join(read("tests/data/prep/hh.jsonl").split(b"\n")[:4]) + b"\n")
        run("prep", "hh.jsonl", "-o", "texts.h5")
        take("pairs", "synth", "s.h5")
        take("pairs", "synth-f16-margins", "h.h5")
        take("pairs", "prep-texts", "texts.h5")
        with open(os.path.join(work, "run.yaml"), "w") as f:
            f.write("run: {name: seed, out_dir: out}\ndata: {train: s.h5}\n"
                    "model: {head: mlp, hidden: [3]}\nloss: {type: normbt}\n"
                    "train: {global_batch: 4, steps: 2}\ncheckpoint: {every: 1, keep: 2}\n")
        run("train", "run.yaml")
        run("train", "run.yaml", "--set", "run.out_dir=lin", "--set", "model.head=linear",
            "--set", "optim.type=sgd")
        take("modelfile", "mlp", "out/final.h5")
        take("modelfile", "linear", "lin/final.h5")
        take("ckpt", "mlp-adamw", "out/checkpoints/step-00000002.h5")
        take("ckpt", "linear-sgd", "lin/checkpoints/step-00000002.h5")
    finally:
        shutil.rmtree(work)


def main():
    config_seeds()
    sweep_seeds()
    prep_seeds()
    gguf_seeds()
    tokenizer_seeds()
    report_seeds()
    if os.environ.get("BTRM"):
        hdf5_seeds(os.path.abspath(os.environ["BTRM"]))


if __name__ == "__main__":
    main()
