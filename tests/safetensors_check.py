#!/usr/bin/python3
"""tests/safetensors_check.py: an independent reader of `btrm export`'s
safetensors files (Python's standard library and numpy; torch for the
forward pass), for tests/export.sh.

  safetensors_check.py layout FILE
      the layout rules: 8-byte little-endian header length N, N a multiple of
      8 (the data starts 8-aligned), a JSON object padded with spaces only,
      every tensor {dtype, shape, data_offsets} of a known dtype whose byte
      count matches its shape, offsets contiguous from 0 to the end of the
      file with no gap or overlap, __metadata__ strings only, format "pt".
  safetensors_check.py head FILE MODEL.h5
      every tensor equals the model file's (h5py), bit for bit: score.weight
      = /model/out/weight and __metadata__ score.bias = /model/out/bias for a
      linear head; score.<t>.weight/bias = /model/<t>/weight/bias for an mlp.
  safetensors_check.py backbone DIR MODEL.gguf
      every model.* tensor equals the GGUF tensor it comes from (same dtype,
      bytes equal), the q_proj/k_proj rows put back with numpy's own reshape
      (llama.cpp's converter permutes HF rows [head, 2, hd/2] to [head, hd/2,
      2]); config.json matches the GGUF's hyperparameters.
  safetensors_check.py forward DIR IDS.jsonl REWARDS.jsonl [--tol T]
      loads DIR/model.safetensors into torch tensors (torch.frombuffer, F16
      and BF16 as themselves) and runs LlamaForSequenceClassification's
      forward as transformers defines it (RMSNorm, rotate_half rotary
      embedding, grouped-query causal attention, SwiGLU, final norm, score on
      the last token) in float64 on each line's "ids"; reward + score.bias
      must match REWARDS.jsonl ({"reward": r}) within T times the largest
      |reward| (default 1e-5).
      --adapter ADIR: first applies a PEFT LoRA export (ADIR/adapter_model.safetensors
      and adapter_config.json, as PEFT's LoraModel reads them): W += (lora_alpha / r)
      lora_B.weight @ lora_A.weight on every target module of every layer in
      layers_to_transform (all layers when null), and takes the score layer
      from base_model.model.score.weight (modules_to_save) and score.bias from
      the adapter's __metadata__; every adapter tensor must be used.
      --replace FILE: the model.* and score.* tensors of FILE (a top_k export)
      replace DIR's, score.bias from FILE's __metadata__.
  safetensors_check.py peft ADIR MODEL.h5 --head-dim HD
      a LoRA export against the fine-tuned model file (h5py): adapter_config.json
      (peft_type LORA, task_type SEQ_CLS, r, lora_alpha, target_modules,
      layers_to_transform, base_model_name_or_path, bias none, lora_dropout 0),
      every lora_A = /backbone/blk.N.<proj>.weight.lora_a and every lora_B = its
      lora_b with the rows of q and k put back in Hugging Face's order (numpy's
      reshape, as for the base), and the base model's hash in the metadata.
"""
import json
import math
import os
import struct
import sys

import numpy as np

SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
         "U8": 1, "BOOL": 1}


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def read(path):
    """(metadata, {name: (dtype, shape, bytes)}) after checking the layout."""
    raw = open(path, "rb").read()
    if len(raw) < 8:
        fail("%s: shorter than 8 bytes" % path)
    n = struct.unpack("<Q", raw[:8])[0]
    if n % 8:
        fail("%s: header length %d is not a multiple of 8" % (path, n))
    if 8 + n > len(raw):
        fail("%s: header length %d past the end of the file" % (path, n))
    text = raw[8:8 + n].decode("utf-8")
    body = text.rstrip(" ")
    if not body.endswith("}"):
        fail("%s: header padded with something other than spaces" % path)
    header = json.loads(body)
    if not isinstance(header, dict):
        fail("header is not an object")
    meta = header.pop("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        fail("__metadata__ values must all be strings")
    if meta.get("format") != "pt":
        fail('__metadata__ "format" is %r, want "pt"' % meta.get("format"))
    data = raw[8 + n:]
    spans = []
    tensors = {}
    for name, t in header.items():
        if set(t) != {"dtype", "shape", "data_offsets"}:
            fail("%s: keys %s" % (name, sorted(t)))
        if t["dtype"] not in SIZES:
            fail("%s: unknown dtype %s" % (name, t["dtype"]))
        b, e = t["data_offsets"]
        want = SIZES[t["dtype"]] * math.prod(t["shape"])
        if e - b != want:
            fail("%s: %d bytes for shape %s %s (want %d)" % (name, e - b, t["shape"], t["dtype"], want))
        spans.append((b, e, name))
        tensors[name] = (t["dtype"], tuple(t["shape"]), data[b:e])
    spans.sort()
    at = 0
    for b, e, name in spans:
        if b != at:
            fail("%s starts at %d, want %d (a gap or an overlap)" % (name, b, at))
        at = e
    if at != len(data):
        fail("the tensors end at %d but the data section has %d bytes" % (at, len(data)))
    return meta, tensors


def as_f64(dtype, shape, buf):
    if dtype == "F32":
        a = np.frombuffer(buf, "<f4").astype(np.float64)
    elif dtype == "F16":
        a = np.frombuffer(buf, "<f2").astype(np.float64)
    elif dtype == "BF16":
        a = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view("<f4").astype(np.float64)
    else:
        fail("dtype %s" % dtype)
    return a.reshape(shape)


def cmd_layout(argv):
    meta, tensors = read(argv[0])
    print("ok: %d tensors, %d metadata keys" % (len(tensors), len(meta)))
    return 0


def cmd_head(argv):
    import h5py
    meta, tensors = read(argv[0])
    with h5py.File(argv[1], "r") as f:
        m = f["model"]
        names = sorted(k for k in m.keys())
        if m.attrs["head"] == "linear":
            w = m["out/weight"][()]
            dtype, shape, buf = tensors["score.weight"]
            if dtype != "F32" or shape != (1, w.shape[1]) or buf != w.astype("<f4").tobytes():
                fail("score.weight differs from /model/out/weight")
            b = np.float32(m["out/bias"][0])
            if np.float32(float(meta["score.bias"])) != b:
                fail("score.bias %s != %r" % (meta["score.bias"], b))
            if set(tensors) != {"score.weight"}:
                fail("tensors %s" % sorted(tensors))
        else:
            want = set()
            for t in names:
                for part in ("weight", "bias"):
                    key = "score.%s.%s" % (t, part)
                    want.add(key)
                    ref = m[t][part][()].astype("<f4")
                    dtype, shape, buf = tensors[key]
                    if dtype != "F32" or shape != ref.shape or buf != ref.tobytes():
                        fail("%s differs from /model/%s/%s" % (key, t, part))
            if set(tensors) != want:
                fail("tensors %s, want %s" % (sorted(tensors), sorted(want)))
            if meta.get("btrm_activation", "").split()[0] != m.attrs["activation"]:
                fail("activation %s" % meta.get("btrm_activation"))
    print("ok: %d tensors equal the model file's" % len(tensors))
    return 0


def cmd_backbone(argv):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gguf_quantize as gq
    meta, tensors = read(os.path.join(argv[0], "model.safetensors"))
    config = json.load(open(os.path.join(argv[0], "config.json")))
    version, kvs, gts, alignment = gq.read_gguf(argv[1])
    kv = {k: (v[1] if vt == gq.ARRAY else v) for k, vt, v in kvs}
    n_head = int(kv["llama.attention.head_count"])
    n_kv = int(kv.get("llama.attention.head_count_kv", n_head))
    dim = int(kv["llama.embedding_length"])
    types = {0: "F32", 1: "F16", 30: "BF16"}
    rename = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj",
              "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
              "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
              "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
    seen = set()
    for name, ne, ttype, raw in gts:
        if name == "output.weight":
            continue
        if name == "token_embd.weight":
            hf = "model.embed_tokens.weight"
        elif name == "output_norm.weight":
            hf = "model.norm.weight"
        else:
            _, layer, part, _ = name.split(".")
            hf = "model.layers.%s.%s.weight" % (layer, rename[part])
        dtype, shape, buf = tensors[hf]
        seen.add(hf)
        if dtype != types[ttype] or shape != tuple(reversed(ne)):
            fail("%s: %s %s, want %s %s" % (hf, dtype, shape, types[ttype], tuple(reversed(ne))))
        width = SIZES[dtype]
        g = np.frombuffer(raw, dtype="u%d" % width).reshape(shape)
        heads = n_head if ".q_proj" in hf else n_kv if ".k_proj" in hf else 0
        if heads:
            hd = shape[0] // heads
            # undo convert_hf_to_gguf.py's permute: [h, 2, hd/2, in] -> [h, hd/2, 2, in]
            g = g.reshape(heads, hd // 2, 2, shape[1]).swapaxes(1, 2).reshape(shape)
        if buf != g.tobytes():
            fail("%s differs from %s" % (hf, name))
    extra = set(tensors) - seen - {"score.weight"}
    if extra:
        fail("unexpected tensors %s" % sorted(extra))
    want = {"architectures": ["LlamaForSequenceClassification"], "model_type": "llama",
            "hidden_size": dim, "num_attention_heads": n_head, "num_key_value_heads": n_kv,
            "num_hidden_layers": int(kv["llama.block_count"]),
            "intermediate_size": int(kv["llama.feed_forward_length"]), "num_labels": 1,
            "head_dim": dim // n_head,
            "vocab_size": len(kv["tokenizer.ggml.tokens"])}
    for k, v in want.items():
        if config.get(k) != v:
            fail("config.json %s = %r, want %r" % (k, config.get(k), v))
    pad = config.get("pad_token_id")
    if not isinstance(pad, int) or not 0 <= pad < want["vocab_size"]:
        fail("config.json pad_token_id %r is not a token id" % pad)
    eps = kv.get("llama.attention.layer_norm_rms_epsilon", 1e-5)
    if abs(config["rms_norm_eps"] - eps) > 1e-6 * eps:
        fail("rms_norm_eps %r" % config["rms_norm_eps"])
    print("ok: %d backbone tensors equal the GGUF's (q/k rows unpermuted), config.json agrees" % len(seen))
    return 0


def cmd_forward(argv):
    import torch
    tol = 1e-5
    if "--tol" in argv:
        tol = float(argv[argv.index("--tol") + 1])
    folder, ids_path, rewards_path = argv[:3]
    meta, raw = read(os.path.join(folder, "model.safetensors"))
    config = json.load(open(os.path.join(folder, "config.json")))
    tdt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
    # the transformers-free loading path: bytes -> torch tensors of the file's dtype
    w = {k: torch.frombuffer(bytearray(buf), dtype=tdt[d]).reshape(s).to(torch.float64)
         for k, (d, s, buf) in raw.items()}
    H, KV = config["num_attention_heads"], config["num_key_value_heads"]
    hd = config["head_dim"]
    eps, theta = config["rms_norm_eps"], config["rope_theta"]
    bias = float(meta["score.bias"])
    if "--adapter" in argv:
        bias = apply_adapter(w, argv[argv.index("--adapter") + 1], config["num_hidden_layers"])
    if "--replace" in argv:
        rmeta, rraw = read(argv[argv.index("--replace") + 1])
        for k, (d, s, buf) in rraw.items():
            if k not in w or tuple(w[k].shape) != s:
                fail("--replace: %s %s is not a tensor of the base" % (k, s))
            w[k] = torch.frombuffer(bytearray(buf), dtype=tdt[d]).reshape(s).to(torch.float64)
        bias = float(rmeta["score.bias"])

    def rms(x, g):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * g

    def rotate_half(x):
        x1, x2 = x[..., :hd // 2], x[..., hd // 2:]
        return torch.cat((-x2, x1), dim=-1)

    def reward(ids):
        T = len(ids)
        x = w["model.embed_tokens.weight"][torch.tensor(ids)]
        inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        f = torch.outer(torch.arange(T, dtype=torch.float64), inv)
        emb = torch.cat((f, f), dim=-1)
        cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
        mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
        for l in range(config["num_hidden_layers"]):
            p = "model.layers.%d." % l
            h = rms(x, w[p + "input_layernorm.weight"])
            q = (h @ w[p + "self_attn.q_proj.weight"].T).view(T, H, hd)
            k = (h @ w[p + "self_attn.k_proj.weight"].T).view(T, KV, hd)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).view(T, KV, hd)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(H // KV, dim=1)
            v = v.repeat_interleave(H // KV, dim=1)
            att = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hd) + mask
            o = torch.einsum("hts,shd->thd", att.softmax(-1), v).reshape(T, H * hd)
            x = x + o @ w[p + "self_attn.o_proj.weight"].T
            h = rms(x, w[p + "post_attention_layernorm.weight"])
            g = h @ w[p + "mlp.gate_proj.weight"].T
            x = x + (torch.nn.functional.silu(g) * (h @ w[p + "mlp.up_proj.weight"].T)) @ \
                w[p + "mlp.down_proj.weight"].T
        x = rms(x, w["model.norm.weight"])
        return float(w["score.weight"][0] @ x[-1]) + bias

    ids = [json.loads(l)["ids"] for l in open(ids_path)]
    want = [json.loads(l)["reward"] for l in open(rewards_path)]
    got = [reward(s) for s in ids]
    scale = max(abs(r) for r in want)
    worst = max(abs(g - r) for g, r in zip(got, want)) / scale
    print("max |torch - btrm| / max |btrm| = %.3g over %d texts" % (worst, len(got)))
    return 0 if worst <= tol and len(got) == len(want) else 1


HF_PROJ = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn",
           "o_proj": "self_attn", "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def apply_adapter(w, adir, n_layers):
    """W += (alpha / r) B A for every adapted module, as PEFT's LoRA merges;
    returns the score bias. w: {name: float64 torch tensor}."""
    import torch
    ameta, raw = read(os.path.join(adir, "adapter_model.safetensors"))
    cfg = json.load(open(os.path.join(adir, "adapter_config.json")))
    if cfg["peft_type"] != "LORA" or cfg.get("bias", "none") != "none" or cfg.get("lora_dropout", 0):
        fail("adapter_config.json: %s" % cfg)
    scale = cfg["lora_alpha"] / cfg["r"]
    layers = cfg.get("layers_to_transform") or list(range(n_layers))
    used = set()
    for l in layers:
        for t in cfg["target_modules"]:
            pre = "base_model.model.model.layers.%d.%s.%s." % (l, HF_PROJ[t], t)
            (da, sa, ba), (db, sb, bb) = raw[pre + "lora_A.weight"], raw[pre + "lora_B.weight"]
            a = torch.tensor(as_f64(da, sa, ba))
            b = torch.tensor(as_f64(db, sb, bb))
            base = "model.layers.%d.%s.%s.weight" % (l, HF_PROJ[t], t)
            out, inp = w[base].shape
            if sa != (cfg["r"], inp) or sb != (out, cfg["r"]):
                fail("%s: lora_A %s, lora_B %s for a [%d, %d] weight" % (pre, sa, sb, out, inp))
            w[base] = w[base] + scale * (b @ a)
            used |= {pre + "lora_A.weight", pre + "lora_B.weight"}
    if "base_model.model.score.weight" in raw:
        d, s, buf = raw["base_model.model.score.weight"]
        w["score.weight"] = torch.tensor(as_f64(d, s, buf))
        used.add("base_model.model.score.weight")
    if set(raw) != used:
        fail("adapter tensors not used: %s" % sorted(set(raw) - used))
    return float(ameta["score.bias"])


def cmd_peft(argv):
    import h5py
    adir, model = argv[:2]
    hd = int(argv[argv.index("--head-dim") + 1])  # rows per attention head
    meta, raw = read(os.path.join(adir, "adapter_model.safetensors"))
    cfg = json.load(open(os.path.join(adir, "adapter_config.json")))
    f = h5py.File(model, "r")
    bb = f["backbone"]
    at = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in bb.attrs.items()}
    gguf_of = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output",
               "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down"}
    targets = at["targets"].split(",")
    blocks = sorted({int(k.split(".")[1]) for k in bb.keys()})
    want = {"peft_type": "LORA", "task_type": "SEQ_CLS", "r": int(at["rank"]),
            "lora_alpha": float(at["alpha"]), "lora_dropout": 0.0, "bias": "none",
            "target_modules": [t + "_proj" for t in targets],
            "base_model_name_or_path": at["model_file"]}
    for k, v in want.items():
        if cfg.get(k) != v:
            fail("adapter_config.json %s = %r, want %r" % (k, cfg.get(k), v))
    n_layers = blocks[-1] + 1  # the top blocks train
    layers = cfg.get("layers_to_transform")
    if (layers or list(range(n_layers))) != blocks or (layers is not None and int(at["layers"]) == 0):
        fail("layers_to_transform %r, the model trains blocks %r" % (layers, blocks))
    if meta.get("btrm_backbone_base_model_hash") != at["model_hash"]:
        fail("metadata base hash %r, the model records %r" % (meta.get("btrm_backbone_base_model_hash"), at["model_hash"]))
    seen = set()
    for l in blocks:
        for t in targets:
            pre = "base_model.model.model.layers.%d.%s.%s_proj." % (l, HF_PROJ[t + "_proj"], t)
            for part, suffix in (("A", "lora_a"), ("B", "lora_b")):
                ref = bb["blk.%d.%s.weight.%s" % (l, gguf_of[t], suffix)][()].astype("<f4")
                if part == "B" and t in ("q", "k"):
                    # the GGUF rows of a head are HF's [2, hd/2] halves interleaved: [hd/2, 2]
                    heads = ref.shape[0] // hd
                    ref = ref.reshape(heads, hd // 2, 2, -1).swapaxes(1, 2).reshape(ref.shape)
                dtype, shape, buf = raw[pre + "lora_%s.weight" % part]
                if dtype != "F32" or shape != ref.shape or buf != np.ascontiguousarray(ref).tobytes():
                    fail("%slora_%s.weight differs from the model file's" % (pre, part))
                seen.add(pre + "lora_%s.weight" % part)
    extra = set(raw) - seen - {"base_model.model.score.weight"}
    if extra:
        fail("unexpected tensors %s" % sorted(extra))
    print("ok: %d LoRA tensors equal the model file's (q/k lora_B rows unpermuted), "
          "adapter_config.json agrees" % len(seen))
    return 0


if __name__ == "__main__":
    cmds = {"layout": cmd_layout, "head": cmd_head, "backbone": cmd_backbone, "forward": cmd_forward,
            "peft": cmd_peft}
    if len(sys.argv) < 3 or sys.argv[1] not in cmds:
        print(__doc__)
        sys.exit(2)
    sys.exit(cmds[sys.argv[1]](sys.argv[2:]))
