#!/usr/bin/env python3
"""tests/tok_ref.py: an independent tokenizer reference for GGUF vocabularies,
written from the tokenizers' definitions with Python's `regex` module (the
regex engine of Hugging Face's reference implementations) instead of PCRE2.

    tok_ref.py VOCAB.gguf TEXTS.json [--special] [--bos]
        prints one line per text of the JSON list: its token ids, space-separated

Byte-level BPE (tokenizer.ggml.model gpt2): the pre-tokenizer's regexes
(PRE below, by tokenizer.ggml.pre name, as llama.cpp's vocabulary code lists
them) split the text in turn, each one every piece of the previous one into
its matches and the text between them; each piece, in GPT-2's byte alphabet,
is merged pair by pair, the lowest merge rank first and the leftmost of equal
ranks, until no pair has a merge (llama-bpe and tekken: a piece that is a
token is kept whole). SentencePiece (llama): UTF-8 characters merged by the
highest score of the concatenation, the leftmost of equal scores, with a
space prefix (when tokenizer.ggml.add_space_prefix is on) before the first
text and after each special token; characters the vocabulary lacks become
their <0xNN> byte tokens. Before either, the text is split at the special
tokens written in it, longest first: user-defined ones always, control and
unknown ones with --special.
"""
import json
import os
import sys

import regex

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_quantize as gq  # noqa: E402

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
CONTR = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
LLAMA3 = CONTR + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = CONTR + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
BLOOM = r" ?[^(\s|.,!?\U00002026\U00003002\U0000FF0C\U00003001\U00000964\U000006D4\U0000060C)]+"
CJK = r"[\U00004E00-\U00009FA5\U00000800-\U00004E00\U0000AC00-\U0000D7FF]+"
# ECMAScript's '$' (llama.cpp's std::regex) is the end of the piece: \Z here;
# non-ASCII characters as code points (immune to Unicode normalisation)
PRE = {
    ("default",): [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
    ("llama3", "llama-v3", "llama-bpe", "falcon3"): [LLAMA3],
    ("dbrx", "smaug-bpe", "chatglm-bpe"): [LLAMA3],
    ("deepseek-llm",): ["[\r\n]",
                        r"\s?[A-Za-z\U000000B5\U000000C0-\U000000D6\U000000D8-\U000000F6\U000000F8-\U000001BA\U000001BC-\U000001BF\U000001C4-\U00000293\U00000295-\U000002AF\U00000370-\U00000373\U00000376\U00000377\U0000037B-\U0000037D\U0000037F\U00000386\U00000388-\U0000038A\U0000038C\U0000038E-\U000003A1\U000003A3-\U000003F5\U000003F7-\U00000481\U0000048A-\U0000052F\U00000531-\U00000556\U000010A0-\U000010C5\U000013A0-\U000013F5\U000013F8-\U000013FD\U00001C90-\U00001CBA\U00001CBD-\U00001CBF\U00001D00-\U00001D2B\U00001D6B-\U00001D77\U00001D79-\U00001D9A\U00001E00-\U00001F15\U00001F18-\U00001F1D\U00001F20-\U00001F45\U00001F48-\U00001F4D\U00001F50-\U00001F57\U00001F59\U00001F5B\U00001F5D\U00001F5F-\U00001F7D\U00001F80-\U00001FB4\U00001FB6-\U00001FBC\U00001FBE\U00001FC2-\U00001FC4\U00001FC6-\U00001FCC\U00001FD0-\U00001FD3\U00001FD6-\U00001FDB\U00001FE0-\U00001FEC\U00001FF2-\U00001FF4\U00001FF6-\U00001FFC\U00002102\U00002107\U0000210A-\U00002113\U00002115\U00002119-\U0000211D\U00002124\U00002126\U00002128\U0000212A-\U0000212D\U0000212F-\U00002134\U00002139\U0000213C-\U0000213F\U00002145-\U00002149\U0000214E\U00002183\U00002184\U00002C00-\U00002C7B\U00002C7E-\U00002CE4\U00002CEB-\U00002CEE\U00002CF2\U00002CF3\U0000A640-\U0000A66D\U0000A680-\U0000A69B\U0000A722-\U0000A76F\U0000A771-\U0000A787\U0000A78B-\U0000A78E\U0000AB70-\U0000ABBF\U0000FB00-\U0000FB06\U0000FB13-\U0000FB17\U0000FF21-\U0000FF3A\U0000FF41-\U0000FF5A\U00010400-\U0001044F\U000104B0-\U000104D3\U000104D8-\U000104FB\U00010C80-\U00010CB2\U00010CC0-\U00010CF2\U000118A0-\U000118DF\U0001E900-\U0001E943]+",
                        r"\s?[!-/:-~\U0000FF01-\U0000FF0F\U0000FF1A-\U0000FF5E\U00002018-\U0000201F\U00003000-\U00003002]+", r"\s+\Z", CJK, r"\p{N}+"],
    ("deepseek-coder",): ["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", CJK, r"\p{N}"],
    ("deepseek-v3",): [r"\p{N}{1,3}", r"[\U00004E00-\U00009FA5\U00003040-\U0000309F\U000030A0-\U000030FF]+",
                       r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    ("falcon",): [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, r"[0-9][0-9][0-9]"],
    ("starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"):
        [r"\p{N}", GPT2],
    ("gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v1-en", "jina-v2-es", "jina-v2-de",
     "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais", "gpt2"): [GPT2],
    ("qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"): [QWEN2],
    ("poro-chat", "bloom", "gpt3-finnish"): [BLOOM],
    ("viking",): [BLOOM, r"\p{N}"],
    ("tekken",): [r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    ("chameleon",): [r"<sentinel:[0-9]+>", r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", r"([\t\n]|    |  )",
                     r"\p{N}", r"[\p{P}!-/:-@\[-`{-~]", GPT2],
}
IGNORE_MERGES = {"llama3", "llama-v3", "llama-bpe", "falcon3", "tekken"}
NORMAL, UNKNOWN, CONTROL, USER, BYTE = 1, 2, 3, 4, 6


def byte_alphabet():
    cps = {}
    nxt = 256
    for b in range(256):
        printable = ord("!") <= b <= ord("~") or 0xA1 <= b <= 0xAC or b >= 0xAE
        cps[b] = chr(b) if printable else chr(nxt)
        nxt += 0 if printable else 1
    return cps


class Vocab:
    def __init__(self, path):
        _, kvs, _, _ = gq.read_gguf(path)
        meta = {k: v for k, t, v in kvs}
        dec = lambda v: v.decode("utf-8") if isinstance(v, bytes) else v
        self.model = dec(meta["tokenizer.ggml.model"])
        self.tokens = [dec(t) for t in meta["tokenizer.ggml.tokens"][1]]
        self.types = meta.get("tokenizer.ggml.token_type", (0, [NORMAL] * len(self.tokens)))[1]
        self.scores = meta.get("tokenizer.ggml.scores", (0, [0.0] * len(self.tokens)))[1]
        self.ids = {}
        for i, t in enumerate(self.tokens):
            self.ids.setdefault(t, i)
        self.bos = meta.get("tokenizer.ggml.bos_token_id", 1 if self.model == "llama" else -1)
        self.space_prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", True))
        self.pre = dec(meta.get("tokenizer.ggml.pre", b"default"))
        if self.model == "gpt2":
            self.res = [regex.compile(r) for names, rs in PRE.items() if self.pre in names for r in rs]
            if not self.res:
                raise SystemExit(f"unknown pre-tokenizer {self.pre}")
            self.ranks = {}
            for r, m in enumerate(dec(x) for x in meta["tokenizer.ggml.merges"][1]):
                a, b = m.split(" ")
                self.ranks.setdefault((a, b), r)
            self.alpha = byte_alphabet()
        name = dec(meta.get("general.name", b"")).lower()
        self.rstrip = set()
        if "phi-3" in name or "phi3" in name:
            self.rstrip = {i for i, t in enumerate(self.types) if t in (CONTROL, USER, UNKNOWN)
                           and self.tokens[i] not in ("<unk>", "<s>", "<|endoftext|>")}

    def partition(self, text, special):
        """[(str, None) | (None, id)] with the special tokens split off"""
        frags = [(text, None)] if text else []
        cands = sorted((i for i, t in enumerate(self.types)
                        if self.tokens[i] and (t == USER or (special and t in (CONTROL, UNKNOWN)))),
                       key=lambda i: (-len(self.tokens[i].encode()), i))
        for i in cands:
            tok, out = self.tokens[i], []
            for s, tid in frags:
                if tid is not None:
                    out.append((s, tid))
                    continue
                while tok in s:
                    left, s = s.split(tok, 1)
                    if i in self.rstrip:
                        s = s.lstrip(" \t\n\v\f\r")
                    if left:
                        out.append((left, None))
                    out.append((None, i))
                if s:
                    out.append((s, None))
            frags = out
        return frags

    def split(self, text, level=0):
        if level == len(self.res):
            return [text] if text else []
        out, pos = [], 0
        for m in self.res[level].finditer(text):
            if m.start() == m.end():
                continue
            out += self.split(text[pos:m.start()], level + 1) + self.split(m.group(), level + 1)
            pos = m.end()
        return out + self.split(text[pos:], level + 1)

    def bpe(self, piece):
        word = "".join(self.alpha[b] for b in piece.encode("utf-8"))
        if self.pre in IGNORE_MERGES and word in self.ids:
            return [self.ids[word]]
        syms = list(word)
        while len(syms) > 1:
            best = min(((self.ranks.get((syms[i], syms[i + 1]), 1 << 62), i) for i in range(len(syms) - 1)))
            if best[0] == 1 << 62:
                break
            i = best[1]
            syms[i:i + 2] = [syms[i] + syms[i + 1]]
        return [self.ids[s] for s in syms]

    def spm(self, text):
        text = text.replace(" ", "\u2581")
        mergeable = lambda s: s in self.ids and self.types[self.ids[s]] in (0, NORMAL, USER)
        syms = list(text)
        while True:
            best = None
            for i in range(len(syms) - 1):
                s = syms[i] + syms[i + 1]
                if mergeable(s) and (best is None or self.scores[self.ids[s]] > best[0]):
                    best = (self.scores[self.ids[s]], i)
            if best is None:
                break
            i = best[1]
            syms[i:i + 2] = [syms[i] + syms[i + 1]]
        out = []
        for s in syms:
            if s in self.ids and self.types[self.ids[s]] in (0, NORMAL, USER):
                out.append(self.ids[s])
            else:
                out += [self.ids[f"<0x{b:02X}>"] for b in s.encode("utf-8")]
        return out

    def encode(self, text, special, bos):
        out = [self.bos] if bos and self.bos >= 0 else []
        prev_special = True
        for s, tid in self.partition(text, special):
            if tid is not None:
                out.append(tid)
                prev_special = True
                continue
            if self.model == "gpt2":
                for piece in self.split(s):
                    out += self.bpe(piece)
            else:
                out += self.spm((" " if self.space_prefix and prev_special else "") + s)
            prev_special = False
        return out


def main():
    args = sys.argv[1:]
    special, bos = "--special" in args, "--bos" in args
    args = [a for a in args if not a.startswith("--")]
    if len(args) != 2:
        sys.exit(__doc__)
    v = Vocab(args[0])
    for text in json.load(open(args[1], encoding="utf-8")):
        print(" ".join(map(str, v.encode(text, special, bos))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
