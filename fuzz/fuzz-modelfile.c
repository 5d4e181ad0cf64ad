/* fuzz-modelfile.c: a model file (HDF5, a file in the scratch directory: /dev/shm in the campaigns) through btrm_model_read
 * (the head's tensors fc0..fcK and out, their shapes, the metadata), then one
 * forward pass of two rows with the head it built. Property (modelfile.h): an
 * accepted file gives a head whose parameter count matches the buffer. */
#include "fuzz.h"

#include "head.h"
#include "modelfile.h"

#include <stdlib.h>

FUZZ_HDF5_ALLOCATOR

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    /* a file, not a memfd: HDF5 opens the real path of what it is given */
    fuzz_tmp_file(path, sizeof path, "model.h5", data, size);
    btrm_head head;
    btrm_model_meta meta;
    float *params = NULL;
    if (btrm_model_read(path, &head, &params,
                        &meta) != 0) {
        if (params)
            fuzz_fail("btrm_model_read failed but left a parameter buffer");
        return 0;
    }
    if (!params || head.n_params == 0)
        fuzz_fail("an accepted model has no parameters");
    if (head.dim <= 4096) {
        btrm_head_ws ws;
        float *x = calloc(2 * (size_t)head.dim, sizeof *x);
        if (!x || btrm_head_ws_init(&ws, &head, 2) != 0)
            fuzz_fail("out of memory");
        btrm_head_forward(&head, params, x, 2, &ws);
        btrm_head_ws_free(&ws);
        free(x);
    }
    free(params);
    return 0;
}
