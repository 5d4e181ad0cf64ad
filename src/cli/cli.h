/* cli.h: the subcommands' entry points and the option handling they share.
 * Each btrm_<cmd>_main parses its arguments and calls one orchestrator; it
 * returns the process exit code (error.h). Commands that run under MPI get
 * the world communicator from main; the others get MPI_COMM_NULL. */
#ifndef BTRM_CLI_H
#define BTRM_CLI_H

#include "comm.h"
#include "config.h"

#include <mpi.h>
#include <stdio.h>

int btrm_config_main(int argc, char **argv, MPI_Comm world);
int btrm_synth_main(int argc, char **argv, MPI_Comm world);
int btrm_train_main(int argc, char **argv, MPI_Comm world);
int btrm_eval_main(int argc, char **argv, MPI_Comm world);
int btrm_inspect_main(int argc, char **argv, MPI_Comm world);
int btrm_analyze_main(int argc, char **argv, MPI_Comm world);
int btrm_tokenize_main(int argc, char **argv, MPI_Comm world);
int btrm_score_main(int argc, char **argv, MPI_Comm world);
int btrm_generate_main(int argc, char **argv, MPI_Comm world);
int btrm_sweep_main(int argc, char **argv, MPI_Comm world);
int btrm_report_main(int argc, char **argv, MPI_Comm world);
int btrm_prep_main(int argc, char **argv, MPI_Comm world);
int btrm_embed_main(int argc, char **argv, MPI_Comm world);

/* Collects the repeated `--set a.b=c` options of a command line. */
typedef struct btrm_cli_sets {
    const char **items;
    int n, cap;
} btrm_cli_sets;
int btrm_cli_sets_add(btrm_cli_sets *sets, const char *assignment);
void btrm_cli_sets_free(btrm_cli_sets *sets);

/* Prints "btrm <cmd>: <message>\nTry 'btrm <cmd> --help'." to stderr and
 * returns BTRM_EXIT_USAGE. */
int btrm_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* -v/--verbose (BTRM_LOG_DEBUG) and -q/--quiet (BTRM_LOG_WARN): 1 when arg is
 * one of them, with *verbosity set; 0 otherwise. */
int btrm_cli_verbosity(const char *arg, int *verbosity);

/* The start of an MPI command: comm over world (the job is aborted with the
 * message when it cannot be made) and logging at verbosity on its rank. */
void btrm_cli_comm_init(btrm_comm *comm, MPI_Comm world, int verbosity);

/* The end of a command: logs rc's message (rank 0; a preemption as a
 * warning), frees comm (may be NULL), returns the process exit code. */
int btrm_cli_exit(btrm_comm *comm, int rc);

/* The config of --config PATH (NULL: the defaults) with the --set options,
 * in *cfg (calloc'ed; the caller frees it, also on failure). */
int btrm_cli_load_config(const char *path, const btrm_cli_sets *sets, btrm_config **cfg);

/* Parses a non-negative integer option value; 0 on success. */
int btrm_cli_parse_i64(const char *text, long long min, long long max, long long *out);
int btrm_cli_parse_double(const char *text, double *out);

#endif
