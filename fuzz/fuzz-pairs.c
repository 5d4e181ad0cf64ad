/* fuzz-pairs.c: a pair store (HDF5, a file in the scratch directory: /dev/shm in the campaigns) through btrm_pairs_open on
 * MPI_COMM_SELF: the validation of phase 1 (format, dataset ranks and types,
 * indices, codes, margins), then, for stores whose features take at most
 * 64 MB, the collective MPI-IO read of /features into the node-shared window
 * and the NaN/Inf check. Properties (pairs.h): an accepted store's indices
 * lie in [0, n_rows) and differ within a pair; its codes lie in range. */
#include "fuzz.h"

#include "comm.h"
#include "error.h"
#include "pairs.h"

#include <math.h>
#include <stdlib.h>

#define MAX_FEATURE_BYTES (64u << 20)

FUZZ_HDF5_ALLOCATOR

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    fuzz_comm_self();
    return 0;
}

static void check(const btrm_pairs *p)
{
    for (int64_t i = 0; i < p->n_pairs; i++) {
        if (p->chosen[i] < 0 || p->chosen[i] >= p->n_rows || p->rejected[i] < 0 ||
            p->rejected[i] >= p->n_rows || p->chosen[i] == p->rejected[i])
            fuzz_fail("accepted pair %lld: rows %lld and %lld of %lld", (long long)i,
                      (long long)p->chosen[i], (long long)p->rejected[i], (long long)p->n_rows);
        if (p->category && (p->category[i] < 0 || p->category[i] >= p->n_categories))
            fuzz_fail("accepted pair %lld: category %d of %d", (long long)i, p->category[i],
                      p->n_categories);
        if (p->subset && (p->subset[i] < 0 || p->subset[i] >= p->n_subsets))
            fuzz_fail("accepted pair %lld: subset %d of %d", (long long)i, p->subset[i],
                      p->n_subsets);
        if (p->margin && !isfinite(p->margin[i]))
            fuzz_fail("accepted pair %lld: margin %g", (long long)i, p->margin[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    /* a file, not a memfd: HDF5 opens the real path of what it is given */
    fuzz_tmp_file(path, sizeof path, "pairs.h5", data, size);
    const btrm_comm *c = fuzz_comm_self();
    btrm_pairs p;
    if (btrm_pairs_open(&p, path, c, 0) != 0)
        return 0;
    check(&p);
    const uint64_t feature_bytes = (uint64_t)p.n_rows * (uint64_t)p.dim * 4;
    const int load = p.dim > 0 && feature_bytes <= MAX_FEATURE_BYTES;
    btrm_pairs_close(&p);
    if (load && btrm_pairs_open(&p, path, c, BTRM_PAIRS_FEATURES) == 0) {
        check(&p);
        /* every chosen row read back in float32, whatever the stored type */
        float *row = malloc((size_t)p.dim * sizeof *row);
        volatile float sum = 0;
        for (int64_t i = 0; row && i < p.n_pairs; i++) {
            btrm_pairs_feature_row(&p, p.chosen[i], row, BTRM_DTYPE_F32);
            sum += row[0];
        }
        (void)sum;
        free(row);
        btrm_pairs_close(&p);
    }
    return 0;
}
