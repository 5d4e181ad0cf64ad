/* format.c: format tags and their checks (see format.h). */
#include "format.h"

#include "error.h"
#include "h5util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The versions this btrm writes. A version changes when a reader of the old
 * one would misread the new one (docs/format.md lists what each changed). */
const btrm_format btrm_format_pairs = { "pairs", 1 };
const btrm_format btrm_format_model = { "model", 3 };
const btrm_format btrm_format_checkpoint = { "checkpoint", 3 };
const btrm_format btrm_format_eval = { "eval", 1 };
const btrm_format btrm_format_summary = { "summary", 1 };
const btrm_format btrm_format_tokens = { "tokens", 1 };

void btrm_format_tag(const btrm_format *f, char *out, size_t size)
{
    snprintf(out, size, "%s-v%d", f->name, f->version);
}

int btrm_format_parse(const char *tag, char *name, size_t size, int *version)
{
    const char *v = strrchr(tag, '-');
    if (!v || v == tag || v[1] != 'v' || v[2] < '1' || v[2] > '9' || (size_t)(v - tag) >= size)
        return -1;
    char *end = NULL;
    long n = strtol(v + 2, &end, 10);
    if (*end != '\0' || n < 1 || n > 1000000)
        return -1;
    memcpy(name, tag, (size_t)(v - tag));
    name[v - tag] = '\0';
    *version = (int)n;
    return 0;
}

int btrm_format_check(const btrm_format *f, const char *path, const char *tag,
                      const char *writer, int *version)
{
    char name[BTRM_FORMAT_TAG_MAX], want[BTRM_FORMAT_TAG_MAX];
    int found = 0;
    btrm_format_tag(f, want, sizeof want);
    if (btrm_format_parse(tag, name, sizeof name, &found) != 0 || strcmp(name, f->name) != 0)
        return btrm_error_set(BTRM_EDATA, "%s: btrm_format is \"%s\", expected \"%s\"", path,
                              tag, want);
    if (found > f->version) {
        char reads[2 * BTRM_FORMAT_TAG_MAX];
        if (f->version == 1)
            snprintf(reads, sizeof reads, "%s", want);
        else
            snprintf(reads, sizeof reads, "%s-v1 to %s", f->name, want);
        return btrm_error_set(BTRM_ECONFIG, "%s: format %s, written by btrm %s; this btrm (%s) "
                              "reads %s: use the newer btrm", path, tag,
                              writer && writer[0] ? writer : "(version not recorded)",
                              PACKAGE_VERSION, reads);
    }
    *version = found;
    return 0;
}

int btrm_format_json_stamp(json_t *obj, const btrm_format *f)
{
    char tag[BTRM_FORMAT_TAG_MAX];
    btrm_format_tag(f, tag, sizeof tag);
    if (!obj || json_object_set_new(obj, "btrm_format", json_string(tag)) != 0 ||
        json_object_set_new(obj, "btrm_version", json_string(PACKAGE_VERSION)) != 0)
        return btrm_error_set(BTRM_ENOMEM, "out of memory building a %s document", f->name);
    return 0;
}

int btrm_format_json_check(const btrm_format *f, const char *what, const json_t *obj,
                           int *version)
{
    const json_t *tag = json_object_get(obj, "btrm_format");
    if (!tag) { /* written before documents carried their format */
        *version = 1;
        return 0;
    }
    if (!json_is_string(tag))
        return btrm_error_set(BTRM_EDATA, "%s: btrm_format is not a string", what);
    const char *writer = json_string_value(json_object_get(obj, "btrm_version"));
    return btrm_format_check(f, what, json_string_value(tag), writer ? writer : "", version);
}

int btrm_format_of_file(const char *path, char *tag, size_t tag_size, char *writer,
                        size_t writer_size)
{
    tag[0] = writer[0] = '\0';
    hid_t file = btrm_h5_open_read(path);
    if (file < 0)
        return btrm_h5_open_error(path, "cannot open as HDF5 (missing, truncated or not "
                                  "HDF5)");
    int rc = btrm_h5_read_format(file, path, tag, tag_size, writer, writer_size);
    H5Fclose(file);
    return rc;
}
