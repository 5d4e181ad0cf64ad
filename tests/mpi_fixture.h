/* tests/mpi_fixture.h: the main() of the MPI unit tests, shared. A test
 * includes it after tap.h, gets `world` and `self` (btrm_comm over
 * MPI_COMM_WORLD and MPI_COMM_SELF) and `dir` (a scratch directory made by
 * rank 0, the same path on every rank), and writes
 *
 *     int main(int argc, char **argv)
 *     {
 *         test_mpi_begin(&argc, &argv, "pairs");
 *         ... the checks, on every rank ...
 *         return test_mpi_end();
 *     }
 *
 * begin: MPI, the communicators, one BLAS thread, stdout of rank 0 only
 * (TAP), quiet logs (BTRM_TEST_VERBOSE=1: debug), HDF5's error printing off.
 * end: a check on rank 0 that the other ranks passed the same checks, the
 * scratch directory removed (unless KEEP_WORK is set), MPI finalized, the
 * TAP exit status. */
#ifndef BTRM_TEST_MPI_FIXTURE_H
#define BTRM_TEST_MPI_FIXTURE_H

#include "comm.h"
#include "error.h"
#include "h5util.h"
#include "log.h"

#include <dirent.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
void openblas_set_num_threads(int num_threads);
#endif

/* LeakSanitizer and Open MPI: MPI_Finalize dlclose()s Open MPI's components,
 * after which LeakSanitizer cannot name their frames ("<unknown module>") and
 * tests/lsan.supp cannot suppress their allocations. Keeping the components
 * loaded (dlclose does nothing in a test program; the process is ending
 * anyway) lets the suppressions work while leaks in btrm's own code are still
 * reported. */
int dlclose(void *handle);
int dlclose(void *handle)
{
    (void)handle;
    return 0;
}

/* One allocation made through vasprintf during MPI_Init is reported with a
 * broken stack (Open MPI's libraries lack frame pointers), so it cannot be
 * matched to Open MPI by tests/lsan.supp; btrm never calls vasprintf. BLACS
 * keeps its context table and buffers for the life of the process (freed
 * only by blacs_exit). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:vasprintf\nleak:libscalapack\nleak:BI_\nleak:Cblacs\n";
}

static btrm_comm world, self;
static char dir[256];

static void test_mpi_begin(int *argc, char ***argv, const char *name)
{
    MPI_Init(argc, argv);
    if (btrm_comm_init(&world, MPI_COMM_WORLD) != 0 || btrm_comm_init(&self, MPI_COMM_SELF)) {
        fprintf(stderr, "%s\n", btrm_error_msg());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
    openblas_set_num_threads(1);
#endif
    if (world.rank != 0 && !freopen("/dev/null", "w", stdout))
        MPI_Abort(world.comm, 1);
    btrm_log_init(world.rank, getenv("BTRM_TEST_VERBOSE") ? BTRM_LOG_DEBUG : BTRM_LOG_QUIET);
    btrm_h5_quiet();
    if (world.rank == 0) {
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(dir, sizeof dir, "%s/btrm-test-%s.XXXXXX", tmp, name);
        if (!mkdtemp(dir))
            MPI_Abort(world.comm, 1);
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, world.comm);
    diag("%d rank(s), files in %s", world.size, dir);
}

static int test_mpi_end(void)
{
    int failed_elsewhere = world.rank == 0 ? 0 : tap_failed_;
    MPI_Allreduce(MPI_IN_PLACE, &failed_elsewhere, 1, MPI_INT, MPI_SUM, world.comm);
    if (world.size > 1)
        is_int(failed_elsewhere, 0, "the other %d rank(s) passed the same checks",
               world.size - 1);
    MPI_Barrier(world.comm);
    if (world.rank == 0 && !getenv("KEEP_WORK")) {
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char path[sizeof dir + 256];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                unlink(path);
        }
        if (d)
            closedir(d);
        rmdir(dir);
    }
    btrm_comm_free(&self);
    btrm_comm_free(&world);
    MPI_Finalize();
    return done_testing();
}

#endif
