/* yamlfile.c: one YAML document (see yamlfile.h). */
#include "yamlfile.h"

#include "error.h"
#include "fileutil.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int btrm_yaml_read_file(const char *path, const char *what, unsigned char **text,
                        size_t *len, struct stat *st_out)
{
    return btrm_read_file(path, BTRM_YAML_MAX_BYTES, what, text, len, st_out);
}

int btrm_yaml_fail(const btrm_yaml_src *src, yaml_mark_t mark, const char *fmt, ...)
{
    char msg[BTRM_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (src->file)
        return btrm_error_set(BTRM_ECONFIG, "%s:%zu:%zu: %s", src->file, mark.line + 1,
                              mark.column + 1, msg);
    return btrm_error_set(BTRM_ECONFIG, "--set '%s': %s", src->assignment, msg);
}

static int parser_fail(const btrm_yaml_src *src, const yaml_parser_t *parser)
{
    const char *name = src->file ? src->file : "--set";
    if (parser->error == YAML_MEMORY_ERROR)
        return btrm_error_set(BTRM_ENOMEM, "%s: out of memory parsing YAML", name);
    char context[160] = "", column[48] = "";
    if (parser->error == YAML_READER_ERROR) {
        /* libyaml gives a byte offset here, not a mark. */
        yaml_mark_t mark = { parser->problem_offset, 0, 0 };
        for (size_t i = 0; i < parser->problem_offset && i < src->len; i++) {
            mark.column++;
            if (src->text[i] == '\n') {
                mark.line++;
                mark.column = 0;
            }
        }
        if (!src->file)
            snprintf(column, sizeof column, " at column %zu", mark.column + 1);
        if (parser->problem_value >= 0)
            snprintf(context, sizeof context, " (byte 0x%02X)", (unsigned)parser->problem_value);
        return btrm_yaml_fail(src, mark, "not YAML text: %s%s%s", parser->problem, context,
                              column);
    }
    /* A --set value is one line: its marks are columns, or its end. */
    if (parser->context && src->file)
        snprintf(context, sizeof context, " (%s at line %zu, column %zu)", parser->context,
                 parser->context_mark.line + 1, parser->context_mark.column + 1);
    else if (parser->context)
        snprintf(context, sizeof context, " (%s at column %zu)", parser->context,
                 parser->context_mark.column + 1);
    if (!src->file && parser->problem_mark.line > 0)
        snprintf(column, sizeof column, " at the end of the value");
    else if (!src->file)
        snprintf(column, sizeof column, " at column %zu", parser->problem_mark.column + 1);
    return btrm_yaml_fail(src, parser->problem_mark, "invalid YAML: %s%s%s",
                          parser->problem ? parser->problem : "error", column, context);
}

int btrm_yaml_load(const btrm_yaml_src *src, yaml_document_t *doc, int *have_doc)
{
    yaml_parser_t parser;
    int rc = 0, depth = 0, docs = 0;
    long events = 0;
    *have_doc = 0;
    if (!yaml_parser_initialize(&parser))
        return btrm_error_set(BTRM_ENOMEM, "out of memory starting the YAML parser");
    yaml_parser_set_input_string(&parser, src->text, src->len);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_fail(src, &parser);
            goto fail;
        }
        yaml_event_type_t type = ev.type;
        yaml_mark_t mark = ev.start_mark;
        yaml_event_delete(&ev);
        if (type == YAML_STREAM_END_EVENT)
            break;
        if (type == YAML_DOCUMENT_START_EVENT && ++docs > 1)
            rc = btrm_yaml_fail(src, mark, "a second YAML document: %s is one mapping",
                                src->what);
        else if ((type == YAML_MAPPING_START_EVENT || type == YAML_SEQUENCE_START_EVENT) &&
                 ++depth > BTRM_YAML_MAX_DEPTH)
            rc = btrm_yaml_fail(src, mark, "nested deeper than %d levels", BTRM_YAML_MAX_DEPTH);
        else if (++events > BTRM_YAML_MAX_EVENTS)
            rc = btrm_yaml_fail(src, mark, "more than %d YAML nodes: not %s",
                                BTRM_YAML_MAX_EVENTS, src->what);
        if (rc)
            goto fail;
        if (type == YAML_MAPPING_END_EVENT || type == YAML_SEQUENCE_END_EVENT)
            depth--;
    }
    yaml_parser_delete(&parser);
    if (!yaml_parser_initialize(&parser))
        return btrm_error_set(BTRM_ENOMEM, "out of memory starting the YAML parser");
    yaml_parser_set_input_string(&parser, src->text, src->len);
    if (!yaml_parser_load(&parser, doc))
        rc = parser_fail(src, &parser);
    else
        *have_doc = 1;
fail:
    yaml_parser_delete(&parser);
    return rc;
}

int btrm_yaml_is_null(const yaml_node_t *n)
{
    if (!n)
        return 1;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)n->data.scalar.value;
    return n->data.scalar.length == 0 || !strcmp(s, "~") || !strcmp(s, "null") ||
           !strcmp(s, "Null") || !strcmp(s, "NULL");
}

const char *btrm_yaml_node_kind(const yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE    ? "a mapping"
           : n->type == YAML_SEQUENCE_NODE ? "a list"
                                           : "a single value";
}

const char *btrm_yaml_scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}
