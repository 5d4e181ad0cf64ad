/* modelfile.h: the model file (format "model-v1", docs/format.md). io layer.
 *
 *   attribute /btrm_format = "model-v1"
 *   /model: string attrs head, activation, loss; numeric attrs dist_ema,
 *           normbt_eps, max_weight (0 = none)
 *   /model/<tensor>/weight float32 [out, in], /model/<tensor>/bias float32 [out]
 *   for tensor in fc0, fc1, ..., out. */
#ifndef BTRM_MODELFILE_H
#define BTRM_MODELFILE_H

#include "head.h"

typedef struct btrm_model_meta {
    int loss;             /* BTRM_LOSS_* */
    double dist_ema;      /* NormBT's final dbar (mean training distance under bt) */
    double normbt_eps;
    double max_weight;    /* 0 = none */
} btrm_model_meta;

/* Serial write by one process, atomic (temporary name + rename). */
int btrm_model_write(const char *path, const btrm_head *head, const float *params,
                     const btrm_model_meta *meta);
/* Serial read: builds *head from the file and allocates *params
 * (head->n_params floats; caller frees). Errors name the file and dataset. */
int btrm_model_read(const char *path, btrm_head *head, float **params,
                    btrm_model_meta *meta);

/* HDF5 helpers shared by io modules (in modelfile.c). */
#include <hdf5.h>
int btrm_h5_write_attr_string(hid_t obj, const char *name, const char *value);
int btrm_h5_read_attr_string(hid_t obj, const char *name, char *value, size_t size);
int btrm_h5_write_attr_double(hid_t obj, const char *name, double value);
int btrm_h5_read_attr_double(hid_t obj, const char *name, double *value);
/* File creation property list with object time tracking off, so that
 * identical content gives identical bytes. */
hid_t btrm_h5_fcpl(void);
/* Temporary name "<dir>/.<base>.tmp.<pid>" next to path. */
void btrm_tmp_name(const char *path, char *tmp, size_t size);
/* Silences HDF5's automatic error stack printing (we report our own). */
void btrm_h5_quiet(void);

#endif
