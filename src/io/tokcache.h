/* tokcache.h: the token ids of a pair store's /texts, as an LLM backbone
 * reads them (format "tokens-v1", docs/format.md), cached beside the store so
 * that a second `btrm train` on it does not tokenize again. io layer, serial
 * (the orchestration over ranks is run/tokens.c).
 *
 *   attribute /btrm_format = "tokens-v1", /btrm_version
 *   attribute /key            the cache key (32 hex digits, XXH3-128 of the
 *                             tokenizer's hash, the texts' hash, bos and
 *                             max_tokens: what decides the ids)
 *   attributes /tokenizer_hash, /texts_hash (32 hex digits each), /bos (0|1),
 *              /max_tokens, /store (the pair store as given), /crc32 (zlib's
 *              crc32 of the little-endian offsets, then ids)
 *   /offsets  int64 [M + 1]   text i is ids[offsets[i], offsets[i+1])
 *   /ids      int32 [offsets[M]]
 *
 * The file name carries the key ("<store>.tokens-<first 16 hex digits>.h5"),
 * so jobs with another tokenizer or truncation keep their own cache; it is
 * written to a temporary name and renamed (atomic), so concurrent jobs that
 * tokenize the same store at once each write a complete file and the last
 * rename wins. */
#ifndef BTRM_TOKCACHE_H
#define BTRM_TOKCACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct btrm_token_ids {
    int64_t n_rows;
    int64_t *offsets;   /* [n_rows + 1], offsets[0] = 0 */
    int32_t *ids;       /* [offsets[n_rows]] */
} btrm_token_ids;

void btrm_token_ids_free(btrm_token_ids *t); /* zeroed or NULL: no-op */

/* What a cache file records beside the ids. */
typedef struct btrm_tokcache_info {
    char key[33];
    char tokenizer_hash[33];
    char texts_hash[33];
    int bos;
    int max_tokens;
} btrm_tokcache_info;

/* info->key from the other fields. */
void btrm_tokcache_key(btrm_tokcache_info *info);

/* out = "<store without .h5>.tokens-<key[0..16)>.h5" (in the store's
 * directory). BTRM_EUSAGE when it does not fit. */
int btrm_tokcache_path(const char *store, const char *key, char *out, size_t size);

/* Reads path when it is a tokens-v1 file with info->key, n_rows rows and a
 * matching checksum: 0; BTRM_EDATA otherwise (absent, another key, corrupt:
 * the caller tokenizes again), with the reason recorded. */
int btrm_tokcache_read(const char *path, const btrm_tokcache_info *info, int64_t n_rows,
                       btrm_token_ids *t);

/* Writes path atomically. store: recorded as given. */
int btrm_tokcache_write(const char *path, const char *store, const btrm_tokcache_info *info,
                        const btrm_token_ids *t);

#endif
