/* A small throughput benchmark of the C API against a service (normally a local wps-emulator).
 *
 *   bench CLIENT_ACCESS_URL [messages]      (or WPS_CLIENT_URL; the token needs
 *                                            webpubsub.joinLeaveGroup and webpubsub.sendToGroup)
 *
 * Two clients share one group. Reports:
 *   - fire-and-forget, blocking: messages/s sent (each call returns once its frame is written),
 *     and messages/s delivered to the other client;
 *   - fire-and-forget, async: pipelined sends, messages/s delivered;
 *   - acked, blocking: sequential wps_send_to_group calls per second (one round trip each);
 *   - acked, async: pipelined wps_send_to_group_async completions per second. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "webpubsub_client.h"

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long value;
} counter;

static counter received = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
static counter completed = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
static long failed_completions = 0;

static void counter_add(counter *c) {
    pthread_mutex_lock(&c->mu);
    c->value++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Waits until the counter reaches target or timeout_s passes; returns the value. */
static long counter_wait(counter *c, long target, int timeout_s) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_s;
    pthread_mutex_lock(&c->mu);
    while (c->value < target)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT) break;
    long v = c->value;
    pthread_mutex_unlock(&c->mu);
    return v;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_group_message(void *ud, const wps_event *ev) {
    (void)ud;
    (void)ev;
    counter_add(&received);
}

static void on_complete(void *ctx, const wps_event *ev) {
    (void)ctx;
    if (ev->result != WPS_OK) failed_completions++;
    counter_add(&completed);
}

static wps_client *connect_client(const char *url, int receive) {
    wps_client *c = NULL;
    wps_options *o = NULL;
    wps_options_new(&o);
    /* BENCH_FF_BUFFER=N: up to N fire-and-forget frames queued (default 1024; 0: each send waits for its write) */
    if (getenv("BENCH_FF_BUFFER")) wps_options_set_fire_and_forget_buffer(o, (uint32_t)atol(getenv("BENCH_FF_BUFFER")));
    wps_result rc = wps_client_new(url, o, &c);
    wps_options_free(o);
    if (rc == WPS_OK && receive) rc = wps_set_callback(c, WPS_EVENT_GROUP_MESSAGE, on_group_message, NULL);
    if (rc == WPS_OK) rc = wps_client_start(c, 30000);
    if (rc == WPS_OK) rc = wps_join_group(c, "bench", 0, NULL);
    if (rc != WPS_OK) {
        fprintf(stderr, "client: %s (%s)\n", wps_result_name(rc), wps_last_error_message());
        wps_client_free(c);
        return NULL;
    }
    return c;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : getenv("WPS_CLIENT_URL");
    long n = argc > 2 ? atol(argv[2]) : 20000;
    if (!url || n <= 0) {
        fprintf(stderr, "usage: %s CLIENT_ACCESS_URL [messages]\n", argv[0]);
        return 2;
    }
    wps_client *sender = connect_client(url, 0), *receiver = connect_client(url, 1);
    if (!sender || !receiver) return 1;
    const char payload[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; /* 64 B */
    size_t len = sizeof payload - 1;

    /* fire-and-forget */
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        wps_result rc = wps_send_to_group(sender, "bench", (const uint8_t *)payload, len, WPS_DATA_TEXT,
                                          WPS_SEND_FIRE_AND_FORGET | WPS_SEND_NO_ECHO, 0, NULL);
        if (rc != WPS_OK) { fprintf(stderr, "send: %s\n", wps_result_name(rc)); return 1; }
    }
    double t_sent = now_s();
    long got = counter_wait(&received, n, 60);
    double t_recv = now_s();
    printf("fire-and-forget: %ld msgs of %zu B: sent %.0f msgs/s, delivered %ld at %.0f msgs/s\n", n, len,
           n / (t_sent - t0), got, got / (t_recv - t0));

    /* fire-and-forget, async (pipelined; completions report the write) */
    long base_recv = got, base_done = 0;
    t0 = now_s();
    for (long i = 0; i < n; i++) {
        wps_result rc = wps_send_to_group_async(sender, "bench", (const uint8_t *)payload, len, WPS_DATA_TEXT,
                                                WPS_SEND_FIRE_AND_FORGET | WPS_SEND_NO_ECHO, 0, on_complete, NULL, NULL);
        if (rc != WPS_OK) { fprintf(stderr, "async send: %s\n", wps_result_name(rc)); return 1; }
    }
    long ff_got = counter_wait(&received, base_recv + n, 60) - base_recv;
    t_recv = now_s();
    base_done = counter_wait(&completed, n, 60);
    printf("fire-and-forget async: %ld msgs: delivered %ld at %.0f msgs/s\n", n, ff_got, ff_got / (t_recv - t0));

    /* acked, blocking (one round trip per call) */
    long acked = n / 10;
    t0 = now_s();
    for (long i = 0; i < acked; i++) {
        wps_result rc = wps_send_to_group(sender, "bench", (const uint8_t *)payload, len, WPS_DATA_TEXT,
                                          WPS_SEND_NO_ECHO, 0, NULL);
        if (rc != WPS_OK) { fprintf(stderr, "acked send: %s\n", wps_result_name(rc)); return 1; }
    }
    double dt = now_s() - t0;
    printf("acked blocking: %ld sends: %.0f sends/s (%.1f us per round trip)\n", acked, acked / dt, dt / acked * 1e6);

    /* acked, async (pipelined) */
    t0 = now_s();
    for (long i = 0; i < n; i++) {
        wps_result rc = wps_send_to_group_async(sender, "bench", (const uint8_t *)payload, len, WPS_DATA_TEXT,
                                                WPS_SEND_NO_ECHO, 0, on_complete, NULL, NULL);
        if (rc != WPS_OK) { fprintf(stderr, "async send: %s\n", wps_result_name(rc)); return 1; }
    }
    long done = counter_wait(&completed, base_done + n, 120) - base_done;
    dt = now_s() - t0;
    printf("acked async: %ld completions (%ld failed): %.0f acks/s\n", done, failed_completions, done / dt);

    wps_client_free(sender);
    wps_client_free(receiver);
    return done == n && got == n && ff_got == n ? 0 : 1;
}
