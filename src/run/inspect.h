/* inspect.h: `btrm inspect`: what a btrm file is and whether it is intact.
 * Orchestrator: reads the file's format tag (format.h) and hands the file to
 * its io module: a checkpoint has every checksum verified collectively, a
 * model file is read and described, a pair store is opened and validated. */
#ifndef BTRM_INSPECT_H
#define BTRM_INSPECT_H

#include "comm.h"

/* Collective over c; rank 0 prints the description to stdout. show_config
 * also prints a checkpoint's resolved config. Every rank returns the same
 * code: 0 when the file is intact. */
int btrm_inspect_run(const char *path, int show_config, const btrm_comm *c);

#endif
