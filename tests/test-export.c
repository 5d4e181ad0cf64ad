/* tests/test-export.c: the safetensors writer (src/io/safetensors.c) byte by
 * byte on a small case, its refusals, and the q/k row order of
 * src/run/export.c against a hand-written case. tests/export.sh reads whole
 * exports back with an independent reader. */
#include "tap.h"

#include "error.h"
#include "export.h"
#include "log.h"
#include "safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = malloc(1 << 16);
    *len = buf ? fread(buf, 1, 1 << 16, f) : 0;
    fclose(f);
    return buf;
}

int main(void)
{
    plan(12);
    btrm_log_init(0, BTRM_LOG_QUIET);
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "%s/btrm-test-export.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir)) {
        skip_all("cannot make a temporary directory");
        return 0;
    }
    snprintf(path, sizeof path, "%s/t.safetensors", dir);

    /* a [3, 2] F32 matrix written with its rows in the order 2, 0, 1, and a
     * [2] F16 vector */
    float m[6] = { 1, 2, 3, 4, 5, 6 };
    uint16_t v[2] = { 0x3c00, 0xc000 }; /* 1.0, -2.0 */
    int64_t perm[3] = { 2, 0, 1 };
    btrm_st_tensor t[2] = {
        { .name = "a.weight", .dtype = "F32", .n_dims = 2, .shape = { 3, 2 }, .data = m,
          .row_perm = perm },
        { .name = "b", .dtype = "F16", .n_dims = 1, .shape = { 2 }, .data = v },
    };
    json_t *md = json_pack("{s:s, s:s}", "format", "pt", "note", "x");
    is_int(btrm_safetensors_write(path, t, 2, md), 0, "two tensors and metadata written");
    size_t len = 0;
    unsigned char *buf = slurp(path, &len);
    const char *want_header =
        "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"x\"},"
        "\"a.weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[24,28]}}";
    size_t hraw = strlen(want_header), hlen = (hraw + 7) / 8 * 8;
    uint64_t got_hlen = 0;
    for (int b = 0; buf && b < 8; b++)
        got_hlen |= (uint64_t)buf[b] << (8 * b);
    is_int((long long)got_hlen, (long long)hlen, "header length: the JSON padded to 8 bytes");
    ok(buf && len == 8 + hlen + 28, "file size = 8 + header + 28 data bytes (%zu)", len);
    ok(buf && !memcmp(buf + 8, want_header, hraw) &&
           strspn((const char *)buf + 8 + hraw, " ") >= hlen - hraw,
       "the header is the JSON, then spaces");
    float rows[6] = { 5, 6, 1, 2, 3, 4 };
    ok(buf && len >= 8 + hlen + 28 && !memcmp(buf + 8 + hlen, rows, 24) &&
           !memcmp(buf + 8 + hlen + 24, v, 4),
       "the matrix rows in the given order, then the vector, no gap");
    free(buf);

    json_t *bad_md = json_pack("{s:s, s:i}", "format", "pt", "n", 3);
    is_int(btrm_safetensors_write(path, t, 2, bad_md), BTRM_EUSAGE,
           "a metadata value that is not a string: refused");
    like(btrm_error_msg(), "'n' is not a string", "... naming the key");
    btrm_st_tensor dup[2] = { t[1], t[1] };
    is_int(btrm_safetensors_write(path, dup, 2, NULL), BTRM_EUSAGE, "a name given twice: refused");
    btrm_st_tensor odd = t[1];
    odd.dtype = "Q8_0";
    is_int(btrm_safetensors_write(path, &odd, 1, NULL), BTRM_EUSAGE, "an unknown dtype: refused");
    int64_t wild[3] = { 0, 3, 1 };
    btrm_st_tensor out_of_range = t[0];
    out_of_range.row_perm = wild;
    is_int(btrm_safetensors_write(path, &out_of_range, 1, NULL), BTRM_EUSAGE,
           "a row order out of range: refused");
    json_decref(md);
    json_decref(bad_md);

    /* q/k rows: 2 heads of 4: HF row h*4 + t*2 + j <- GGUF row h*4 + 2j + t */
    int64_t p[8];
    btrm_export_unpermute_rows(2, 4, p);
    int64_t want[8] = { 0, 2, 1, 3, 4, 6, 5, 7 };
    ok(!memcmp(p, want, sizeof p), "the q/k row order of 2 heads of 4 is 0 2 1 3 4 6 5 7");
    int64_t p8[8];
    btrm_export_unpermute_rows(1, 8, p8);
    int64_t want8[8] = { 0, 2, 4, 6, 1, 3, 5, 7 };
    ok(!memcmp(p8, want8, sizeof p8), "one head of 8: the even rows, then the odd ones");

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("could not remove %s", dir);
    return done_testing();
}
