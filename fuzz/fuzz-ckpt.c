/* fuzz-ckpt.c: a checkpoint (HDF5, a file in the scratch directory: /dev/shm in the campaigns) through btrm_ckpt_verify on
 * MPI_COMM_SELF: format, /state, and the crc32 of every dataset read back
 * through collective MPI-IO (what `btrm inspect` and --resume auto do first). */
#include "fuzz.h"

#include "ckpt.h"
#include "comm.h"

FUZZ_HDF5_ALLOCATOR

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    fuzz_comm_self();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    /* a file, not a memfd: HDF5 opens the real path of what it is given */
    fuzz_tmp_file(path, sizeof path, "ckpt.h5", data, size);
    btrm_ckpt_state st;
    (void)btrm_ckpt_verify(path, fuzz_comm_self(),
                           &st, 0);
    return 0;
}
