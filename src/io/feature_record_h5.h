/* feature_record_h5.h: a feature record as HDF5 attributes, for the io
 * modules whose files carry one (pair stores' /features dataset, model
 * files' /features group). io layer (includes <hdf5.h>; the layers above
 * use feature_record.h). */
#ifndef BTRM_FEATURE_RECORD_H5_H
#define BTRM_FEATURE_RECORD_H5_H

#include "feature_record.h"

#include <hdf5.h>

/* Writes rec's known fields as attributes of obj (a dataset or a group). */
int btrm_feature_record_write_h5(hid_t obj, const btrm_feature_record *rec);
/* Reads the fields obj has into rec (the others are left as they are),
 * then btrm_feature_record_finish. Errors name the attribute. */
int btrm_feature_record_read_h5(hid_t obj, btrm_feature_record *rec);

#endif
