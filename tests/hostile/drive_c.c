/* Hostile-service driver for the C API: runs the standard script against one URL and prints
 * what it observed as JSON lines (see tests/hostile/run.py).
 *
 *   drive_c URL [--ca-file PEM] [--wait-ms N]
 *
 * Script: options (reliable JSON; reconnect retry 2 tries, fixed 100 ms; recovery timeout 2 s),
 * every event registered, start (blocking, 3 s); if started: join group "g", send text "hi"
 * to "g" (both blocking); then wait until a server message "END", STOPPED, or the deadline;
 * then stop and free. Exits 0 unless a call misbehaves in a way that is not a result code. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "webpubsub_client.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static int got_end, got_stopped;
static struct timespec t0;

static double elapsed_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0.tv_sec) * 1e3 + (double)(t.tv_nsec - t0.tv_nsec) / 1e6;
}

/* A JSON string (or null) for at most `max` bytes of `s`. */
static void put_json_str(FILE *f, const char *s, size_t len, size_t max) {
    if (!s) { fputs("null", f); return; }
    fputc('"', f);
    for (size_t i = 0; i < len && i < max; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static void put_str(FILE *f, const char *key, const char *s) {
    fprintf(f, ",\"%s\":", key);
    put_json_str(f, s, s ? strlen(s) : 0, 4096);
}

static const char *event_name(uint32_t type) {
    switch (type) {
    case WPS_EVENT_CONNECTED: return "connected";
    case WPS_EVENT_DISCONNECTED: return "disconnected";
    case WPS_EVENT_STOPPED: return "stopped";
    case WPS_EVENT_SERVER_MESSAGE: return "server_message";
    case WPS_EVENT_GROUP_MESSAGE: return "group_message";
    case WPS_EVENT_REJOIN_GROUP_FAILED: return "rejoin_group_failed";
    case WPS_EVENT_ACK: return "ack";
    case WPS_EVENT_RECOVERING: return "recovering";
    case WPS_EVENT_RECOVERED: return "recovered";
    case WPS_EVENT_SESSION_LOST: return "session_lost";
    case WPS_EVENT_STREAM: return "stream";
    case WPS_EVENT_GROUP_STATE: return "group_state";
    default: return "unknown";
    }
}

static void on_event(void *user_data, const wps_event *e) {
    (void)user_data;
    pthread_mutex_lock(&mu);
    printf("{\"t\":%.1f,\"event\":\"%s\"", elapsed_ms(), event_name(e->type));
    put_str(stdout, "connection_id", e->connection_id);
    put_str(stdout, "message", e->message);
    put_str(stdout, "group", e->group);
    put_str(stdout, "error_name", e->error_name);
    if (e->type == WPS_EVENT_REJOIN_GROUP_FAILED || e->type == WPS_EVENT_ACK)
        printf(",\"result\":\"%s\"", wps_result_name(e->result));
    if (e->data) {
        printf(",\"data_type\":%u,\"data_len\":%zu,\"sequence_id\":%llu,\"data\":", e->data_type, e->data_len,
               (unsigned long long)e->sequence_id);
        put_json_str(stdout, (const char *)e->data, e->data_len, 200);
    }
    printf("}\n");
    fflush(stdout);
    if (e->type == WPS_EVENT_SERVER_MESSAGE && e->data_len == 3 && memcmp(e->data, "END", 3) == 0) got_end = 1;
    if (e->type == WPS_EVENT_STOPPED) got_stopped = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Prints the outcome of one call. */
static void report(const char *op, int32_t rc, double started) {
    pthread_mutex_lock(&mu);
    printf("{\"t\":%.1f,\"op\":\"%s\",\"result\":\"%s\",\"ms\":%.1f", elapsed_ms(), op, wps_result_name(rc),
           elapsed_ms() - started);
    if (rc != WPS_OK) {
        put_str(stdout, "message", wps_last_error_message());
        put_str(stdout, "error_name", wps_last_error_name());
    }
    printf("}\n");
    fflush(stdout);
    pthread_mutex_unlock(&mu);
}

#define SETUP(expr)                                                                            \
    do {                                                                                       \
        int32_t rc_ = (expr);                                                                  \
        if (rc_ != WPS_OK) {                                                                   \
            fprintf(stderr, "%s: %s\n", #expr, wps_result_name(rc_));                         \
            return 2;                                                                          \
        }                                                                                      \
    } while (0)

int main(int argc, char **argv) {
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &attr);
    pthread_condattr_destroy(&attr);

    const char *url = NULL, *ca_file = NULL;
    long wait_ms = 8000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ca-file") == 0 && i + 1 < argc) ca_file = argv[++i];
        else if (strcmp(argv[i], "--wait-ms") == 0 && i + 1 < argc) wait_ms = strtol(argv[++i], NULL, 10);
        else url = argv[i];
    }
    if (!url) {
        fprintf(stderr, "usage: %s URL [--ca-file PEM] [--wait-ms N]\n", argv[0]);
        return 2;
    }

    wps_options *o = NULL;
    SETUP(wps_options_new(&o));
    SETUP(wps_options_set_protocol(o, WPS_PROTOCOL_JSON_RELIABLE));
    SETUP(wps_options_set_reconnect_retry(o, 2, WPS_RETRY_FIXED, 100, 100));
    SETUP(wps_options_set_recovery_timeout_ms(o, 2000));
    if (ca_file) SETUP(wps_options_set_ca_file(o, ca_file));
    wps_client *c = NULL;
    int32_t rc = wps_client_new(url, o, &c);
    wps_options_free(o);
    report("new", rc, 0);
    if (rc != WPS_OK) return 0;
    for (uint32_t t = WPS_EVENT_CONNECTED; t <= WPS_EVENT_ACK; t++) SETUP(wps_set_callback(c, t, on_event, NULL));

    double started = elapsed_ms();
    rc = wps_client_start(c, 3000);
    report("start", rc, started);
    if (rc == WPS_OK) {
        started = elapsed_ms();
        report("join", wps_join_group(c, "g", 0, NULL), started);
        started = elapsed_ms();
        report("send", wps_send_to_group(c, "g", (const uint8_t *)"hi", 2, WPS_DATA_TEXT, 0, 0, NULL), started);

        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_sec += wait_ms / 1000;
        dl.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (dl.tv_nsec >= 1000000000L) { dl.tv_sec++; dl.tv_nsec -= 1000000000L; }
        pthread_mutex_lock(&mu);
        while (!got_end && !got_stopped)
            if (pthread_cond_timedwait(&cv, &mu, &dl) == ETIMEDOUT) break;
        const char *why = got_end ? "END" : got_stopped ? "STOPPED" : "deadline";
        printf("{\"t\":%.1f,\"op\":\"wait\",\"until\":\"%s\"}\n", elapsed_ms(), why);
        fflush(stdout);
        pthread_mutex_unlock(&mu);
    }
    started = elapsed_ms();
    report("stop", wps_client_stop(c, 3000), started);
    started = elapsed_ms();
    wps_client_free(c);
    report("free", WPS_OK, started);
    pthread_cond_destroy(&cv);
    return 0;
}
