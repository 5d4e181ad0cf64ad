/* memory.h: how much memory this process may still take, so that a job that
 * cannot fit is refused before it allocates (and is killed by the kernel or
 * the batch system's cgroup half-way through; Linux: /proc and cgroups), and
 * the heap settings every btrm process starts with. */
#ifndef BTRM_MEMORY_H
#define BTRM_MEMORY_H

#include <stddef.h>
#include <stdint.h>

/* *bytes = MemAvailable of /proc/meminfo, lowered to the room left under the
 * memory cgroup's limit when one is set (cgroup v2 memory.max -
 * memory.current, v1 memory.limit_in_bytes - memory.usage_in_bytes, for the
 * cgroup of /proc/self/cgroup). what (may be NULL) says where the figure
 * comes from ("MemAvailable", "cgroup /slurm/job_12: limit L, used U").
 * Returns 0, or -1 when nothing could be read (*bytes = UINT64_MAX: unknown,
 * no limit to enforce). */
int btrm_memory_available(uint64_t *bytes, char *what, size_t what_size);

/* Keeps freed heap memory mapped (glibc: mmap threshold 32 MiB, trim
 * threshold 256 MiB) unless the environment sets MALLOC_*_THRESHOLD_ or
 * GLIBC_TUNABLES: under a memory balloon first touch runs at ~0.3 GB/s
 * (memory.c). btrm's main and the benchmarks call it first thing. */
void btrm_keep_heap(void);

#endif
