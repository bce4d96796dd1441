/*
 * Bench program for the C ABI (libwebpubsub_client.so):
 *   wps-bench-c c|c-poll|c-sync SCENARIO [key=value ...]
 * `c` uses the defaults (callbacks on the library's callback threads; a fire-and-forget send
 * returns once queued, with up to 1,024 frames waiting to be written); `c-poll` uses
 * WPS_DISPATCH_POLL, where callbacks run inside wps_client_dispatch on the waiting thread;
 * `c-sync` is the default configuration with a fire-and-forget buffer of 0 (each fire-and-forget
 * send waits until its frame is written to the socket).
 * SCENARIO is msg, idle or connect, run exactly as the Rust, Python and JS bench programs do
 * (see BENCHMARKS.md), reliable, or stream (group stream fragments/s, as the Rust and JS bench
 * programs measure it; default mode only); one JSON line per measurement on stdout. Scenario
 * `stats` (C only)
 * measures the cost of reading statistics under load: the fire-and-forget and acked phases of
 * `msg`, in `rounds` rounds of three arms in rotating order: no extra thread, a thread that
 * wakes about every millisecond and does nothing, and one that calls wps_client_get_stats on
 * both clients about every millisecond.
 * Environment: BENCH_URL (client access URL), BENCH_DROP_CMD (drop helper, connection id appended).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "webpubsub_client.h"

#define GROUP "g"
#define RTT_GROUP "rtt"
#define RECOVERY_GROUP "rec"
#define WARM_UP 200
#define WAIT_MS 60000
#define MAX_STEPS 8

static const char *IMPL = "c";
static int POLL = 0;          /* WPS_DISPATCH_POLL clients */
static long FF_BUFFER = -1;   /* wps_options_set_fire_and_forget_buffer; -1: the default */

static void die(const char *what, wps_result r) {
    fprintf(stderr, "wps-bench-c: %s: %s (%s)\n", what, wps_result_name(r), wps_last_error_message());
    exit(1);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void emit(const char *metric, double value, const char *unit) {
    printf("{\"impl\":\"%s\",\"metric\":\"%s\",\"value\":%.6f,\"unit\":\"%s\"}\n", IMPL, metric, value, unit);
    fflush(stdout);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(double *sorted, size_t n, double p) {
    size_t rank = (size_t)((p / 100.0) * (double)n + 0.999999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

static void proc_status(double *rss_kb, double *threads) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    if (!f) die("open /proc/self/status", 0);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) *rss_kb = strtod(line + 6, NULL);
        if (strncmp(line, "Threads:", 8) == 0) *threads = strtod(line + 8, NULL);
    }
    fclose(f);
}

/* Counts group messages delivered to one client; remembers when the last one arrived. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t count;
    uint64_t last_ns;
} counter;

static void counter_init(counter *k) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, &attr);
    pthread_condattr_destroy(&attr);
    k->count = 0;
    k->last_ns = 0;
}

static uint64_t counter_get(counter *k) {
    pthread_mutex_lock(&k->mu);
    uint64_t n = k->count;
    pthread_mutex_unlock(&k->mu);
    return n;
}

static void counter_wait(counter *k, uint64_t target, uint32_t timeout_ms, const char *what) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&k->mu);
    while (k->count < target) {
        if (pthread_cond_timedwait(&k->cv, &k->mu, &deadline) == ETIMEDOUT && k->count < target) {
            fprintf(stderr, "wps-bench-c: %s: %llu of %llu after %u ms\n", what,
                    (unsigned long long)k->count, (unsigned long long)target, timeout_ms);
            exit(1);
        }
    }
    pthread_mutex_unlock(&k->mu);
}

static void on_group_message(void *user_data, const wps_event *event) {
    (void)event;
    counter *k = user_data;
    uint64_t t = now_ns();
    pthread_mutex_lock(&k->mu);
    k->count++;
    k->last_ns = t;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

typedef struct {
    wps_client *client;
    counter received;
} conn;

static conn *conn_open(const char *url, int reliable) {
    conn *c = calloc(1, sizeof *c);
    wps_options *o = NULL;
    wps_result r;
    if (!c) die("calloc", 0);
    counter_init(&c->received);
    if ((r = wps_options_new(&o)) != WPS_OK) die("wps_options_new", r);
    r = wps_options_set_protocol(o, reliable ? WPS_PROTOCOL_JSON_RELIABLE : WPS_PROTOCOL_JSON);
    if (r != WPS_OK) die("wps_options_set_protocol", r);
    if (POLL && (r = wps_options_set_dispatch_mode(o, WPS_DISPATCH_POLL)) != WPS_OK)
        die("wps_options_set_dispatch_mode", r);
    if (FF_BUFFER >= 0 && (r = wps_options_set_fire_and_forget_buffer(o, (uint32_t)FF_BUFFER)) != WPS_OK)
        die("wps_options_set_fire_and_forget_buffer", r);
    r = wps_client_new(url, o, &c->client);
    wps_options_free(o);
    if (r != WPS_OK) die("wps_client_new", r);
    r = wps_set_callback(c->client, WPS_EVENT_GROUP_MESSAGE, on_group_message, &c->received);
    if (r != WPS_OK) die("wps_set_callback", r);
    if ((r = wps_client_start(c->client, 30000)) != WPS_OK) die("wps_client_start", r);
    return c;
}

static void conn_close(conn *c) {
    wps_client_stop(c->client, 10000);
    wps_client_free(c->client);
    free(c);
}

/* Waits until `c` received `target` messages: on a condition variable, or in poll mode by running
 * the client's callbacks on this thread. */
static void conn_wait(conn *c, uint64_t target, uint32_t timeout_ms, const char *what) {
    if (!POLL) {
        counter_wait(&c->received, target, timeout_ms, what);
        return;
    }
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (c->received.count < target) {
        uint64_t now = now_ns();
        if (now >= deadline) {
            fprintf(stderr, "wps-bench-c: %s: %llu of %llu after %u ms\n", what,
                    (unsigned long long)c->received.count, (unsigned long long)target, timeout_ms);
            exit(1);
        }
        uint64_t left_ms = (deadline - now) / 1000000u + 1;
        wps_result r = wps_client_dispatch(c->client, 0, left_ms < 100 ? (uint32_t)left_ms : 100, NULL);
        if (r != WPS_OK) die("wps_client_dispatch", r);
    }
}

static void conn_join(conn *c, const char *group) {
    wps_result r = wps_join_group(c->client, group, 0, NULL);
    if (r != WPS_OK) die("wps_join_group", r);
}

static void conn_send(conn *c, const char *group, const char *data, size_t len, int acked) {
    wps_result r = wps_send_to_group(c->client, group, (const uint8_t *)data, len, WPS_DATA_TEXT,
                                     acked ? 0 : WPS_SEND_FIRE_AND_FORGET, 0, NULL);
    if (r != WPS_OK) die("wps_send_to_group", r);
}

/* Pipelined acked sends: at most `window` waiting for their ack. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t inflight;
    wps_result failure;
} window_state;

static void on_send_complete(void *user_data, const wps_event *event) {
    window_state *w = user_data;
    pthread_mutex_lock(&w->mu);
    w->inflight--;
    if (event->result != WPS_OK) w->failure = event->result;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void conn_send_window(conn *c, const char *data, size_t len, size_t count, size_t window) {
    window_state w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, WPS_OK};
    for (size_t i = 0; i < count; i++) {
        if (POLL) { /* completions run inside wps_client_dispatch, on this thread */
            while (w.inflight >= window) {
                wps_result r = wps_client_dispatch(c->client, 0, 100, NULL);
                if (r != WPS_OK) die("wps_client_dispatch", r);
            }
        }
        pthread_mutex_lock(&w.mu);
        while (w.inflight >= window) pthread_cond_wait(&w.cv, &w.mu);
        w.inflight++;
        pthread_mutex_unlock(&w.mu);
        wps_result r = wps_send_to_group_async(c->client, GROUP, (const uint8_t *)data, len, WPS_DATA_TEXT, 0,
                                               0, on_send_complete, &w, NULL);
        if (r != WPS_OK) die("wps_send_to_group_async", r);
    }
    uint64_t deadline = now_ns() + (uint64_t)WAIT_MS * 1000000u;
    while (POLL && w.inflight > 0 && now_ns() < deadline) {
        wps_result r = wps_client_dispatch(c->client, 0, 100, NULL);
        if (r != WPS_OK) die("wps_client_dispatch", r);
    }
    pthread_mutex_lock(&w.mu);
    while (w.inflight > 0) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    if (w.failure != WPS_OK) die("async send", w.failure);
}

typedef struct {
    size_t ff_count, ff4k_count, ack_count, pipe_count, window, rtt_count, connect_count, recover_count;
    size_t rel_count, fanout, fan_count, rounds;
    size_t stream_count, stream1k_count, stream_repeat;
    size_t steps[MAX_STEPS];
    size_t n_steps;
} params;

static double seconds_since(uint64_t t0) { return (double)(now_ns() - t0) / 1e9; }

static void scenario_msg(const char *url, const params *p) {
    conn *sub = conn_open(url, 0);
    conn_join(sub, GROUP);
    conn *pub = conn_open(url, 0);
    char small[65], *large = malloc(4097);
    memset(small, 'x', 64);
    small[64] = 0;
    memset(large, 'x', 4096);
    large[4096] = 0;

    for (int i = 0; i < WARM_UP; i++) conn_send(pub, GROUP, small, 64, 0);
    conn_wait(sub, WARM_UP, WAIT_MS, "warm-up");

    struct { const char *metric; const char *data; size_t len, count; } ff[2] = {
        {"ff_64", small, 64, p->ff_count}, {"ff_4k", large, 4096, p->ff4k_count}};
    for (int k = 0; k < 2; k++) {
        uint64_t base = counter_get(&sub->received), t0 = now_ns();
        for (size_t i = 0; i < ff[k].count; i++) conn_send(pub, GROUP, ff[k].data, ff[k].len, 0);
        double call_s = seconds_since(t0);
        conn_wait(sub, base + ff[k].count, WAIT_MS, ff[k].metric);
        emit(ff[k].metric, (double)ff[k].count / seconds_since(t0), "msg/s");
        /* Diagnostic: how fast the blocking calls return (publisher side alone). */
        char metric[32];
        snprintf(metric, sizeof metric, "%s_calls", ff[k].metric);
        emit(metric, (double)ff[k].count / call_s, "calls/s");
    }

    uint64_t base = counter_get(&sub->received), t0 = now_ns();
    for (size_t i = 0; i < p->ack_count; i++) conn_send(pub, GROUP, small, 64, 1);
    emit("acked_seq", (double)p->ack_count / seconds_since(t0), "msg/s");
    t0 = now_ns();
    conn_send_window(pub, small, 64, p->pipe_count, p->window);
    emit("acked_pipe", (double)p->pipe_count / seconds_since(t0), "msg/s");
    conn_wait(sub, base + p->ack_count + p->pipe_count, WAIT_MS, "acked deliveries");

    conn_join(pub, RTT_GROUP);
    double *samples = calloc(p->rtt_count ? p->rtt_count : 1, sizeof *samples);
    for (size_t i = 0; i < p->rtt_count; i++) {
        uint64_t started = now_ns();
        conn_send(pub, RTT_GROUP, small, 64, 0);
        conn_wait(pub, i + 1, WAIT_MS, "round trip");
        pthread_mutex_lock(&pub->received.mu);
        samples[i] = (double)(pub->received.last_ns - started) / 1e3;
        pthread_mutex_unlock(&pub->received.mu);
    }
    qsort(samples, p->rtt_count, sizeof *samples, cmp_double);
    emit("rtt_p50", percentile(samples, p->rtt_count, 50), "us");
    emit("rtt_p99", percentile(samples, p->rtt_count, 99), "us");
    emit("rtt_p999", percentile(samples, p->rtt_count, 99.9), "us");
    free(samples);
    free(large);
    conn_close(pub);
    conn_close(sub);
}

static void scenario_idle(const char *url, const params *p) {
    double rss = 0, threads = 0;
    char metric[64];
    size_t max = p->n_steps ? p->steps[p->n_steps - 1] : 0, n = 0;
    conn **clients = calloc(max ? max : 1, sizeof *clients);
    proc_status(&rss, &threads);
    emit("rss_kb_0", rss, "KiB");
    emit("threads_0", threads, "threads");
    for (size_t s = 0; s < p->n_steps; s++) {
        while (n < p->steps[s]) clients[n++] = conn_open(url, 1);
        proc_status(&rss, &threads);
        snprintf(metric, sizeof metric, "rss_kb_%zu", p->steps[s]);
        emit(metric, rss, "KiB");
        snprintf(metric, sizeof metric, "threads_%zu", p->steps[s]);
        emit(metric, threads, "threads");
    }
    for (size_t i = 0; i < n; i++) conn_close(clients[i]);
    free(clients);
}

/* Runs $BENCH_DROP_CMD '<id>'; returns the CLOCK_MONOTONIC ns at which the drop was requested. */
static uint64_t drop_connection(const char *connection_id) {
    const char *cmd = getenv("BENCH_DROP_CMD");
    char line[4096], out[64] = {0};
    if (!cmd) die("BENCH_DROP_CMD is not set", 0);
    snprintf(line, sizeof line, "%s '%s'", cmd, connection_id);
    FILE *f = popen(line, "r");
    if (!f) die("popen drop command", 0);
    if (!fgets(out, sizeof out, f)) out[0] = 0;
    if (pclose(f) != 0 || !out[0]) die("drop command failed", 0);
    return strtoull(out, NULL, 10);
}

static void scenario_connect(const char *url, const params *p) {
    size_t n = p->connect_count > p->recover_count ? p->connect_count : p->recover_count;
    double *samples = calloc(n ? n : 1, sizeof *samples);
    for (size_t i = 0; i < p->connect_count; i++) {
        uint64_t t0 = now_ns();
        conn *c = conn_open(url, 1);
        samples[i] = (double)(now_ns() - t0) / 1e6;
        conn_close(c);
    }
    qsort(samples, p->connect_count, sizeof *samples, cmp_double);
    emit("connect_ms", percentile(samples, p->connect_count, 50), "ms");

    conn *target = conn_open(url, 1);
    conn_join(target, RECOVERY_GROUP);
    conn *sender = conn_open(url, 1);
    char small[65];
    memset(small, 'x', 64);
    small[64] = 0;
    for (size_t i = 0; i < p->recover_count; i++) {
        char id[256];
        size_t len = 0;
        wps_result r = wps_client_get_connection_id(target->client, id, sizeof id, &len);
        if (r != WPS_OK) die("wps_client_get_connection_id", r);
        uint64_t dropped = drop_connection(id);
        conn_send(sender, RECOVERY_GROUP, small, 64, 1);
        conn_wait(target, i + 1, 30000, "recovery");
        pthread_mutex_lock(&target->received.mu);
        samples[i] = (double)(target->received.last_ns - dropped) / 1e6;
        pthread_mutex_unlock(&target->received.mu);
    }
    qsort(samples, p->recover_count, sizeof *samples, cmp_double);
    emit("recover_ms", percentile(samples, p->recover_count, 50), "ms");
    conn_close(sender);
    conn_close(target);
    free(samples);
}

/* Like counter_wait, but reports whether the target was reached instead of failing. */
static int counter_reached(counter *k, uint64_t target, uint32_t timeout_ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&k->mu);
    while (k->count < target) {
        if (pthread_cond_timedwait(&k->cv, &k->mu, &deadline) == ETIMEDOUT) break;
    }
    int reached = k->count >= target;
    pthread_mutex_unlock(&k->mu);
    return reached;
}

static void connection_id(conn *c, char *id, size_t cap) {
    size_t len = 0;
    wps_result r = wps_client_get_connection_id(c->client, id, cap, &len);
    if (r != WPS_OK) die("wps_client_get_connection_id", r);
}

/* Delivered rate of `count` messages to `c` since `t0` with `base` received before; counts what
 * did not arrive within WAIT_MS as lost. */
static double delivered_rate(conn *c, uint64_t base, size_t count, uint64_t t0, uint64_t *lost) {
    int complete = counter_reached(&c->received, base + count, WAIT_MS);
    pthread_mutex_lock(&c->received.mu);
    uint64_t got = c->received.count - base, last = c->received.last_ns;
    pthread_mutex_unlock(&c->received.mu);
    if (got < count) *lost += count - got;
    uint64_t end = complete ? now_ns() : last;
    return end > t0 ? (double)got / ((double)(end - t0) / 1e9) : 0;
}

/* The default reliable protocol: fire-and-forget and acked pipelined delivery to one reliable
 * subscriber, then a 1 -> fanout fan-out; delivered msg/s, loss, and subscribers cut off
 * (connection id changed). */
static void scenario_reliable(const char *url, const params *p) {
    char small[65], id0[256], id1[256];
    memset(small, 'x', 64);
    small[64] = 0;
    uint64_t lost = 0, cutoffs = 0;
    conn *sub = conn_open(url, 1);
    conn_join(sub, GROUP);
    connection_id(sub, id0, sizeof id0);
    conn *pub = conn_open(url, 0);

    uint64_t base = counter_get(&sub->received), t0 = now_ns();
    for (size_t i = 0; i < p->rel_count; i++) conn_send(pub, GROUP, small, 64, 0);
    emit("rel_ff_64", delivered_rate(sub, base, p->rel_count, t0, &lost), "msg/s");

    base = counter_get(&sub->received);
    t0 = now_ns();
    conn_send_window(pub, small, 64, p->pipe_count, p->window);
    emit("rel_pipe", delivered_rate(sub, base, p->pipe_count, t0, &lost), "msg/s");
    connection_id(sub, id1, sizeof id1);
    cutoffs += strcmp(id0, id1) != 0;
    conn_close(sub);

    size_t n = p->fanout;
    conn **subs = calloc(n ? n : 1, sizeof *subs);
    char (*ids)[256] = calloc(n ? n : 1, sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        subs[i] = conn_open(url, 1);
        conn_join(subs[i], GROUP);
        connection_id(subs[i], ids[i], sizeof ids[i]);
    }
    t0 = now_ns();
    for (size_t i = 0; i < p->fan_count; i++) conn_send(pub, GROUP, small, 64, 0);
    uint64_t delivered = 0;
    for (size_t i = 0; i < n; i++) {
        counter_reached(&subs[i]->received, p->fan_count, WAIT_MS);
        uint64_t got = counter_get(&subs[i]->received);
        delivered += got < p->fan_count ? got : p->fan_count;
    }
    double elapsed = seconds_since(t0);
    emit("rel_fanout", elapsed > 0 ? (double)delivered / elapsed : 0, "msg/s");
    lost += (uint64_t)n * p->fan_count - delivered;
    for (size_t i = 0; i < n; i++) {
        connection_id(subs[i], id1, sizeof id1);
        cutoffs += strcmp(ids[i], id1) != 0;
        conn_close(subs[i]);
    }
    free(subs);
    free(ids);
    emit("rel_lost", (double)lost, "msg");
    emit("rel_cutoffs", (double)cutoffs, "closes");
    conn_close(pub);
}

/* A thread waking about every millisecond until told to stop; with `read`, it reads both
 * clients' statistics at each wake-up. */
typedef struct {
    conn *a, *b;
    int read;
    int stop;
    uint64_t reads;
    pthread_t thread;
} stats_poller;

static void *stats_poll(void *arg) {
    stats_poller *s = arg;
    struct timespec period = {0, 1000000};
    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
        if (!s->read) {
            nanosleep(&period, NULL); /* the wake-up rate, ~1 kHz */
            continue;
        }
        wps_stats st;
        memset(&st, 0, sizeof st);
        st.struct_size = sizeof st;
        if (wps_client_get_stats(s->a->client, &st) != WPS_OK) die("wps_client_get_stats", 0);
        st.struct_size = sizeof st;
        if (wps_client_get_stats(s->b->client, &st) != WPS_OK) die("wps_client_get_stats", 0);
        s->reads += 2;
        nanosleep(&period, NULL); /* the polling rate, ~1 kHz */
    }
    return NULL;
}

static int cmp_double_desc(const void *a, const void *b) { return cmp_double(b, a); }

static double median(double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double_desc);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define MAX_ROUNDS 64

/* Statistics A/B: the phases of `msg` (fire-and-forget 64 B, acked blocking, acked pipelined)
 * in rounds of three arms, in rotating order so that drift counts against each: without an
 * extra thread, with a thread that only wakes at ~1 kHz, and with a thread reading
 * wps_client_get_stats on both clients at ~1 kHz. Reports the median of each phase per arm and
 * the ratios reads/none (what reading costs in all) and reads/wake (the reads alone, without
 * the cost of a thread waking 1,000 times a second). */
static void scenario_stats(const char *url, const params *p) {
    conn *sub = conn_open(url, 0);
    conn_join(sub, GROUP);
    conn *pub = conn_open(url, 0);
    char small[65];
    memset(small, 'x', 64);
    small[64] = 0;
    for (int i = 0; i < WARM_UP; i++) conn_send(pub, GROUP, small, 64, 0);
    conn_wait(sub, WARM_UP, WAIT_MS, "warm-up");
    size_t rounds = p->rounds < 1 ? 1 : p->rounds > MAX_ROUNDS ? MAX_ROUNDS : p->rounds;
    static double ff[3][MAX_ROUNDS], seq[3][MAX_ROUNDS], pipe[3][MAX_ROUNDS];
    double reads_per_s = 0;
    for (size_t r = 0; r < rounds; r++) {
        for (int k = 0; k < 3; k++) {
            int with_stats = (int)((r + (size_t)k) % 3); /* 0 none, 1 wake only, 2 reads */
            stats_poller poller = {pub, sub, with_stats == 2, 0, 0, 0};
            uint64_t started = now_ns();
            if (with_stats && pthread_create(&poller.thread, NULL, stats_poll, &poller) != 0) die("pthread_create", 0);
            uint64_t base = counter_get(&sub->received), t0 = now_ns();
            for (size_t i = 0; i < p->ff_count; i++) conn_send(pub, GROUP, small, 64, 0);
            conn_wait(sub, base + p->ff_count, WAIT_MS, "ff_64");
            ff[with_stats][r] = (double)p->ff_count / seconds_since(t0);
            t0 = now_ns();
            for (size_t i = 0; i < p->ack_count; i++) conn_send(pub, GROUP, small, 64, 1);
            seq[with_stats][r] = (double)p->ack_count / seconds_since(t0);
            t0 = now_ns();
            conn_send_window(pub, small, 64, p->pipe_count, p->window);
            pipe[with_stats][r] = (double)p->pipe_count / seconds_since(t0);
            conn_wait(sub, base + p->ff_count + p->ack_count + p->pipe_count, WAIT_MS, "acked deliveries");
            if (with_stats) {
                __atomic_store_n(&poller.stop, 1, __ATOMIC_RELEASE);
                pthread_join(poller.thread, NULL);
                if (poller.read) reads_per_s += (double)poller.reads / seconds_since(started) / (double)rounds;
            }
        }
    }
    struct { const char *metric; double (*v)[MAX_ROUNDS]; } phases[3] = {
        {"ff_64", ff}, {"acked_seq", seq}, {"acked_pipe", pipe}};
    for (int k = 0; k < 3; k++) {
        char metric[48];
        double none = median(phases[k].v[0], rounds), wake = median(phases[k].v[1], rounds),
               reads = median(phases[k].v[2], rounds);
        snprintf(metric, sizeof metric, "%s_no_thread", phases[k].metric);
        emit(metric, none, "msg/s");
        snprintf(metric, sizeof metric, "%s_wake_1khz", phases[k].metric);
        emit(metric, wake, "msg/s");
        snprintf(metric, sizeof metric, "%s_stats_1khz", phases[k].metric);
        emit(metric, reads, "msg/s");
        snprintf(metric, sizeof metric, "%s_ratio_stats_vs_none", phases[k].metric);
        emit(metric, reads / none, "x");
        snprintf(metric, sizeof metric, "%s_ratio_stats_vs_wake", phases[k].metric);
        emit(metric, reads / wake, "x");
    }
    emit("stats_reads", reads_per_s, "reads/s");
    conn_close(pub);
    conn_close(sub);
}

/* Group stream frames received by one client: fragments (frames before the terminal one, and a
 * terminal frame's data), terminal frames, and whether a stream failed. */
typedef struct {
    counter fragments;
    counter ends;
    int failed;
} stream_rx;

static void on_stream_frame(void *user_data, const wps_event *event) {
    stream_rx *rx = user_data;
    uint64_t t = now_ns();
    if (!event->end_of_stream || event->data_len > 0) {
        pthread_mutex_lock(&rx->fragments.mu);
        rx->fragments.count++;
        rx->fragments.last_ns = t;
        pthread_cond_broadcast(&rx->fragments.cv);
        pthread_mutex_unlock(&rx->fragments.mu);
    }
    if (event->end_of_stream) {
        pthread_mutex_lock(&rx->ends.mu);
        if (event->error_name) rx->failed = 1;
        rx->ends.count++;
        pthread_cond_broadcast(&rx->ends.cv);
        pthread_mutex_unlock(&rx->ends.mu);
    }
}

static void stream_publish(conn *c, const char *data, size_t len, size_t count) {
    wps_stream *s = NULL;
    wps_result r = wps_stream_open(c->client, "s", NULL, 0, 0, 0, &s);
    if (r != WPS_OK) die("wps_stream_open", r);
    for (size_t i = 0; i < count; i++) {
        if ((r = wps_stream_write(s, (const uint8_t *)data, len, WPS_DATA_TEXT, 0)) != WPS_OK)
            die("wps_stream_write", r);
    }
    if ((r = wps_stream_end(s, 0)) != WPS_OK) die("wps_stream_end", r);
    wps_stream_free(s);
}

/* One publisher, one subscriber (plain JSON): fragments per second from the first write until
 * the subscriber's callback saw the last fragment, for 64-byte and 1 KiB fragments, after a
 * 200-fragment warm-up stream; each size over stream_repeat streams of stream_count
 * (stream1k_count) fragments, each waited for to its end. */
static void scenario_stream(const char *url, const params *p) {
    static stream_rx rx;
    counter_init(&rx.fragments);
    counter_init(&rx.ends);
    conn *sub = conn_open(url, 0);
    wps_result r = wps_set_callback(sub->client, WPS_EVENT_STREAM, on_stream_frame, &rx);
    if (r != WPS_OK) die("wps_set_callback", r);
    conn_join(sub, "s");
    conn *pub = conn_open(url, 0);
    char *data = malloc(1025);
    memset(data, 'x', 1024);
    data[1024] = 0;
    stream_publish(pub, data, 64, WARM_UP);
    counter_wait(&rx.ends, 1, WAIT_MS, "warm-up stream");
    uint64_t streams = 1;
    struct { const char *metric; size_t len, count; } sizes[2] = {
        {"stream_64", 64, p->stream_count}, {"stream_1k", 1024, p->stream1k_count}};
    for (int k = 0; k < 2; k++) {
        double busy_s = 0;
        for (size_t i = 0; i < p->stream_repeat; i++) {
            uint64_t base = counter_get(&rx.fragments), t0 = now_ns();
            stream_publish(pub, data, sizes[k].len, sizes[k].count);
            counter_wait(&rx.fragments, base + sizes[k].count, WAIT_MS, sizes[k].metric);
            pthread_mutex_lock(&rx.fragments.mu);
            busy_s += (double)(rx.fragments.last_ns - t0) / 1e9;
            pthread_mutex_unlock(&rx.fragments.mu);
            counter_wait(&rx.ends, ++streams, WAIT_MS, "the end of the stream");
        }
        emit(sizes[k].metric, (double)(sizes[k].count * p->stream_repeat) / busy_s, "fragments/s");
    }
    if (rx.failed) die("a stream ended in error", 0);
    free(data);
    conn_close(pub);
    conn_close(sub);
}

static int parse_param(params *p, const char *arg) {
    const char *eq = strchr(arg, '=');
    if (!eq) return 0;
    size_t klen = (size_t)(eq - arg);
    const char *v = eq + 1;
    struct { const char *name; size_t *field; } fields[] = {
        {"ff_count", &p->ff_count},       {"ff4k_count", &p->ff4k_count},
        {"ack_count", &p->ack_count},     {"pipe_count", &p->pipe_count},
        {"window", &p->window},           {"rtt_count", &p->rtt_count},
        {"connect_count", &p->connect_count}, {"recover_count", &p->recover_count},
        {"rel_count", &p->rel_count},     {"fanout", &p->fanout},
        {"fan_count", &p->fan_count},     {"rounds", &p->rounds},
        {"stream_count", &p->stream_count},
        {"stream1k_count", &p->stream1k_count}, {"stream_repeat", &p->stream_repeat}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (strlen(fields[i].name) == klen && strncmp(arg, fields[i].name, klen) == 0) {
            *fields[i].field = strtoull(v, NULL, 10);
            return 1;
        }
    }
    if (klen == 5 && strncmp(arg, "steps", 5) == 0) {
        p->n_steps = 0;
        for (const char *s = v; *s && p->n_steps < MAX_STEPS;) {
            char *end;
            p->steps[p->n_steps++] = strtoull(s, &end, 10);
            s = *end == ',' ? end + 1 : end;
            if (end == s && *s) return 0;
        }
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    params p = {20000, 5000, 2000, 10000, 256, 2000, 20, 5, 20000, 100, 200, 5, 20000, 10000, 5,
                {1, 100, 1000}, 3};
    const char *url = getenv("BENCH_URL");
    if (argc >= 2 && strcmp(argv[1], "c-poll") == 0) {
        IMPL = "c-poll";
        POLL = 1;
    } else if (argc >= 2 && strcmp(argv[1], "c-sync") == 0) {
        IMPL = "c-sync";
        FF_BUFFER = 0;
    }
    if (argc < 3 || strcmp(argv[1], IMPL) != 0 || !url) {
        fprintf(stderr, "usage: BENCH_URL=... wps-bench-c c|c-poll|c-sync msg|idle|connect|reliable|stats|stream [key=value ...]\n");
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        if (!parse_param(&p, argv[i])) {
            fprintf(stderr, "wps-bench-c: bad parameter %s\n", argv[i]);
            return 2;
        }
    }
    if (p.window == 0) p.window = 1;
    if (strcmp(argv[2], "msg") == 0) scenario_msg(url, &p);
    else if (strcmp(argv[2], "idle") == 0) scenario_idle(url, &p);
    else if (strcmp(argv[2], "connect") == 0) scenario_connect(url, &p);
    else if (strcmp(argv[2], "reliable") == 0 && !POLL) scenario_reliable(url, &p);
    else if (strcmp(argv[2], "stats") == 0 && !POLL) scenario_stats(url, &p);
    else if (strcmp(argv[2], "stream") == 0 && !POLL) scenario_stream(url, &p);
    else {
        fprintf(stderr, "wps-bench-c: unknown scenario %s (msg, idle, connect, reliable, stats, stream)\n", argv[2]);
        return 2;
    }
    return 0;
}
