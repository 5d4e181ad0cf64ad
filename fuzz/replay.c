/* replay.c: the plain driver of a fuzz harness (no libFuzzer), for `make
 * check`. Run as fuzz/replay-<name> with no argument, it replays every file
 * of $BTRM_SRCDIR/fuzz/corpus/<name>/ (the seeds and the campaigns' merged
 * corpus) and $BTRM_SRCDIR/fuzz/regress/<name>/ (every input that ever
 * crashed, hung or leaked) through LLVMFuzzerTestOneInput, one TAP line per
 * file. With file arguments it replays those. Built with the sanitizers when
 * configure enables them: an ASan/UBSan report aborts the test, and a leak
 * is checked after every input, so the failing input is named. An input
 * still running after REPLAY_SECONDS (an endless loop: inputs that hung
 * libhdf5 are kept too) fails the test, named, instead of hanging it. */
#define _DEFAULT_SOURCE /* DT_REG */
#include "fuzz.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { REPLAY_SECONDS = 60 };

#if defined(__SANITIZE_ADDRESS__)
#define REPLAY_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPLAY_LSAN 1
#endif
#endif
#ifdef REPLAY_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* libFuzzer calls LLVMFuzzerInitialize when a harness defines it. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int n_run, n_failed;

/* The TAP line for an input that ran out of time, written by the handler. */
static char hang_line[1024];

static void on_alarm(int sig)
{
    (void)sig;
    ssize_t w = write(STDOUT_FILENO, hang_line, strlen(hang_line));
    (void)w;
    _exit(1);
}

static int read_all(const char *path, uint8_t **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            uint8_t *bigger = realloc(buf, cap *= 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
            }
            buf = bigger;
        }
    }
    int bad = ferror(f) || !buf;
    fclose(f);
    if (bad) {
        free(buf);
        return -1;
    }
    *data = buf;
    *size = n;
    return 0;
}

static void replay_file(const char *path, const char *label)
{
    uint8_t *data = NULL;
    size_t size = 0;
    n_run++;
    printf("# %s\n", label);
    fflush(stdout);
    if (read_all(path, &data, &size) != 0) {
        printf("not ok %d - %s: cannot read\n", n_run, label);
        n_failed++;
        return;
    }
    /* libFuzzer hands the harness a buffer of exactly size bytes: so do we */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    free(data);
    snprintf(hang_line, sizeof hang_line, "not ok %d - %s: still running after %d s (a "
             "hang)\n", n_run, label, REPLAY_SECONDS);
    signal(SIGALRM, on_alarm);
    alarm(REPLAY_SECONDS);
    LLVMFuzzerTestOneInput(copy, size);
    alarm(0);
    free(copy);
    int leaked = 0;
#ifdef REPLAY_LSAN
    leaked = __lsan_do_recoverable_leak_check();
#endif
    printf("%s %d - %s: runs to the end%s\n", leaked ? "not ok" : "ok", n_run, label,
           leaked ? ", but leaks" : " without a sanitizer report or a leak");
    n_failed += leaked;
    fflush(stdout);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of dir, in name order; 0 when dir does not exist. */
static int replay_dir(const char *dir, const char *label)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, cap * sizeof *names);
            if (!names)
                abort();
        }
        if (!(names[n++] = strdup(e->d_name)))
            abort();
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        char path[8192], what[8192];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, names[i]) < sizeof path &&
            (size_t)snprintf(what, sizeof what, "%s/%s", label, names[i]) < sizeof what)
            replay_file(path, what);
        free(names[i]);
    }
    free(names);
    return (int)n;
}

int main(int argc, char **argv)
{
    const char *prog = strrchr(argv[0], '/');
    prog = prog ? prog + 1 : argv[0];
    const char *harness = strncmp(prog, "replay-", 7) == 0 ? prog + 7 : prog;
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            replay_file(argv[i], argv[i]);
    } else {
        const char *srcdir = getenv("BTRM_SRCDIR");
        char dir[4096], label[512];
        int found = 0;
        static const char *const kinds[] = { "corpus", "regress" };
        for (int k = 0; k < 2; k++) {
            snprintf(dir, sizeof dir, "%s/fuzz/%s/%s", srcdir ? srcdir : ".", kinds[k], harness);
            snprintf(label, sizeof label, "%s/%s", kinds[k], harness);
            found += replay_dir(dir, label);
        }
        if (!found) { /* the corpus is part of the tree: its absence is a failure */
            printf("1..1\nnot ok 1 - inputs of %s under %s/fuzz/{corpus,regress} (set "
                   "BTRM_SRCDIR)\n", harness, srcdir ? srcdir : ".");
            return 1;
        }
    }
    printf("1..%d\n", n_run);
    fflush(stdout); /* LeakSanitizer ends the process with _exit */
    return n_failed ? 1 : 0;
}
