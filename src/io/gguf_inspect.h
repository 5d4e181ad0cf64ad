/* gguf_inspect.h: what a GGUF model file is and whether btrm runs it
 * (`btrm inspect MODEL.gguf`). io layer. */
#ifndef BTRM_GGUF_INSPECT_H
#define BTRM_GGUF_INSPECT_H

#include <stdio.h>

/* Whether path starts with the GGUF magic (0 when it cannot be read). */
int btrm_gguf_is_gguf(const char *path);

/* Prints to out the file's container (version, tensor and key counts,
 * size), its architecture and dimensions, tensor types with their counts and
 * bytes, the tokenizer, and what btrm would refuse (each refusal with the
 * reason btrm's loader gives). 0 when btrm runs the model; BTRM_EDATA (the
 * message recorded) when it would refuse it; BTRM_EIO when the file cannot
 * be read at all. */
int btrm_gguf_inspect(FILE *out, const char *path);

#endif
