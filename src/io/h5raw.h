/* h5raw.h: btrm's own check of the HDF5 structures that libhdf5 1.10 decodes
 * without bounds checks, read from the file's bytes before the library sees
 * them. io layer.
 *
 * Fuzzing (docs/reliability.md) found crafted files that crash libhdf5 1.10.8
 * inside H5Aexists (an attribute message whose name, datatype, dataspace or
 * data run past the message) and inside H5Aread of a variable-length string
 * (a global heap collection whose objects run past it, or an object larger
 * than the string that refers to it). btrm reads every attribute through
 * h5util, which calls this check first on the object that holds it; every
 * file btrm reads goes through btrm_h5raw_check_file before H5Fopen (a
 * superblock, a group's links or a dataset's header crashed libhdf5 in
 * H5Fopen, H5Lexists and H5Dopen2). */
#ifndef BTRM_H5RAW_H
#define BTRM_H5RAW_H

#include <hdf5.h>

/* Checks the file at path before libhdf5 opens it, as far as libhdf5 1.10
 * decodes it when it opens the file, looks up a link or opens a dataset:
 * the superblock (versions 0 to 3, no extension or driver block), then
 * every object reachable from the root group, each once: its object
 * header's chunks and continuations; an old-style group's local heap (in
 * the file, its free list without a loop), its B-tree nodes and symbol
 * table nodes (in the file, levels descending, every link name
 * NUL-terminated inside the heap); a new-style group's link messages (no
 * dense storage); a dataset's datatype (any class, every member name and
 * nested type inside its message), dataspace, fill value, layout and filter
 * pipeline messages (every field inside its message), no external storage
 * and no shared messages. Attributes are left to btrm_h5raw_check_attrs,
 * when btrm reads them. A file that is missing, has no HDF5 signature or is
 * shorter than its superblock says passes (0): libhdf5 refuses it with its
 * own message. Returns 0, BTRM_EDATA naming the structure and what is
 * wrong, or BTRM_ENOMEM. */
int btrm_h5raw_check_file(const char *path);

/* Walks the object header of obj (an open file, group or dataset) in the
 * file's bytes: every chunk and continuation (bounded, no loop), every
 * attribute message (version, name NUL-terminated, datatype and dataspace
 * of the kinds btrm's files hold, data as long as they need), and for each
 * variable-length string the global heap object it points to (a well-formed
 * collection inside the file, the object exactly the string's length).
 * where ("FILE: /object") starts each message. Returns 0, BTRM_EDATA naming
 * the attribute or address and what is wrong, or BTRM_EIO when the file
 * cannot be read. */
int btrm_h5raw_check_attrs(hid_t obj, const char *where);

/* The same walk of dataset dset's header, then, for a variable-length
 * string dataset (btrm_h5_read_strings), every string's global heap object
 * as above; its values stored compact or contiguous, never chunked. */
int btrm_h5raw_check_strings(hid_t dset, const char *where);

#endif
