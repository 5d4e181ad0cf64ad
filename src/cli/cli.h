/* cli.h: the subcommands' entry points and the option handling they share.
 * Each btrm_<cmd>_main parses its arguments and calls one orchestrator; it
 * returns the process exit code (error.h). Commands that run under MPI get
 * the world communicator from main; the others get MPI_COMM_NULL. */
#ifndef BTRM_CLI_H
#define BTRM_CLI_H

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
int btrm_serve_main(int argc, char **argv, MPI_Comm world);
int btrm_export_main(int argc, char **argv, MPI_Comm world);

/* Collects the repeated `--set a.b=c` options of a command line. */
typedef struct btrm_cli_sets {
    const char **items;
    int n, cap;
} btrm_cli_sets;
int btrm_cli_sets_add(btrm_cli_sets *sets, const char *assignment);
void btrm_cli_sets_free(btrm_cli_sets *sets);

/* out = spec with the options of the config (config_path, or the defaults,
 * with the --set assignments) inserted: btrm_backbone_spec_with_config. */
int btrm_cli_backbone_spec(const char *spec, const char *config_path, const btrm_cli_sets *sets,
                           char *out, size_t size);

/* Prints "btrm <cmd>: <message>\nTry 'btrm <cmd> --help'." to stderr and
 * returns BTRM_EXIT_USAGE. */
int btrm_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parses a non-negative integer option value; 0 on success. */
int btrm_cli_parse_i64(const char *text, long long min, long long max, long long *out);
int btrm_cli_parse_double(const char *text, double *out);

#endif
