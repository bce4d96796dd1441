/* What the chaos and soak programs share: a monotonic clock, the process's threads, open fds
 * and RSS from /proc, and a writer of JSON lines (one object per line, flushed at once). */
#ifndef WPS_CHAOS_COMMON_H
#define WPS_CHAOS_COMMON_H

#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A numeric field of /proc/self/status ("Threads", "VmRSS" in KiB), or -1. */
static inline long status_field(const char *name) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(name);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, name, n) == 0 && line[n] == ':') { v = strtol(line + n + 1, NULL, 10); break; }
    fclose(f);
    return v;
}

/* Open file descriptors of the process (not counting the one used to list them). */
static inline long fd_count(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1;
}

static FILE *out;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t t0;

/* Writes {"t":<ms since t0>,<fields>} as one line; fmt gives the fields. */
static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...) {
    va_list ap;
    pthread_mutex_lock(&out_mu);
    fprintf(out, "{\"t\":%lld,", (long long)(mono_ms() - t0));
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputs("}\n", out);
    fflush(out);
    pthread_mutex_unlock(&out_mu);
}

/* Opens the output file and starts the clock of its "t" fields; 0 on failure (reported). */
static inline int open_output(const char *path) {
    out = fopen(path, "w");
    if (!out) { perror(path); return 0; }
    t0 = mono_ms();
    return 1;
}

/* A condition variable whose timed waits use CLOCK_MONOTONIC. */
static inline void cond_init_monotonic(pthread_cond_t *cv) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

#endif /* WPS_CHAOS_COMMON_H */
