/* tokenizer.h: text -> token ids for the LLM backbones (docs/tokenizers.md).
 *
 * Two algorithms behind one opaque handle:
 *  - SentencePiece-style BPE by scores ("spm", Llama 1/2, llama2.c's
 *    tokenizer.bin, stories260K): a dummy-prefix space, UTF-8 characters as
 *    the initial symbols, repeated merging of the adjacent pair whose
 *    concatenation is a vocabulary piece with the highest score, byte
 *    fallback "<0xNN>" for what remains unknown;
 *  - byte-level BPE by merge ranks ("bpe", GPT-2, Llama 3): a PCRE2
 *    pre-tokenisation regex, GPT-2's bytes-to-unicode alphabet, merges in
 *    rank order inside each pre-token.
 * A tokenizer is immutable once built: encode and decode take it const and
 * allocate their own work space, so threads may share one (only the error
 * message is process-global, error.h). No MPI; no file format other than
 * the two tokenizer files (the GGUF glue is btrm_gguf_tokenizer, gguf.c).
 *
 * Errors: 0 or a negative BTRM_E* code with btrm_error_set()'s message;
 * BTRM_EDATA for a bad vocabulary or file, BTRM_EUSAGE for a bad argument,
 * BTRM_EIO when a file cannot be read, BTRM_ENOMEM. */
#ifndef BTRM_TOKENIZER_H
#define BTRM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct btrm_tokenizer btrm_tokenizer;

/* Token types of SentencePiece / GGUF (tokenizer.ggml.token_type). */
enum {
    BTRM_TOKEN_UNDEFINED = 0,
    BTRM_TOKEN_NORMAL = 1,
    BTRM_TOKEN_UNKNOWN = 2,
    BTRM_TOKEN_CONTROL = 3,
    BTRM_TOKEN_USER_DEFINED = 4,
    BTRM_TOKEN_UNUSED = 5,
    BTRM_TOKEN_BYTE = 6,
};

/* SentencePiece-style BPE by scores (llama): pieces with U+2581 '▁' for
 * spaces (a plain ' ' is accepted as well, as in llama2.c's tokenizer.bin),
 * byte-fallback tokens "<0xNN>", token types (1 normal, 2 unknown, 3 control,
 * 6 byte; may be NULL: bytes are inferred from "<0xNN>" names, bos/eos are
 * control, "<unk>" is unknown). scores NULL means all 0 (as llama.cpp does
 * when a GGUF has none). bos_id/eos_id -1 when none. The arrays are copied. */
int btrm_tok_spm_from_arrays(btrm_tokenizer **tok, const char *const *pieces,
                             const float *scores, const int32_t *types, int n_vocab,
                             int bos_id, int eos_id);
/* llama.cpp's tokenizer.ggml.add_space_prefix: on (the default) prepends
 * the dummy "▁" to a non-empty text and strips it again when decoding. */
int btrm_tok_spm_set_space_prefix(btrm_tokenizer *tok, int on);
/* llama2.c tokenizer.bin: int32 max_token_length, then per token: float
 * score, int32 len, len bytes; bos 1, eos 2. n_vocab <= 0 reads every record
 * to the end of the file; n_vocab > 0 reads exactly that many (as llama2.c,
 * which takes it from the checkpoint header). */
int btrm_tok_spm_load_bin(btrm_tokenizer **tok, const char *path, int n_vocab);

/* Byte-level BPE (GPT-2): tokens in GPT-2's byte-to-unicode alphabet, merges
 * "a b" in rank order (index 0 = applied first); pre = a pre-tokenizer name
 * of llama.cpp's (tokenizer.ggml.pre: "default", "gpt-2", "llama-bpe",
 * "qwen2", "falcon", "mpt", "starcoder", "deepseek-llm", ...; "gpt2" is
 * btrm's alias of "gpt-2"; btrm_tok_bpe_pre_names lists them all): its
 * split regexes (docs/tokenizers.md), and for llama-bpe and tekken
 * ignore_merges (a pre-token that is itself a token is kept whole). An
 * unknown name is BTRM_EDATA naming it. A merge whose parts or result are
 * not tokens is ignored, as is a repeated one. bos/eos -1 when none. Token
 * types are NORMAL (bos/eos CONTROL) until btrm_tok_set_types. */
int btrm_tok_bpe_from_arrays(btrm_tokenizer **tok, const char *const *tokens, int n_vocab,
                             const char *const *merges, int n_merges, const char *pre,
                             int bos_id, int eos_id);
/* The known pre-tokenizer names, space-separated (aliases included). */
void btrm_tok_bpe_pre_names(char *out, size_t size);
/* llama.cpp's defaults for a pre-tokenizer: *add_bos (llama-bpe, tekken,
 * chameleon: 1) and *no_bos (chatglm-bpe: the vocabulary has no BOS). 0 or
 * BTRM_EDATA for an unknown name. Either pointer may be NULL. */
int btrm_tok_bpe_pre_defaults(const char *pre, int *add_bos, int *no_bos);
/* bpe: token types from the file (tokenizer.ggml.token_type, 0..6; the
 * BOS/EOS ids stay control), which decide the special tokens below. */
int btrm_tok_set_types(btrm_tokenizer *tok, const int32_t *types);
/* Strip the whitespace left (lstrip) and/or right (rstrip) of token id when
 * it is matched in a text (llama.cpp sets rstrip on Phi-3's special tokens). */
int btrm_tok_set_strip(btrm_tokenizer *tok, int id, int lstrip, int rstrip);

/* GPT-2's encoder.json (token -> id, jansson) and vocab.bpe (a "#version"
 * first line, then one merge per line). Pre-tokenizer "gpt2", no BOS, EOS =
 * "<|endoftext|>" when the vocabulary has it. */
int btrm_tok_bpe_load_files(btrm_tokenizer **tok, const char *encoder_json,
                            const char *vocab_bpe);

/* ids (malloc'ed, never NULL on success even when *n_ids is 0; free() it) =
 * the tokens of len bytes of text (NUL bytes are ordinary bytes), after the
 * BOS token when add_bos and the tokenizer has one. Before tokenisation the
 * text is split at the special tokens written in it, longest first, as
 * llama.cpp does: user-defined (added) tokens always, control and unknown
 * tokens ("<s>", "<|im_start|>", "<|endoftext|>") only with parse_special;
 * each is output as its id, and the text between them is tokenised piece by
 * piece (spm: with the space prefix after each special token). */
int btrm_tok_encode_special(const btrm_tokenizer *tok, const char *text, size_t len,
                            int add_bos, int parse_special, int32_t **ids, int *n_ids);
/* The same without parse_special: control tokens in the text are encoded as
 * their characters. */
int btrm_tok_encode(const btrm_tokenizer *tok, const char *text, int add_bos, int32_t **ids,
                    int *n_ids);
int btrm_tok_encode_bytes(const btrm_tokenizer *tok, const char *text, size_t len,
                          int add_bos, int32_t **ids, int *n_ids);

/* The pre-tokenisation alone: calls fn(piece, len, user) on each piece of
 * text[0..len) in order (bpe: the regex's matches, and bytes that no
 * alternative matches, i.e. invalid UTF-8; spm: the whole text). A non-zero
 * return of fn stops the split and is returned. */
int btrm_tok_split(const btrm_tokenizer *tok, const char *text, size_t len,
                   int (*fn)(const char *piece, size_t len, void *user), void *user);

/* The bytes that token id stands for, NUL-terminated in out[size]; returns
 * their count (>= 0; a "<0x00>" byte token gives 1 byte, a NUL) or a negative
 * code (BTRM_EUSAGE: id out of range or out too small; size
 * btrm_tok_max_piece_bytes() + 1 always suffices). llama2.c semantics: for
 * spm, '▁' is a space, a piece that follows the BOS token (prev_id == bos) or
 * starts the text (prev_id < 0) loses one leading space (the dummy prefix),
 * "<0xNN>" is the raw byte; control tokens (BOS, EOS) give no bytes. For bpe,
 * the token's alphabet characters map back to their bytes. A piece may end
 * inside a UTF-8 character; concatenating a sequence's pieces gives the text. */
int btrm_tok_decode_piece(const btrm_tokenizer *tok, int prev_id, int id, char *out,
                          size_t size);
/* *text (malloc'ed, NUL-terminated; *len bytes without the NUL) = the
 * concatenated pieces of ids[0..n) as btrm_tok_decode_piece gives them. */
int btrm_tok_decode(const btrm_tokenizer *tok, const int32_t *ids, int n, char **text,
                    size_t *len);

/* The vocabulary entry of id as given to the constructor ("▁Once", "Ġworld",
 * llama2.c's " Once"), NULL when id is out of range. */
const char *btrm_tok_piece(const btrm_tokenizer *tok, int id);
/* Token type of id (BTRM_TOKEN_*; bpe tokens are NORMAL, BOS/EOS CONTROL), or
 * -1 when id is out of range. */
int btrm_tok_type(const btrm_tokenizer *tok, int id);
int btrm_tok_n_vocab(const btrm_tokenizer *tok);
int btrm_tok_bos(const btrm_tokenizer *tok); /* -1 when none */
int btrm_tok_eos(const btrm_tokenizer *tok); /* -1 when none */
/* The longest btrm_tok_decode_piece result, in bytes. */
size_t btrm_tok_max_piece_bytes(const btrm_tokenizer *tok);
/* "spm" or "bpe-gpt2" / "bpe-llama-bpe" / ...: the algorithm and the
 * pre-tokenizer's name as given. */
const char *btrm_tok_kind(const btrm_tokenizer *tok);
/* No-op on NULL. */
void btrm_tok_free(btrm_tokenizer *tok);

#endif
