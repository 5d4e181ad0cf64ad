/* main.c: the `btrm` command. Parses the subcommand (git style), starts MPI
 * for the commands that run on ranks, and calls btrm_<cmd>_main. */
#include "cli.h"
#include "error.h"
#include "gemm.h"
#include "memory.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*main)(int argc, char **argv, MPI_Comm world);
    int uses_mpi;
    const char *summary;
} command;

#define COMMAND_ROW(name, uses_mpi, summary) { #name, btrm_##name##_main, uses_mpi, summary },
static const command commands[] = { BTRM_CLI_COMMANDS(COMMAND_ROW) };
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: btrm <command> [options]\n"
            "       mpirun -np P btrm train CONFIG.yaml [--set key=value ...]\n\n"
            "btrm trains reward models on preference pairs with the Bradley-Terry loss\n"
            "or NormBT, data-parallel over MPI ranks.\n\nCommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\nOptions:\n"
            "  -h, --help     this help; 'btrm <command> --help' for a command's own\n"
            "  -V, --version  print the version\n\n"
            "Exit codes: 0 ok, 1 runtime failure, 2 usage or config error,\n"
            "75 checkpointed, please requeue.\n");
}

/* True when the command's arguments ask for its help: every command prints
 * it before it touches the communicator, so it runs without MPI (help2man
 * and shells without an MPI runtime can read it). */
static int wants_help(int argc, char **argv)
{
    for (int i = 2; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    btrm_keep_heap();
    if (argc < 2) {
        usage(stderr);
        return BTRM_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
        printf("btrm %s\n", PACKAGE_VERSION);
        /* what the GEMM engine was built with (docs/performance.md) */
        printf("GEMM: %s; bf16 %s%s%s\n", btrm_gemm_library(),
               btrm_gemm_supports(BTRM_PREC_BF16) == 0 ? "yes" : "no (built without oneDNN)",
               btrm_gemm_isa()[0] ? "; oneDNN ISA " : "", btrm_gemm_isa());
        if (btrm_gemm_supports(BTRM_PREC_BF16) == 0)
            printf("bf16 GEMMs: %s\n", btrm_gemm_bf16_route());
        return 0;
    }
    const command *cmd = NULL;
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name))
            cmd = &commands[i];
    if (!cmd) {
        fprintf(stderr, "btrm: unknown command '%s'\n\n", argv[1]);
        usage(stderr);
        return BTRM_EXIT_USAGE;
    }
    if (!cmd->uses_mpi || wants_help(argc, argv))
        return cmd->main(argc - 1, argv + 1, MPI_COMM_NULL);

    int provided = 0;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "btrm: MPI_Init failed\n");
        return BTRM_EXIT_FAILURE;
    }
    int code = cmd->main(argc - 1, argv + 1, MPI_COMM_WORLD);
    MPI_Finalize();
    return code;
}
