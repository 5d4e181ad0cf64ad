#include "memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* The first unsigned number in file, or -1 ("max" or unreadable). */
static int read_u64(const char *path, uint64_t *value)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    unsigned long long v = 0;
    int ok = fscanf(f, "%llu", &v) == 1;
    fclose(f);
    if (!ok)
        return -1;
    *value = (uint64_t)v;
    return 0;
}

static int meminfo_available(uint64_t *bytes)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256];
    int rc = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long long kib;
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1) {
            *bytes = (uint64_t)kib * 1024;
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

/* The room under this process's memory cgroup limit: 0 when found (*room,
 * and *limit / *used for the message), -1 when there is no limit or no
 * cgroup information. A path that is not visible under the mount (a cgroup
 * namespace) is looked up at the mount's root. */
static int cgroup_room(uint64_t *room, uint64_t *limit, uint64_t *used, char *path,
                       size_t path_size)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return -1;
    char line[1024], v1[512] = "", v2[512] = "";
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;
        if (!a || !b)
            continue;
        *a = '\0';
        const char *controllers = a + 1;
        *b = '\0';
        const char *where = b + 1;
        if (!strcmp(line, "0") && controllers[0] == '\0')
            snprintf(v2, sizeof v2, "%s", where);
        else if (!strcmp(controllers, "memory") || strstr(controllers, "memory,") ||
                 strstr(controllers, ",memory"))
            snprintf(v1, sizeof v1, "%s", where);
    }
    fclose(f);
    static const struct { const char *mount, *limit, *usage; int v1; } kinds[] = {
        { "/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes", 1 },
        { "/sys/fs/cgroup", "memory.max", "memory.current", 0 },
        { "/sys/fs/cgroup/unified", "memory.max", "memory.current", 0 },
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        const char *rel = kinds[k].v1 ? v1 : v2;
        if (!rel[0])
            continue;
        for (int at_root = 0; at_root < 2; at_root++) {
            char dir[1024], file[1100];
            snprintf(dir, sizeof dir, "%s%s", kinds[k].mount, at_root ? "" : rel);
            snprintf(file, sizeof file, "%s/%s", dir, kinds[k].limit);
            uint64_t l = 0, u = 0;
            if (read_u64(file, &l) != 0)
                continue;
            snprintf(file, sizeof file, "%s/%s", dir, kinds[k].usage);
            if (read_u64(file, &u) != 0)
                break;
            if (l >= (UINT64_MAX >> 2)) /* v1's "no limit" is 2^63 rounded to a page */
                break;
            *limit = l;
            *used = u;
            *room = l > u ? l - u : 0;
            snprintf(path, path_size, "%s", at_root ? "/" : rel);
            return 0;
        }
    }
    return -1;
}

int btrm_memory_available(uint64_t *bytes, char *what, size_t what_size)
{
    uint64_t avail = UINT64_MAX, room = 0, limit = 0, used = 0;
    char cg[512] = "";
    int have_meminfo = meminfo_available(&avail) == 0;
    int have_cgroup = cgroup_room(&room, &limit, &used, cg, sizeof cg) == 0;
    if (have_cgroup && room < avail) {
        *bytes = room;
        if (what)
            snprintf(what, what_size, "memory cgroup %s: limit %llu, used %llu", cg,
                     (unsigned long long)limit, (unsigned long long)used);
        return 0;
    }
    *bytes = avail;
    if (what)
        snprintf(what, what_size, "%s", have_meminfo ? "MemAvailable" : "unknown");
    return have_meminfo || have_cgroup ? 0 : -1;
}

/* Keep freed heap memory mapped. glibc returns large blocks to the kernel
 * (mmap/munmap above a threshold that adapts, heap trimming above 128 KiB
 * free at the top), so a buffer that MPI or a step allocates and frees every
 * step is faulted in again every step. Under a memory balloon that reclaims
 * freed pages (these VMs) first touch runs at about 0.3 GB/s: the 2-rank bf16
 * mlp step ran at 3,700 pairs/s with glibc's defaults and 10,400 with these
 * (docs/performance.md). Blocks above 32 MiB (the feature store, whole
 * checkpoints) are still mapped on their own; the environment's
 * MALLOC_*_THRESHOLD_ or GLIBC_TUNABLES take precedence. */
void btrm_keep_heap(void)
{
#ifdef __GLIBC__
    if (getenv("MALLOC_MMAP_THRESHOLD_") || getenv("MALLOC_TRIM_THRESHOLD_") ||
        getenv("GLIBC_TUNABLES"))
        return;
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif
}
