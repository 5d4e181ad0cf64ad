/* modelfile_h5.h: the /model group at the HDF5 level, for the io modules
 * whose files hold one (model files, checkpoints): its attributes are
 * written and read here only, so both formats stay one. io layer (includes
 * <hdf5.h>; the layers above use modelfile.h). */
#ifndef BTRM_MODELFILE_H5_H
#define BTRM_MODELFILE_H5_H

#include "modelfile.h"

#include <hdf5.h>

/* Creates group /model in file (timestamps off) with the head's and meta's
 * attributes; *model is returned open (the caller closes it). Errors name
 * path. Collective when file is open with the MPI-IO driver. */
int btrm_model_group_create(hid_t file, const char *path, const btrm_head *head,
                            const btrm_model_meta *meta, hid_t *model);

/* Reads the attributes of an open /model group: the head kind and hidden
 * activation (BTRM_HEAD_*, BTRM_ACT_*) and meta. Checks their names and
 * that the numbers are finite and >= 0 (BTRM_EDATA naming path). */
int btrm_model_group_read_attrs(hid_t model, const char *path, int *kind, int *activation,
                                btrm_model_meta *meta);

/* The tensor names in buffer order: fc0 .. fc(n_layers - 2), out. */
void btrm_model_tensor_name(char *out, size_t size, int layer, int n_layers);

#endif
