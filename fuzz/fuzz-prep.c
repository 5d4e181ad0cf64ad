/* fuzz-prep.c: preference records through btrm_prep (JSONL or a JSON array,
 * plain or gzip; docs/data-prep.md), with an optional chat template and
 * category map (YAML).
 *
 * Input: one mode byte, then the records, optionally followed by FUZZ_SEP and
 * a template file, and by FUZZ_SEP and a category map. The mode byte picks
 * the record shape (bits 0-1: auto, hh, prompt, messages), --strict (bit 2)
 * and how the records reach the reader (bits 3-4): as they are; gzip'ed here
 * (so that the fuzzer explores the records behind the decompressor rather
 * than the checksum); gzip'ed and cut short by the byte's top 3 bits * 7
 * bytes; or gzip'ed as two members, which concatenated gzip files are.
 * Properties (prep.h): without --strict every record is either kept or
 * counted under one reason; every pair indexes two different texts. */
#include "fuzz.h"

#include "prep.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

/* Appends the gzip member of src[0..n) to *out (realloc'ed). The smallest
 * window and memory level: zlib's defaults allocate 256 KiB per run, which
 * under ASan is an mmap and a munmap each time (the reader inflates any
 * window size the same way). */
static void gzip_member(const uint8_t *src, size_t n, uint8_t **out, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 9 + 16, 1, Z_DEFAULT_STRATEGY) != Z_OK)
        fuzz_fail("deflateInit2");
    size_t bound = deflateBound(&z, (uLong)n);
    uint8_t *buf = realloc(*out, *out_len + bound);
    if (!buf)
        fuzz_fail("out of memory");
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = buf + *out_len;
    z.avail_out = (uInt)bound;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        fuzz_fail("deflate");
    *out_len += bound - z.avail_out;
    *out = buf;
    deflateEnd(&z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fuzz_file records, tpl, cmap;
    if (size < 1)
        return 0;
    const unsigned mode = data[0];
    const uint8_t *part[3];
    size_t len[3];
    int n_parts = fuzz_split(data + 1, size - 1, part, len, 3);

    uint8_t *gz = NULL;
    size_t gz_len = 0;
    const char *path;
    switch ((mode >> 3) & 3u) {
    case 0:
        path = fuzz_file_set(&records, "records", part[0], len[0]);
        break;
    case 1:
    case 2:
        gzip_member(part[0], len[0], &gz, &gz_len);
        if (((mode >> 3) & 3u) == 2) {
            size_t cut = (size_t)(mode >> 5) * 7 + 1;
            gz_len = gz_len > cut ? gz_len - cut : 0;
        }
        path = fuzz_file_set(&records, "records.gz", gz, gz_len);
        break;
    default:
        gzip_member(part[0], len[0] / 2, &gz, &gz_len);
        gzip_member(part[0] + len[0] / 2, len[0] - len[0] / 2, &gz, &gz_len);
        path = fuzz_file_set(&records, "records.gz", gz, gz_len);
        break;
    }
    free(gz);

    btrm_prep_opts opts = { .format = (int)(mode & 3u), .strict = (mode & 4u) != 0,
                            .split = 0.5 };
    if (n_parts >= 2 && len[1] > 0)
        opts.template_path = fuzz_file_set(&tpl, "template.yaml", part[1], len[1]);
    if (n_parts >= 3 && len[2] > 0)
        opts.category_map_path = fuzz_file_set(&cmap, "categories.yaml", part[2], len[2]);

    btrm_prep *prep = NULL;
    if (btrm_prep_init(&prep, &opts) != 0)
        return 0;
    int rc = btrm_prep_read_file(prep, path);
    btrm_prep_stats st;
    btrm_prep_get_stats(prep, &st);
    if (!rc && !opts.strict) {
        int64_t bad = 0;
        for (int r = 0; r < BTRM_PREP_N_BAD; r++)
            bad += st.bad[r];
        if (st.records != st.pairs + bad)
            fuzz_fail("%lld records but %lld pairs kept and %lld skipped",
                      (long long)st.records, (long long)st.pairs, (long long)bad);
    }
    for (int r = 0; r < BTRM_PREP_N_BAD; r++) {
        int n = 0;
        const char *const *ex = btrm_prep_examples(prep, r, &n);
        for (int i = 0; i < n; i++)
            if (!ex[i] || !btrm_prep_bad_name(r))
                fuzz_fail("bad-record example %d of reason %d is missing", i, r);
    }
    const int64_t n_texts = btrm_prep_n_texts(prep);
    for (int64_t i = 0; i < btrm_prep_n_pairs(prep); i++) {
        int64_t chosen, rejected;
        const char *id, *category, *subset;
        uint64_t key;
        btrm_prep_pair(prep, i, &chosen, &rejected, &id, &category, &subset, &key);
        if (chosen < 0 || chosen >= n_texts || rejected < 0 || rejected >= n_texts ||
            chosen == rejected)
            fuzz_fail("pair %lld indexes texts %lld and %lld of %lld", (long long)i,
                      (long long)chosen, (long long)rejected, (long long)n_texts);
        if (strcmp(btrm_prep_text(prep, chosen), btrm_prep_text(prep, rejected)) == 0)
            fuzz_fail("pair %lld: chosen and rejected are the same text", (long long)i);
        (void)btrm_prep_split_train(key, opts.split);
    }
    btrm_prep_free(prep);
    return 0;
}
