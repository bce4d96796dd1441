/* One client of the chaos suite (scripts/chaos.sh), linked against libwebpubsub_client.so.
 *
 *   chaos_client --role pub|sub --protocol json|protobuf --id NAME --url URL --group G
 *                --out FILE [--rate MSGS_PER_S] [--window N] [--ff-every K] [--max-seconds S]
 *                [--offline-queue N]
 *
 * A publisher sends acked messages with the _async API, at most --window in flight, paced at
 * --rate, and every K-th message fire-and-forget. With --offline-queue (at most N operations)
 * it keeps publishing while disconnected: the library queues its sends (acked and
 * fire-and-forget) and sends them once connected; each send records whether the client was
 * connected when it was made. Each payload reads "P=<id>;C=<counter>;K=a;"
 * (K=f for fire-and-forget) followed by padding. A subscriber joins the group and records what
 * it receives. Both stop when stdin reaches end of file (or after --max-seconds) and write JSON
 * lines to --out: events with connection ids, messages with sequence ids, ack outcomes, the
 * counters of async calls accepted and completions received, SESSION_LOST (with the last
 * sequence id), STOPPED, and threads, open fds and RSS at start and end. The orchestrator (tests/chaos/chaos.py) reads the file afterwards. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "webpubsub_client.h"
#include "chaos_common.h"

/* A JSON string literal of s (ASCII control characters and quotes escaped) into buf. */
static const char *jstr(const char *s, char *buf, size_t cap) {
    if (!s) { snprintf(buf, cap, "null"); return buf; }
    size_t o = 0;
    buf[o++] = '"';
    for (; *s && o + 8 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') { buf[o++] = '\\'; buf[o++] = (char)ch; }
        else if (ch < 0x20) o += (size_t)snprintf(buf + o, cap - o, "\\u%04x", ch);
        else buf[o++] = (char)ch;
    }
    buf[o++] = '"';
    buf[o] = 0;
    return buf;
}

/* ---- shared state ------------------------------------------------------------------------ */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static int stopping;            /* stdin closed or deadline passed */
static long async_ok;           /* _async calls that returned WPS_OK */
static long completions;        /* completions received for them */
static long double_completions; /* completions for an operation already completed */
static long stopped_events;
static long connected_events, disconnected_events;
static char current_conn[256];

/* Publisher: one byte per counter: 0 not sent, 1 in flight, 2 completed. */
static unsigned char *state;
static size_t state_cap;
static long inflight;
static uint64_t low_unfinished = 1; /* every counter below is completed or fire-and-forget */
static uint64_t next_counter = 1;
static long acked_ok, acked_dup, acked_failed, ff_sent, ff_refused, send_refused, sent_offline;

static const char *id = "c";
static const char *role = "sub";

static void wait_locked_until(int64_t deadline_ms) {
    int64_t now = mono_ms();
    if (deadline_ms <= now) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = ts.tv_nsec + (deadline_ms - now) % 1000 * 1000000LL;
    ts.tv_sec += (deadline_ms - now) / 1000 + ns / 1000000000LL;
    ts.tv_nsec = ns % 1000000000LL;
    pthread_cond_timedwait(&cv, &mu, &ts);
}

/* ---- callbacks --------------------------------------------------------------------------- */

static void on_connected(void *ud, const wps_event *e) {
    (void)ud;
    char b[300];
    pthread_mutex_lock(&mu);
    connected_events++;
    snprintf(current_conn, sizeof current_conn, "%s", e->connection_id ? e->connection_id : "");
    pthread_mutex_unlock(&mu);
    emit("\"k\":\"connected\",\"conn\":%s", jstr(e->connection_id, b, sizeof b));
}

static void on_disconnected(void *ud, const wps_event *e) {
    (void)ud;
    char b[300], m[600];
    pthread_mutex_lock(&mu);
    disconnected_events++;
    /* The counters waiting for their ack now: the library sends them again on the next
     * connection, so a subscriber may get them twice if this connection id is not recovered. */
    size_t cap = 64, n = 0;
    uint64_t *list = malloc(cap * sizeof *list);
    for (uint64_t c = low_unfinished; c < next_counter && c < state_cap; c++)
        if (state[c] == 1) {
            if (n == cap) { cap *= 2; list = realloc(list, cap * sizeof *list); }
            list[n++] = c;
        }
    pthread_mutex_unlock(&mu);
    size_t scap = 32 + n * 21;
    char *s = malloc(scap);
    size_t o = 0;
    s[o++] = '[';
    for (size_t i = 0; i < n; i++) o += (size_t)snprintf(s + o, scap - o, i ? ",%llu" : "%llu", (unsigned long long)list[i]);
    s[o++] = ']';
    s[o] = 0;
    emit("\"k\":\"disconnected\",\"conn\":%s,\"message\":%s,\"inflight\":%s", jstr(e->connection_id, b, sizeof b),
         jstr(e->message, m, sizeof m), s);
    free(s);
    free(list);
}

static void on_session_lost(void *ud, const wps_event *e) {
    (void)ud;
    char b[300], m[600];
    emit("\"k\":\"session_lost\",\"conn\":%s,\"last_seq\":%llu,\"message\":%s", jstr(e->connection_id, b, sizeof b),
         (unsigned long long)e->sequence_id, jstr(e->message, m, sizeof m));
}

static void on_stopped(void *ud, const wps_event *e) {
    (void)ud;
    char m[600];
    pthread_mutex_lock(&mu);
    stopped_events++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    emit("\"k\":\"stopped\",\"message\":%s", jstr(e->message, m, sizeof m));
}

static void on_rejoin_failed(void *ud, const wps_event *e) {
    (void)ud;
    char g[300];
    emit("\"k\":\"rejoin_failed\",\"group\":%s,\"rc\":\"%s\"", jstr(e->group, g, sizeof g), wps_result_name(e->result));
}

/* Finds "P=<id>;C=<n>;K=<k>;" in a payload. */
static int parse_payload(const uint8_t *d, size_t len, char *pub, size_t pcap, unsigned long long *c, char *kind) {
    const char *s = memmem(d, len, "P=", 2);
    if (!s) return 0;
    s += 2;
    const char *end = (const char *)d + len;
    size_t i = 0;
    while (s < end && *s != ';' && i + 1 < pcap) pub[i++] = *s++;
    pub[i] = 0;
    if (s + 3 >= end || memcmp(s, ";C=", 3) != 0) return 0;
    s += 3;
    char *e;
    *c = strtoull(s, &e, 10);
    if (e + 4 > end || memcmp(e, ";K=", 3) != 0) return 0;
    *kind = e[3];
    return 1;
}

static void on_group_message(void *ud, const wps_event *e) {
    (void)ud;
    char pub[64], b[300];
    unsigned long long c = 0;
    char kind = '?';
    if (!parse_payload(e->data, e->data_len, pub, sizeof pub, &c, &kind)) {
        emit("\"k\":\"garbage\",\"len\":%zu", e->data_len);
        return;
    }
    pthread_mutex_lock(&mu);
    char conn[256];
    snprintf(conn, sizeof conn, "%s", current_conn);
    pthread_mutex_unlock(&mu);
    emit("\"k\":\"msg\",\"conn\":%s,\"seq\":%llu,\"p\":\"%s\",\"c\":%llu,\"kind\":\"%c\",\"dt\":%u",
         jstr(conn, b, sizeof b), (unsigned long long)e->sequence_id, pub, c, kind, e->data_type);
}

static void on_send_complete(void *ctx, const wps_event *e) {
    uint64_t c = (uint64_t)(uintptr_t)ctx;
    pthread_mutex_lock(&mu);
    completions++;
    int twice = c >= state_cap || state[c] != 1;
    if (twice) double_completions++;
    else {
        state[c] = 2;
        inflight--;
        if (e->result == WPS_OK) { acked_ok++; if (e->is_duplicate) acked_dup++; }
        else acked_failed++;
        while (low_unfinished < next_counter && low_unfinished < state_cap && state[low_unfinished] != 1)
            low_unfinished++;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    emit("\"k\":\"ack\",\"c\":%llu,\"rc\":\"%s\",\"dup\":%u,\"twice\":%d", (unsigned long long)c,
         wps_result_name(e->result), e->is_duplicate, twice);
}

/* A fire-and-forget send made with the offline queue on: WPS_OK once written. */
static void on_ff_complete(void *ctx, const wps_event *e) {
    uint64_t c = (uint64_t)(uintptr_t)ctx;
    pthread_mutex_lock(&mu);
    completions++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    emit("\"k\":\"ff_done\",\"c\":%llu,\"rc\":\"%s\"", (unsigned long long)c, wps_result_name(e->result));
}

static void on_other_complete(void *ctx, const wps_event *e) {
    (void)ctx;
    pthread_mutex_lock(&mu);
    completions++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    emit("\"k\":\"op_done\",\"op\":%u,\"rc\":\"%s\"", e->op, wps_result_name(e->result));
}

/* ---- stdin watcher: end of file means stop ----------------------------------------------- */

static void *stdin_watch(void *arg) {
    (void)arg;
    char buf[256];
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR)) break;
    }
    pthread_mutex_lock(&mu);
    stopping = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* ---- main -------------------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr, "usage: chaos_client --role pub|sub --protocol json|protobuf --id NAME --url URL "
                    "--group G --out FILE [--rate N] [--window N] [--ff-every K] [--max-seconds S] "
                    "[--offline-queue N]\n");
    exit(2);
}

static void ensure_state(uint64_t c) {
    if (c < state_cap) return;
    size_t cap = state_cap ? state_cap : 4096;
    while (cap <= c) cap *= 2;
    state = realloc(state, cap);
    memset(state + state_cap, 0, cap - state_cap);
    state_cap = cap;
}

int main(int argc, char **argv) {
    const char *protocol = "json", *url = NULL, *group = "chaos", *path = NULL;
    double rate = 50;
    long window = 64, ff_every = 10, max_seconds = 900, offline_queue = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) usage();
        const char *k = argv[i], *v = argv[++i];
        if (!strcmp(k, "--role")) role = v;
        else if (!strcmp(k, "--protocol")) protocol = v;
        else if (!strcmp(k, "--id")) id = v;
        else if (!strcmp(k, "--url")) url = v;
        else if (!strcmp(k, "--group")) group = v;
        else if (!strcmp(k, "--out")) path = v;
        else if (!strcmp(k, "--rate")) rate = atof(v);
        else if (!strcmp(k, "--window")) window = atol(v);
        else if (!strcmp(k, "--ff-every")) ff_every = atol(v);
        else if (!strcmp(k, "--max-seconds")) max_seconds = atol(v);
        else if (!strcmp(k, "--offline-queue")) offline_queue = atol(v);
        else usage();
    }
    int pub = !strcmp(role, "pub");
    if (!url || !path || (!pub && strcmp(role, "sub")) || rate <= 0 || window < 1) usage();
    if (!open_output(path)) return 2;
    cond_init_monotonic(&cv);
    int64_t hard_deadline = t0 + max_seconds * 1000;

    wps_options *o = NULL;
    wps_options_new(&o);
    wps_options_set_protocol(o, !strcmp(protocol, "protobuf") ? WPS_PROTOCOL_PROTOBUF_RELIABLE : WPS_PROTOCOL_JSON_RELIABLE);
    wps_options_set_keep_alive(o, 2000, 8000);      /* notice half-open connections within seconds */
    wps_options_set_ack_timeout_ms(o, 10000);
    wps_options_set_connect_timeout_ms(o, 5000);
    wps_options_set_reconnect_retry(o, UINT32_MAX, WPS_RETRY_EXPONENTIAL, 200, 2000);
    if (offline_queue > 0) wps_options_set_offline_queue(o, (size_t)offline_queue, 0);
    wps_client *c = NULL;
    int32_t rc = wps_client_new(url, o, &c);
    wps_options_free(o);
    if (rc != WPS_OK) { emit("\"k\":\"fatal\",\"what\":\"new\",\"rc\":\"%s\"", wps_result_name(rc)); return 1; }
    wps_set_callback(c, WPS_EVENT_CONNECTED, on_connected, NULL);
    wps_set_callback(c, WPS_EVENT_DISCONNECTED, on_disconnected, NULL);
    wps_set_callback(c, WPS_EVENT_STOPPED, on_stopped, NULL);
    wps_set_callback(c, WPS_EVENT_SESSION_LOST, on_session_lost, NULL);
    wps_set_callback(c, WPS_EVENT_REJOIN_GROUP_FAILED, on_rejoin_failed, NULL);
    wps_set_callback(c, WPS_EVENT_ACK, on_other_complete, NULL);
    if (!pub) wps_set_callback(c, WPS_EVENT_GROUP_MESSAGE, on_group_message, NULL);

    /* The watcher ends at end of file; it is joined before the end is measured, and left out
     * of the thread count at the start, so the two counts compare the library's threads. */
    pthread_t watcher;
    pthread_create(&watcher, NULL, stdin_watch, NULL);

    long starts = 0;
    /* Start (the proxy may be faulty already: try until the deadline). */
    for (;;) {
        rc = wps_client_start(c, 15000);
        if (rc == WPS_OK) { starts++; break; }
        emit("\"k\":\"start_failed\",\"rc\":\"%s\"", wps_result_name(rc));
        if (mono_ms() > t0 + 60000) { emit("\"k\":\"fatal\",\"what\":\"start\""); return 1; }
    }
    if (!pub) {
        for (;;) {
            rc = wps_join_group(c, group, 0, NULL);
            if (rc == WPS_OK) break;
            emit("\"k\":\"join_failed\",\"rc\":\"%s\"", wps_result_name(rc));
            if (mono_ms() > t0 + 60000) { emit("\"k\":\"fatal\",\"what\":\"join\""); return 1; }
        }
    }
    emit("\"k\":\"start\",\"id\":\"%s\",\"impl\":\"c\",\"role\":\"%s\",\"protocol\":\"%s\",\"threads\":%ld,"
         "\"fds\":%ld,\"rss_kb\":%ld",
         id, role, protocol, status_field("Threads") - 1, fd_count(), status_field("VmRSS"));

    if (pub) {
        /* Payload sizes vary between 40 and ~300 bytes; binary on protobuf, text on JSON. */
        uint32_t dt = !strcmp(protocol, "protobuf") ? WPS_DATA_BINARY : WPS_DATA_TEXT;
        double interval_ms = 1000.0 / rate;
        int64_t next_at = mono_ms();
        char payload[512];
        uint64_t n = 0;
        pthread_mutex_lock(&mu);
        while (!stopping && mono_ms() < hard_deadline) {
            /* Pacing, and the bounded window of operations in flight. */
            if (mono_ms() < next_at) { wait_locked_until(next_at); continue; }
            if (inflight >= window) { wait_locked_until(mono_ms() + 200); continue; }
            uint64_t counter = next_counter;
            int ff = ff_every > 0 && (n % (uint64_t)ff_every) == (uint64_t)ff_every - 1;
            ensure_state(counter);
            if (!ff) { state[counter] = 1; inflight++; }
            pthread_mutex_unlock(&mu);
            int len = snprintf(payload, sizeof payload, "P=%s;C=%llu;K=%c;", id, (unsigned long long)counter, ff ? 'f' : 'a');
            int pad = (int)((counter * 2654435761u) % 260);
            memset(payload + len, 'x', (size_t)pad);
            len += pad;
            /* Whether this send may wait in the offline queue (the state can change during the
             * call; a send made just as the client connects counts as offline). */
            int offline = !wps_client_is_connected(c);
            if (ff && offline_queue > 0) {
                /* Async, so that the publisher goes on while it waits in the offline queue. */
                rc = wps_send_to_group_async(c, group, (const uint8_t *)payload, (size_t)len, dt, WPS_SEND_FIRE_AND_FORGET,
                                             0, on_ff_complete, (void *)(uintptr_t)counter, NULL);
            } else if (ff) {
                rc = wps_send_to_group(c, group, (const uint8_t *)payload, (size_t)len, dt, WPS_SEND_FIRE_AND_FORGET, 0, NULL);
            } else {
                rc = wps_send_to_group_async(c, group, (const uint8_t *)payload, (size_t)len, dt, 0, 0,
                                             on_send_complete, (void *)(uintptr_t)counter, NULL);
            }
            pthread_mutex_lock(&mu);
            if (rc == WPS_OK) {
                if (ff) ff_sent++;
                if (!ff || offline_queue > 0) async_ok++;
                if (offline) sent_offline++;
                next_counter = counter + 1;
                n++;
                next_at += (int64_t)interval_ms;
                if (next_at < mono_ms() - 1000) next_at = mono_ms(); /* no catch-up burst after a stall */
                pthread_mutex_unlock(&mu);
                if (ff) emit("\"k\":\"ff\",\"c\":%llu,\"offline\":%d", (unsigned long long)counter, offline);
                else emit("\"k\":\"sent\",\"c\":%llu,\"offline\":%d", (unsigned long long)counter, offline);
                pthread_mutex_lock(&mu);
            } else {
                /* Not accepted (not connected, send queue full): no completion follows. Try the
                 * same counter again shortly; nothing later was sent, so order is kept. */
                if (ff) ff_refused++;
                else { state[counter] = 0; inflight--; send_refused++; }
                pthread_mutex_unlock(&mu);
                emit("\"k\":\"refused\",\"c\":%llu,\"ff\":%d,\"rc\":\"%s\"", (unsigned long long)counter, ff, wps_result_name(rc));
                pthread_mutex_lock(&mu);
                wait_locked_until(mono_ms() + 100);
            }
        }
        /* Let what is in flight complete (acks, or the library's own timeouts and retries). */
        int64_t drain_deadline = mono_ms() + 120000;
        while (inflight > 0 && mono_ms() < drain_deadline) wait_locked_until(drain_deadline);
        long left = inflight;
        pthread_mutex_unlock(&mu);
        emit("\"k\":\"drained\",\"inflight\":%ld", left);
    } else {
        pthread_mutex_lock(&mu);
        while (!stopping && mono_ms() < hard_deadline) wait_locked_until(hard_deadline);
        pthread_mutex_unlock(&mu);
    }

    /* Stop asynchronously (one more _async call with its completion), then wait for STOPPED. */
    pthread_mutex_lock(&mu);
    long stopped_before = stopped_events;
    pthread_mutex_unlock(&mu);
    rc = wps_client_stop_async(c, NULL, NULL);
    pthread_mutex_lock(&mu);
    if (rc == WPS_OK) async_ok++;
    int64_t stop_deadline = mono_ms() + 20000;
    while ((stopped_events == stopped_before || completions < async_ok) && mono_ms() < stop_deadline)
        wait_locked_until(stop_deadline);
    pthread_mutex_unlock(&mu);
    int connected_at_end = wps_client_is_connected(c);
    if (stopping) pthread_join(watcher, NULL);
    else pthread_cancel(watcher), pthread_join(watcher, NULL); /* --max-seconds passed first */
    long threads = status_field("Threads"), fds = fd_count(), rss = status_field("VmRSS");
    wps_client_free(c);
    pthread_mutex_lock(&mu);
    emit("\"k\":\"end\",\"stop_rc\":\"%s\",\"starts\":%ld,\"stopped_events\":%ld,\"connected_at_end\":%d,"
         "\"async_ok\":%ld,\"completions\":%ld,\"double_completions\":%ld,\"connected_events\":%ld,"
         "\"disconnected_events\":%ld,\"acked_ok\":%ld,\"acked_dup\":%ld,\"acked_failed\":%ld,\"ff_sent\":%ld,"
         "\"ff_refused\":%ld,\"send_refused\":%ld,\"sent_offline\":%ld,\"offline_queue\":%ld,\"inflight\":%ld,"
         "\"threads\":%ld,\"fds\":%ld,\"rss_kb\":%ld",
         wps_result_name(rc), starts, stopped_events, connected_at_end, async_ok, completions, double_completions,
         connected_events, disconnected_events, acked_ok, acked_dup, acked_failed, ff_sent, ff_refused, send_refused,
         sent_offline, offline_queue, inflight, threads, fds, rss);
    pthread_mutex_unlock(&mu);
    fclose(out);
    free(state);
    return 0;
}
