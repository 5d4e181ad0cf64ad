/* yamlfile.h: one YAML document from a file or a --set value, for the
 * config and sweep loaders: libyaml's events are scanned first (bounded
 * nesting and size, one document, syntax errors with their line and column),
 * then the document is loaded. io layer. */
#ifndef BTRM_YAMLFILE_H
#define BTRM_YAMLFILE_H

#include <stddef.h>
#include <sys/stat.h>
#include <yaml.h>

#define BTRM_YAML_MAX_BYTES (16L << 20) /* config and sweep files are a few KB */
#define BTRM_YAML_MAX_DEPTH 16          /* nesting of mappings and lists */
#define BTRM_YAML_MAX_EVENTS 100000     /* YAML events in one document */

/* Where a text comes from, for messages: "FILE:LINE:COL: message", or
 * "--set 'A': message" for a --set value (file NULL). */
typedef struct btrm_yaml_src {
    const char *file;          /* the file, or NULL for a --set value */
    const char *assignment;    /* the whole --set text (file NULL) */
    const char *what;          /* "a config", "a sweep": what one document is */
    const unsigned char *text;
    size_t len;
} btrm_yaml_src;

/* Reads a YAML file whole (what names it in errors: "config file"). */
int btrm_yaml_read_file(const char *path, const char *what, unsigned char **text,
                        size_t *len, struct stat *st_out);

/* Parses src as one document into *doc (*have_doc = 1: the caller deletes
 * it). BTRM_ECONFIG with the position of the problem otherwise. */
int btrm_yaml_load(const btrm_yaml_src *src, yaml_document_t *doc, int *have_doc);

/* Records BTRM_ECONFIG "FILE:LINE:COL: message" (or "--set 'A': message")
 * and returns it. */
int btrm_yaml_fail(const btrm_yaml_src *src, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Plain ~, null, Null, NULL or nothing (a missing node counts). */
int btrm_yaml_is_null(const yaml_node_t *n);
/* "a mapping", "a list" or "a single value". */
const char *btrm_yaml_node_kind(const yaml_node_t *n);
/* A scalar's text, or NULL for another node. */
const char *btrm_yaml_scalar(const yaml_node_t *n);

#endif
