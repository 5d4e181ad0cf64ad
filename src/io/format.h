/* format.h: the name and version of every file btrm writes (docs/format.md,
 * "Versions"). io layer.
 *
 * A file says what it is with a tag "<name>-v<version>" ("pairs-v1",
 * "checkpoint-v2") and which btrm wrote it: HDF5 files as the root
 * attributes btrm_format and btrm_version, JSON documents as the keys of the
 * same names. A reader accepts its format's versions up to the one this btrm
 * writes, and refuses a newer one with a message that names the btrm that
 * wrote it and what this btrm reads. JSON files written before the tags
 * existed have no btrm_format key: they are version 1. */
#ifndef BTRM_FORMAT_H
#define BTRM_FORMAT_H

#include <jansson.h>
#include <stddef.h>

typedef struct btrm_format {
    const char *name;      /* "pairs", "model", "checkpoint", "eval", "summary" */
    int version;           /* the version this btrm writes (and the newest it reads) */
} btrm_format;

extern const btrm_format btrm_format_pairs;      /* pair store (HDF5) */
extern const btrm_format btrm_format_model;      /* model file (HDF5) */
extern const btrm_format btrm_format_checkpoint; /* checkpoint (HDF5) */
extern const btrm_format btrm_format_eval;       /* eval result (JSON, eval.jsonl lines) */
extern const btrm_format btrm_format_summary;    /* a run's summary.json */

#define BTRM_FORMAT_TAG_MAX 64

/* "<name>-v<version>" of f at its current version. */
void btrm_format_tag(const btrm_format *f, char *out, size_t size);

/* Splits a tag "<name>-v<N>" (N >= 1) into name and N; -1 when it is not one. */
int btrm_format_parse(const char *tag, char *name, size_t size, int *version);

/* Checks the tag found in path against f: 0 with *version set (1..f->version)
 * when it is f's; BTRM_EDATA when it is another format or not a tag;
 * BTRM_ECONFIG for a newer version (the file is fine, this btrm is too old:
 * "written by btrm <writer>; this btrm (<V>) reads <name>-v1 to <name>-vN"),
 * so that --resume auto stops there instead of skipping it as corrupt.
 * writer may be "" (unknown). */
int btrm_format_check(const btrm_format *f, const char *path, const char *tag,
                      const char *writer, int *version);

/* Adds "btrm_format": "<name>-v<version>" and "btrm_version" to obj. */
int btrm_format_json_stamp(json_t *obj, const btrm_format *f);
/* Checks a JSON document's btrm_format (absent = version 1) as
 * btrm_format_check does; what names the document in messages. */
int btrm_format_json_check(const btrm_format *f, const char *what, const json_t *obj,
                           int *version);

/* The format tag and writer of an HDF5 file btrm wrote (the root attributes
 * btrm_format and btrm_version; writer "" when absent). BTRM_EDATA when the
 * file cannot be opened as HDF5 or has no btrm_format. Serial. */
int btrm_format_of_file(const char *path, char *tag, size_t tag_size, char *writer,
                        size_t writer_size);

#endif
