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

/* The subcommands in the order of `btrm --help`: X(name, uses_mpi, summary);
 * each is int btrm_<name>_main(argc, argv, world): it parses its arguments
 * and calls one orchestrator. */
#define BTRM_CLI_COMMANDS(X) \
    X(train, 1, \
      "train a reward head (BT or NormBT) on a pair store, data-parallel") \
    X(eval, 1, \
      "evaluate a model file on a pair store (accuracy, loss, grad_share)") \
    X(inspect, 1, \
      "describe a pair store, model file or checkpoint; verify its checksums") \
    X(analyze, 1, \
      "distance bias of a pair store: d quantiles, gradient shares, PCA") \
    X(prep, 0, \
      "read preference JSONL/JSON (plain or gzip) into a pair store with texts") \
    X(embed, 1, \
      "compute /features of a store's texts with a backbone, MPI-parallel") \
    X(score, 0, \
      "rewards of texts: a trained head on a backbone's features") \
    X(serve, 0, \
      "serve rewards over HTTP to RLHF loops (batched, OpenRLHF-compatible)") \
    X(export, 0, \
      "write a model as Hugging Face safetensors (+ config.json with a backbone)") \
    X(tokenize, 0, \
      "print the token ids and pieces of texts under a model's tokenizer") \
    X(generate, 0, \
      "greedy generation with an LLM backbone (debug)") \
    X(synth, 0, \
      "write a synthetic pair store with fine and coarse pairs") \
    X(config, 0, \
      "print the fully resolved config of a YAML file") \
    X(sweep, 0, \
      "expand a sweep file into run configs for a Slurm array") \
    X(report, 0, \
      "tabulate the results of runs and sweeps (markdown or CSV)")
#define BTRM_CLI_DECLARE(name, uses_mpi, summary) \
    int btrm_##name##_main(int argc, char **argv, MPI_Comm world);
BTRM_CLI_COMMANDS(BTRM_CLI_DECLARE)

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

/* The options most commands share: --config PATH, --set KEY=VALUE (repeated)
 * and -v/-q. 1 when argv[*i] is one of them (*i then moved past its value),
 * 0 otherwise (an option missing its value included: the caller's "unknown or
 * incomplete option" then names it). */
int btrm_cli_config_option(int argc, char **argv, int *i, const char **config_path,
                           btrm_cli_sets *sets, int *verbosity);

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
