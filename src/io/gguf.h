/* gguf.h: a reader of GGUF model files (versions 2 and 3), the format of
 * llama.cpp and the Hugging Face "gguf" converters. io layer: it owns the
 * file; no MPI, no HDF5.
 *
 * The file is mapped read-only (mmap, MAP_PRIVATE): tensor data are never
 * copied, so ranks on one node share the page cache. Metadata are parsed at
 * open into memory owned by the handle (numbers aligned, strings
 * NUL-terminated, arrays of strings as pointer arrays), so lookups need no
 * care about the file's unaligned layout.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 * n_kv times {string key, u32 type, value}, n_tensors times {string name,
 * u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset}, padding to
 * `general.alignment` (default 32), then the tensor data; each offset is
 * relative to that data section. ne[0] is the innermost (fastest) dimension:
 * a PyTorch matrix [out, in] has ne = {in, out}. A string is u64 length +
 * bytes (no NUL). Every length, count, dimension and offset is checked
 * against the file size before use: a truncated or corrupt file is refused
 * with a message naming the file and the field, never read out of range. */
#ifndef BTRM_GGUF_H
#define BTRM_GGUF_H

#include "quant.h"

#include <stddef.h>
#include <stdint.h>

/* Metadata value types (GGUF's numbering). */
enum btrm_gguf_type {
    BTRM_GGUF_UINT8 = 0,
    BTRM_GGUF_INT8 = 1,
    BTRM_GGUF_UINT16 = 2,
    BTRM_GGUF_INT16 = 3,
    BTRM_GGUF_UINT32 = 4,
    BTRM_GGUF_INT32 = 5,
    BTRM_GGUF_FLOAT32 = 6,
    BTRM_GGUF_BOOL = 7,
    BTRM_GGUF_STRING = 8,
    BTRM_GGUF_ARRAY = 9,
    BTRM_GGUF_UINT64 = 10,
    BTRM_GGUF_INT64 = 11,
    BTRM_GGUF_FLOAT64 = 12,
};

/* Tensor types are ggml's numbers (quant.h: BTRM_Q_*); a type btrm does not
 * read is parsed (and named in messages) but refused by
 * btrm_gguf_tensor_check. */
#define BTRM_GGUF_MAX_DIMS 4
#define BTRM_GGUF_DEFAULT_ALIGNMENT 32

typedef struct btrm_gguf btrm_gguf;

/* An array value: count elements of type `type` (never BTRM_GGUF_ARRAY:
 * nested arrays are refused at open). data points to count naturally
 * aligned values (bool: uint8 0/1), or for strings to count `const char *`
 * NUL-terminated strings. Owned by the handle. */
typedef struct btrm_gguf_array {
    int type;
    uint64_t count;
    const void *data;
} btrm_gguf_array;

typedef struct btrm_gguf_tensor {
    const char *name;
    int type;                           /* ggml type */
    int n_dims;
    uint64_t ne[BTRM_GGUF_MAX_DIMS];    /* ne[0] innermost; unused dims are 1 */
    uint64_t n_elements;
    uint64_t offset;                    /* from the start of the data section */
    uint64_t bytes;                     /* 0 for a type btrm does not read */
    const void *data;                   /* in the mapping; NULL if unsupported */
} btrm_gguf_tensor;

/* Opens and maps path, parses and validates the header, metadata and tensor
 * infos. 0, or BTRM_EIO (cannot open/map) / BTRM_EDATA (not GGUF, version
 * other than 2 or 3, truncated, out-of-range offset, duplicate names, bad
 * alignment) / BTRM_ENOMEM with the message naming path and the field. */
int btrm_gguf_open(btrm_gguf **g, const char *path);
void btrm_gguf_close(btrm_gguf *g); /* NULL: no-op */

const char *btrm_gguf_path(const btrm_gguf *g);
int btrm_gguf_version(const btrm_gguf *g);
uint32_t btrm_gguf_alignment(const btrm_gguf *g);
uint64_t btrm_gguf_data_offset(const btrm_gguf *g); /* of the data section, in the file */
/* The whole mapped file (for content hashing). */
const void *btrm_gguf_bytes(const btrm_gguf *g, size_t *size);

/* Metadata. The getters return 0 and the value, BTRM_EDATA when the key is
 * absent (message "FILE: no metadata key KEY") or has another type
 * ("... has type T, want U"). Integer getters accept any integer type whose
 * value fits (writers differ: uint32 vs int32 vs uint64). */
int btrm_gguf_n_kv(const btrm_gguf *g);
const char *btrm_gguf_key(const btrm_gguf *g, int i);
int btrm_gguf_find_key(const btrm_gguf *g, const char *key); /* index or -1 */
int btrm_gguf_key_type(const btrm_gguf *g, const char *key); /* type or -1 */
int btrm_gguf_get_u32(const btrm_gguf *g, const char *key, uint32_t *value);
int btrm_gguf_get_i64(const btrm_gguf *g, const char *key, int64_t *value);
int btrm_gguf_get_f32(const btrm_gguf *g, const char *key, float *value); /* f32 or f64 */
int btrm_gguf_get_bool(const btrm_gguf *g, const char *key, int *value);
int btrm_gguf_get_string(const btrm_gguf *g, const char *key, const char **value);
int btrm_gguf_get_array(const btrm_gguf *g, const char *key, btrm_gguf_array *value);

/* Tensors. */
int btrm_gguf_n_tensors(const btrm_gguf *g);
const btrm_gguf_tensor *btrm_gguf_tensor_at(const btrm_gguf *g, int i);
const btrm_gguf_tensor *btrm_gguf_find_tensor(const btrm_gguf *g, const char *name);
/* The tensor `name`, checked: present, of a supported type, with n_dims
 * dimensions equal to want_ne (ne[0] first; a 0 entry matches any size).
 * NULL and BTRM_EDATA naming the file, the tensor and its type otherwise. */
const btrm_gguf_tensor *btrm_gguf_tensor_check(const btrm_gguf *g, const char *name,
                                               int n_dims, const uint64_t *want_ne);

/* The tokenizer stored in the metadata (the glue between GGUF and
 * tokenizer.h), as llama.cpp's vocabulary loader reads it:
 * tokenizer.ggml.model "llama" -> SentencePiece-style BPE from
 * tokenizer.ggml.tokens / .scores / .token_type (scores and types optional)
 * with tokenizer.ggml.add_space_prefix (default on), BOS/EOS 1/2 unless the
 * file names others; "gpt2" -> byte-level BPE from .tokens / .merges /
 * .token_type with the pre-tokenizer tokenizer.ggml.pre (absent: "default";
 * an unknown name is refused by name), BOS/EOS from .bos_token_id /
 * .eos_token_id (-1 when absent). Any other model ("bert", "t5", "rwkv",
 * "no_vocab") is refused by name. *add_bos (may be NULL) =
 * tokenizer.ggml.add_bos_token, else llama.cpp's default: 1 for llama, 1
 * for the llama-bpe/tekken/chameleon pre-tokenizers, 0 for other gpt2 ones.
 * Phi-3 models get llama.cpp's rstrip on their special tokens. */
struct btrm_tokenizer;
int btrm_gguf_tokenizer(const btrm_gguf *g, struct btrm_tokenizer **tok, int *add_bos);

const char *btrm_gguf_type_name(int type);

#endif
