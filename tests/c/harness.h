/* Test harness for the C tests: checks, deadlines, an event recorder and emulator helpers.
 * Waiting is always on condition variables with deadlines (CLOCK_MONOTONIC), never sleeping. */
#ifndef WPS_TEST_HARNESS_H
#define WPS_TEST_HARNESS_H

#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "webpubsub_client.h"

/* ---- checks ------------------------------------------------------------------------------ */

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "    %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fprintf(stderr, "\n");                                                             \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

#define CHECK_RC(expr, expected)                                                               \
    do {                                                                                       \
        int32_t rc_ = (expr);                                                                  \
        if (rc_ != (expected)) {                                                               \
            const char *m_ = wps_last_error_message();                                         \
            fprintf(stderr, "    %s:%d: %s returned %s, expected %s (%s)\n", __FILE__,         \
                    __LINE__, #expr, wps_result_name(rc_), wps_result_name(expected),          \
                    m_ ? m_ : "no message");                                                   \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

#define CHECK_OK(expr) CHECK_RC(expr, WPS_OK)

typedef int (*test_fn)(void);
typedef struct { const char *name; test_fn fn; } test_case;

static int run_tests(const char *suite, const test_case *tests, size_t n, int argc, char **argv) {
    int passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (argc > 1) {
            int wanted = 0;
            for (int a = 1; a < argc; a++)
                if (strcmp(argv[a], tests[i].name) == 0) wanted = 1;
            if (!wanted) continue;
        }
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = tests[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        printf("%s %s.%s (%.0f ms)\n", rc == 0 ? "PASS" : "FAIL", suite, tests[i].name, ms);
        fflush(stdout);
        if (rc == 0) passed++; else failed++;
    }
    printf("%s: %d passed, %d failed\n", suite, passed, failed);
    return failed == 0 ? 0 : 1;
}

/* ---- time ------------------------------------------------------------------------------- */

static inline int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline struct timespec deadline_in(int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    return ts;
}

static inline void cond_init_monotonic(pthread_cond_t *cv) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

/* A latch: count up, wait until it reaches a value or a deadline passes. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long value;
} latch;

static inline void latch_init(latch *l) {
    pthread_mutex_init(&l->mu, NULL);
    cond_init_monotonic(&l->cv);
    l->value = 0;
}

static inline void latch_add(latch *l, long n) {
    pthread_mutex_lock(&l->mu);
    l->value += n;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

static inline long latch_get(latch *l) {
    pthread_mutex_lock(&l->mu);
    long v = l->value;
    pthread_mutex_unlock(&l->mu);
    return v;
}

/* Returns 1 when value >= target before timeout_ms, else 0. */
static inline int latch_wait(latch *l, long target, int timeout_ms) {
    struct timespec dl = deadline_in(timeout_ms);
    int ok = 1;
    pthread_mutex_lock(&l->mu);
    while (l->value < target) {
        if (pthread_cond_timedwait(&l->cv, &l->mu, &dl) == ETIMEDOUT) { ok = l->value >= target; break; }
    }
    pthread_mutex_unlock(&l->mu);
    return ok;
}

/* Taking the mutex once more orders its destruction after the last callback's unlock in a
 * way thread checkers can see (the library's own hand-over uses futexes they cannot). */
static inline void mutex_destroy_after_users(pthread_mutex_t *mu) {
    pthread_mutex_lock(mu);
    pthread_mutex_unlock(mu);
    pthread_mutex_destroy(mu);
}

static inline void latch_destroy(latch *l) {
    mutex_destroy_after_users(&l->mu);
    pthread_cond_destroy(&l->cv);
}

/* ---- event recorder -------------------------------------------------------------------- */

typedef struct {
    uint32_t type;
    char *connection_id, *user_id, *group, *from_user_id, *message, *error_name;
    uint32_t data_type;
    unsigned char *data;
    size_t data_len;
    uint64_t sequence_id, ack_id;
    int32_t result;
    uint32_t op, is_duplicate;
    void *op_context;
    pthread_t thread;
    char *stream_id, *user_error_code;
    uint64_t stream_sequence_id;
    uint32_t end_of_stream, is_snapshot;
} rec_event;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rec_event *ev;
    size_t n, cap;
    int in_callback;     /* callbacks currently running for this recorder */
    int overlap;         /* set if two callbacks ever ran at the same time */
    int bad_struct_size; /* set if struct_size was smaller than the header's struct */
} recorder;

static inline char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static inline void rec_init(recorder *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    cond_init_monotonic(&r->cv);
}

static inline void rec_free(recorder *r) {
    /* Ordered after the last callback's unlock, visibly to thread checkers (see above). Every
     * test frees its clients first, so a callback still running here is a callback after
     * wps_client_free returned: the library broke its promise. */
    pthread_mutex_lock(&r->mu);
    int running = r->in_callback;
    pthread_mutex_unlock(&r->mu);
    if (running) {
        fprintf(stderr, "    a recorder callback is still running after its client was freed\n");
        abort();
    }
    for (size_t i = 0; i < r->n; i++) {
        rec_event *e = &r->ev[i];
        free(e->connection_id); free(e->user_id); free(e->group); free(e->from_user_id);
        free(e->message); free(e->error_name); free(e->data);
        free(e->stream_id); free(e->user_error_code);
    }
    free(r->ev);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

static inline void rec_push(recorder *r, const wps_event *e) {
    rec_event c;
    memset(&c, 0, sizeof c);
    c.type = e->type;
    c.connection_id = dup_or_null(e->connection_id);
    c.user_id = dup_or_null(e->user_id);
    c.group = dup_or_null(e->group);
    c.from_user_id = dup_or_null(e->from_user_id);
    c.message = dup_or_null(e->message);
    c.error_name = dup_or_null(e->error_name);
    c.data_type = e->data_type;
    if (e->data) {
        c.data = malloc(e->data_len + 1);
        memcpy(c.data, e->data, e->data_len + 1); /* includes the trailing NUL */
        c.data_len = e->data_len;
    }
    c.sequence_id = e->sequence_id;
    c.ack_id = e->ack_id;
    c.result = e->result;
    c.op = e->op;
    c.is_duplicate = e->is_duplicate;
    c.op_context = e->op_context;
    c.thread = pthread_self();
    c.stream_id = dup_or_null(e->stream_id);
    c.user_error_code = dup_or_null(e->user_error_code);
    c.stream_sequence_id = e->stream_sequence_id;
    c.end_of_stream = e->end_of_stream;
    c.is_snapshot = e->is_snapshot;
    pthread_mutex_lock(&r->mu);
    if (e->struct_size < sizeof(wps_event)) r->bad_struct_size = 1;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->ev = realloc(r->ev, r->cap * sizeof *r->ev);
    }
    r->ev[r->n++] = c;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void rec_callback(void *user_data, const wps_event *e) {
    recorder *r = user_data;
    pthread_mutex_lock(&r->mu);
    if (++r->in_callback > 1) r->overlap = 1;
    pthread_mutex_unlock(&r->mu);
    rec_push(r, e);
    pthread_mutex_lock(&r->mu);
    r->in_callback--;
    pthread_mutex_unlock(&r->mu);
}

static inline int rec_attach(wps_client *c, recorder *r) {
    for (uint32_t t = WPS_EVENT_CONNECTED; t <= WPS_EVENT_GROUP_STATE; t++) {
        int32_t rc = wps_set_callback(c, t, rec_callback, r);
        if (rc != WPS_OK) return rc;
    }
    return WPS_OK;
}

static inline size_t rec_count_locked(recorder *r, uint32_t type) {
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) if (r->ev[i].type == type) n++;
    return n;
}

static inline size_t rec_count(recorder *r, uint32_t type) {
    pthread_mutex_lock(&r->mu);
    size_t n = rec_count_locked(r, type);
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Waits until at least n events of `type` were recorded; 1 on success, 0 on timeout. */
static inline int rec_wait(recorder *r, uint32_t type, size_t n, int timeout_ms) {
    struct timespec dl = deadline_in(timeout_ms);
    int ok = 1;
    pthread_mutex_lock(&r->mu);
    while (rec_count_locked(r, type) < n) {
        if (pthread_cond_timedwait(&r->cv, &r->mu, &dl) == ETIMEDOUT) {
            ok = rec_count_locked(r, type) >= n;
            break;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

/* The k-th (0-based) recorded event of `type`, or NULL. Valid until rec_free. Events are
 * only appended, but the array may move, so copy what you need while no events arrive or
 * look it up again. */
static inline rec_event *rec_nth(recorder *r, uint32_t type, size_t k) {
    rec_event *found = NULL;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++)
        if (r->ev[i].type == type && k-- == 0) { found = &r->ev[i]; break; }
    pthread_mutex_unlock(&r->mu);
    return found;
}

/* ---- emulator helpers (tests/c/wps_tool.py) ------------------------------------------- */

static inline const char *tool_path(void) {
    const char *p = getenv("WPS_TEST_TOOL");
    return p ? p : "tests/c/wps_tool.py";
}

static inline int have_emulator(void) { return getenv("WPS_TEST_CONNSTR") != NULL; }

/* Runs the tool and returns its first output line (malloc'd) or NULL. */
static inline char *tool_run(const char *fmt, ...) {
    char args[1024], cmd[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "python3 %s %s", tool_path(), args);
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);
    int status = pclose(f);
    if (n <= 0 || status != 0) { free(line); return NULL; }
    if (line[n - 1] == '\n') line[n - 1] = 0;
    return line;
}

/* A client access URL for `hub`; roles is a space separated list ("" for none). */
static inline char *mint_url(const char *hub, const char *user, const char *roles, int exp_seconds) {
    char extra[512] = "";
    size_t off = 0;
    if (roles && *roles) {
        char copy[400];
        snprintf(copy, sizeof copy, "%s", roles);
        for (char *tok = strtok(copy, " "); tok; tok = strtok(NULL, " "))
            off += (size_t)snprintf(extra + off, sizeof extra - off, " --role %s", tok);
    }
    if (user) off += (size_t)snprintf(extra + off, sizeof extra - off, " --user %s", user);
    return tool_run("url %s --exp %d%s", hub, exp_seconds, extra);
}

static inline int emulator_fault(const char *hub, const char *connection_id, const char *action) {
    char *out = tool_run("fault %s %s %s && echo ok", hub, connection_id, action);
    int ok = out != NULL;
    free(out);
    return ok;
}

#define ALL_ROLES "webpubsub.joinLeaveGroup webpubsub.sendToGroup"

/* A started client with a recorder attached. NULL on failure (message printed). */
static inline wps_client *started_client(const char *url, const wps_options *o, recorder *r) {
    wps_client *c = NULL;
    int32_t rc = wps_client_new(url, o, &c);
    if (rc == WPS_OK && r) rc = rec_attach(c, r);
    if (rc == WPS_OK) rc = wps_client_start(c, 10000);
    if (rc != WPS_OK) {
        fprintf(stderr, "    client start failed: %s (%s)\n", wps_result_name(rc),
                wps_last_error_message() ? wps_last_error_message() : "");
        wps_client_free(c);
        return NULL;
    }
    return c;
}

/* The client's connection id into buf (size 128); 1 on success. */
static inline int conn_id(wps_client *c, char buf[128]) {
    size_t len = 0;
    return wps_client_get_connection_id(c, buf, 128, &len) == WPS_OK;
}

/* A unique group name per test and process. */
static inline const char *unique_group(const char *base, char buf[96]) {
    snprintf(buf, 96, "%s-%ld-%lld", base, (long)getpid(), (long long)now_ms());
    return buf;
}

static inline long thread_count(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long n = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Threads:", 8) == 0) { n = strtol(line + 8, NULL, 10); break; }
    fclose(f);
    return n;
}

#endif /* WPS_TEST_HARNESS_H */
