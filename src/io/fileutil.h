/* fileutil.h: small file helpers shared by the orchestrators: directories,
 * atomic writes (temporary name in the same directory, then rename, so a
 * crash never leaves a half-written file under the final name). io layer. */
#ifndef BTRM_FILEUTIL_H
#define BTRM_FILEUTIL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

/* mkdir -p; 0 or BTRM_EIO naming the directory. */
int btrm_mkdir_p(const char *dir);
/* "<dir>/.<base>.tmp.<pid>" next to path. */
void btrm_tmp_path(const char *path, char *tmp, size_t size);
/* Reserves bytes of disk space for the file path (which exists), from its
 * start, without changing its size (fallocate FALLOC_FL_KEEP_SIZE): writes
 * that stay within them cannot fail for lack of space. Used before an HDF5
 * file's data are written, because libhdf5's write error paths are neither
 * collective nor clean (a failed H5Fclose crashes at exit). Where the file
 * system cannot reserve, the free space (statvfs) is checked instead.
 * BTRM_EIO "<path>: cannot reserve N bytes: No space left on device". */
int btrm_file_reserve(const char *path, uint64_t bytes);
/* Publishes a finished temporary file: gives back what a reservation left
 * unused past its end, fsyncs tmp, renames it onto path, fsyncs the
 * directory (best effort). On failure tmp is removed and nothing is left
 * under path's name. */
int btrm_file_commit(const char *tmp, const char *path);
/* Writes bytes to path atomically (fsync'ed before the rename). */
int btrm_write_atomic(const char *path, const void *bytes, size_t size);
/* Writes a JSON document (indented, trailing newline) atomically. */
int btrm_json_write_atomic(const char *path, const json_t *doc);
/* Writes obj as one line of a JSONL file (compact, keys in insertion order,
 * reals with 9 significant digits); BTRM_EIO naming what on failure. The
 * caller decides when to flush. */
int btrm_jsonl_write(FILE *out, const json_t *obj, const char *what);
/* Reads a whole file (at most max_bytes; a larger one is BTRM_ECONFIG "not a
 * <what>") into a malloc'ed, NUL-terminated buffer; *st_out (may be NULL)
 * gets its fstat. Missing file and directories are BTRM_ECONFIG. */
int btrm_read_file(const char *path, long max_bytes, const char *what, unsigned char **text,
                   size_t *len, struct stat *st_out);
/* A malloc'ed string formatted like printf (NULL when out of memory). */
char *btrm_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* XXH3-128 of a whole file as 32 lowercase hex digits (the canonical form
 * xxhsum -H2 prints), read in blocks. 0 or BTRM_EIO naming the file. */
int btrm_file_xxh128(const char *path, char hex[33]);
/* Joins dir and name into out ("name" alone when it is absolute). */
int btrm_path_join(char *out, size_t size, const char *dir, const char *name);
/* out = path, made absolute against the current directory when relative
 * (symbolic links kept). BTRM_EIO when it does not fit. */
int btrm_path_absolute(const char *path, char *out, size_t size);

/* zlib's crc32 of bytes (CRC-32/ISO-HDLC), continuing from crc (0 to
 * start), for any size; computed by libdeflate (faster, the same values). */
uint32_t btrm_crc32_update(uint32_t crc, const void *bytes, size_t size);

#endif
