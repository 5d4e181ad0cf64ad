/* cli_inspect.c: `btrm inspect FILE.h5`: what a btrm file is and whether it
 * is intact. Checkpoints have their checksums verified collectively (exit 1
 * on a bad one); model files and pair stores are described and validated.
 * `btrm inspect MODEL.gguf`: an LLM file (gguf_inspect.h). */
#include "cli.h"
#include "comm.h"
#include "error.h"
#include "inspect.h"
#include "log.h"

#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: [mpirun -np P] btrm inspect FILE.h5 [--config]\n"
            "       btrm inspect MODEL.gguf\n\n"
            "Prints what a btrm file is (pair store, model file or checkpoint) and checks it:\n"
            "a pair store is validated (indices, NaN/Inf in used rows), a checkpoint has\n"
            "the crc32 of every dataset verified (on any number of ranks). Exit 0 when the\n"
            "file is intact, 1 when it is not.\n"
            "A GGUF model file: its architecture, dimensions, tensor types and their byte\n"
            "counts, tokenizer, and whether btrm runs it (exit 0) or what it refuses (exit 1).\n\n"
            "Options:\n"
            "  --config     also print a checkpoint's resolved config\n"
            "  -h, --help   this help\n");
}

int btrm_inspect_main(int argc, char **argv, MPI_Comm world)
{
    const char *path = NULL;
    int show_config = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--config")) {
            show_config = 1;
        } else if (argv[i][0] == '-') {
            return btrm_cli_usage_error("inspect", "unknown option '%s'", argv[i]);
        } else if (!path) {
            path = argv[i];
        } else {
            return btrm_cli_usage_error("inspect", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!path)
        return btrm_cli_usage_error("inspect", "missing FILE.h5");

    btrm_comm comm;
    btrm_cli_comm_init(&comm, world, BTRM_LOG_INFO);
    return btrm_cli_exit(&comm, btrm_inspect_run(path, show_config, &comm));
}
