/* The soak run's process (scripts/soak.sh): many clients in one process, through the fault
 * proxy, for a set time.
 *
 *   soak_client --url URL --out FILE [--clients 1000] [--groups 50] [--seconds 180]
 *               [--rate MSGS_PER_S] [--churn PER_S] [--sample-ms 2000]
 *
 * Client i belongs to group i % groups and speaks reliable JSON (even i) or reliable protobuf
 * (odd i). In each group a fifth of the members are churners: they are stopped and started
 * again, or freed and created anew, all the time; the others are stable and stay connected for
 * the whole run (through the proxy's faults, which the orchestrator drives). Random running
 * clients send acked messages "G=<group>;N=<n>;..." to their group. Every receiver keeps a bit
 * per message of its group (cleared when a churner starts again), so a second arrival is a
 * duplicate; at the end every message acked as delivered must have reached every stable member
 * whose session was not lost (one connection id for the whole run).
 *
 * JSON lines on --out: {"k":"sample",...} every --sample-ms (threads, open fds, RSS, clients
 * alive and connected), then {"k":"end",...} with the totals. The orchestrator
 * (tests/chaos/soak.py) judges them. */
#define _GNU_SOURCE
#include <dirent.h>
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
#include "chaos_common.h"

enum { RUNNING, STOPPING, STARTING, JOINING, IDLE };

typedef struct slot {
    int index, group, churner;
    wps_client *c;
    int state;                 /* atomic */
    unsigned char *seen;       /* one bit per message of the group */
    long connects;             /* CONNECTED events in this client's life (stable clients: 1) */
    long disc_gen;             /* DISCONNECTED events, to spot sends in flight across them */
} slot;

typedef struct msg_ctx {
    int group;
    uint32_t n;
    long disc_gen;
    slot *sender;
} msg_ctx;

static const char *url;
static int nclients = 1000, ngroups = 50, seconds = 180, sample_ms = 2000;
static double rate = 100, churn_rate = 5;
static slot *slots;
static uint32_t max_per_group;
static uint32_t *group_next;            /* next message number per group (main thread) */
static unsigned char *acked;            /* [group][n]: 0 pending/none, 1 ok, 2 failed */
static unsigned char *dup_allowed;      /* [group][n] */

static long sent, acked_ok, acked_failed, send_refused, received, duplicates, wrong_group;
static long async_ok, completions, starts_ok, starts_failed, stops, frees, stopped_events;
static long inflight;

#define ADD(var, n) __atomic_add_fetch(&(var), (n), __ATOMIC_RELAXED)
#define GET(var) __atomic_load_n(&(var), __ATOMIC_RELAXED)

static unsigned long long rng_state = 88172645463325252ULL;
static unsigned long long rnd(void) { /* xorshift64, main thread only */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ---- callbacks --------------------------------------------------------------------------- */

static void on_connected(void *ud, const wps_event *e) {
    (void)e;
    slot *s = ud;
    ADD(s->connects, 1);
}

static void on_disconnected(void *ud, const wps_event *e) {
    (void)e;
    slot *s = ud;
    ADD(s->disc_gen, 1);
}

static void on_stopped(void *ud, const wps_event *e) {
    (void)ud;
    (void)e;
    ADD(stopped_events, 1);
}

static void on_message(void *ud, const wps_event *e) {
    slot *s = ud;
    unsigned g = 0, n = 0;
    if (e->data_len < 6 || sscanf((const char *)e->data, "G=%u;N=%u;", &g, &n) != 2 || (int)g != s->group ||
        n >= max_per_group) {
        ADD(wrong_group, 1);
        return;
    }
    /* One client's events never run concurrently: its bitmap needs no lock. */
    unsigned char bit = (unsigned char)(1u << (n & 7));
    if (s->seen[n >> 3] & bit) ADD(duplicates, 1);
    else { s->seen[n >> 3] |= bit; ADD(received, 1); }
}

static void on_send_done(void *ctx, const wps_event *e) {
    msg_ctx *m = ctx;
    size_t k = (size_t)m->group * max_per_group + m->n;
    if (GET(m->sender->disc_gen) != m->disc_gen) __atomic_store_n(&dup_allowed[k], 1, __ATOMIC_RELAXED);
    __atomic_store_n(&acked[k], e->result == WPS_OK ? 1 : 2, __ATOMIC_RELEASE);
    if (e->result == WPS_OK) ADD(acked_ok, 1); else ADD(acked_failed, 1);
    ADD(completions, 1);
    ADD(inflight, -1);
    free(m);
}

static void on_join_done(void *ctx, const wps_event *e) {
    slot *s = ctx;
    ADD(completions, 1);
    __atomic_store_n(&s->state, e->result == WPS_OK ? RUNNING : IDLE, __ATOMIC_RELEASE);
}

static void on_start_done(void *ctx, const wps_event *e) {
    slot *s = ctx;
    ADD(completions, 1);
    if (e->result != WPS_OK) {
        ADD(starts_failed, 1);
        __atomic_store_n(&s->state, IDLE, __ATOMIC_RELEASE);
        return;
    }
    ADD(starts_ok, 1);
    char group[32];
    snprintf(group, sizeof group, "soak-%d", s->group);
    __atomic_store_n(&s->state, JOINING, __ATOMIC_RELEASE);
    if (wps_join_group_async(s->c, group, 0, on_join_done, s, NULL) == WPS_OK) ADD(async_ok, 1);
    else __atomic_store_n(&s->state, IDLE, __ATOMIC_RELEASE);
}

static void start_slot(slot *s) {
    /* A churner that starts again begins a new session: what it saw before does not count. */
    memset(s->seen, 0, (max_per_group + 7) / 8);
    __atomic_store_n(&s->state, STARTING, __ATOMIC_RELEASE);
    if (wps_client_start_async(s->c, 30000, on_start_done, s) == WPS_OK) ADD(async_ok, 1);
    else __atomic_store_n(&s->state, IDLE, __ATOMIC_RELEASE);
}

static void on_stop_done(void *ctx, const wps_event *e) {
    (void)e;
    slot *s = ctx;
    ADD(completions, 1);
    start_slot(s); /* from inside a callback, as the API allows */
}

static int new_client(slot *s) {
    wps_options *o = NULL;
    wps_options_new(&o);
    wps_options_set_protocol(o, s->index % 2 ? WPS_PROTOCOL_PROTOBUF_RELIABLE : WPS_PROTOCOL_JSON_RELIABLE);
    wps_options_set_ack_timeout_ms(o, 15000);
    wps_options_set_keep_alive(o, 5000, 20000);
    wps_options_set_reconnect_retry(o, UINT32_MAX, WPS_RETRY_EXPONENTIAL, 500, 5000);
    int32_t rc = wps_client_new(url, o, &s->c);
    wps_options_free(o);
    if (rc != WPS_OK) return 0;
    wps_set_callback(s->c, WPS_EVENT_CONNECTED, on_connected, s);
    wps_set_callback(s->c, WPS_EVENT_DISCONNECTED, on_disconnected, s);
    wps_set_callback(s->c, WPS_EVENT_STOPPED, on_stopped, s);
    wps_set_callback(s->c, WPS_EVENT_GROUP_MESSAGE, on_message, s);
    return 1;
}

/* ---- sampler ----------------------------------------------------------------------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static int done;
static long clients_alive; /* created and not freed (main thread writes, sampler reads) */

static void wait_until(int64_t deadline) {
    struct timespec ts;
    ts.tv_sec = deadline / 1000;
    ts.tv_nsec = (long)(deadline % 1000) * 1000000L;
    pthread_cond_timedwait(&cv, &mu, &ts);
}

static void sample(const char *kind) {
    long connected = 0, running = 0;
    for (int i = 0; i < nclients; i++) {
        if (GET(slots[i].state) == RUNNING) running++;
        if (slots[i].c && wps_client_is_connected(slots[i].c)) connected++;
    }
    emit("\"k\":\"%s\",\"threads\":%ld,\"fds\":%ld,\"rss_kb\":%ld,\"alive\":%ld,\"connected\":%ld,\"running\":%ld,"
         "\"sent\":%ld,\"acked_ok\":%ld,\"received\":%ld,\"duplicates\":%ld,\"inflight\":%ld",
         kind, status_field("Threads"), fd_count(), status_field("VmRSS"), GET(clients_alive), connected, running,
         GET(sent), GET(acked_ok), GET(received), GET(duplicates), GET(inflight));
}

static void *sampler(void *arg) {
    (void)arg;
    pthread_mutex_lock(&mu);
    int64_t next = mono_ms() + sample_ms;
    while (!done) {
        if (mono_ms() < next) { wait_until(next); continue; }
        pthread_mutex_unlock(&mu);
        sample("sample");
        pthread_mutex_lock(&mu);
        next += sample_ms;
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* Paces the main loop: waits until `deadline` (CLOCK_MONOTONIC ms). */
static void pace(int64_t deadline) {
    pthread_mutex_lock(&mu);
    while (mono_ms() < deadline) wait_until(deadline);
    pthread_mutex_unlock(&mu);
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    const char *path = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--url")) url = v;
        else if (!strcmp(k, "--out")) path = v;
        else if (!strcmp(k, "--clients")) nclients = atoi(v);
        else if (!strcmp(k, "--groups")) ngroups = atoi(v);
        else if (!strcmp(k, "--seconds")) seconds = atoi(v);
        else if (!strcmp(k, "--rate")) rate = atof(v);
        else if (!strcmp(k, "--churn")) churn_rate = atof(v);
        else if (!strcmp(k, "--sample-ms")) sample_ms = atoi(v);
        else { fprintf(stderr, "unknown option %s\n", k); return 2; }
    }
    if (!url || !path || nclients < ngroups || ngroups < 1 || seconds < 1) {
        fprintf(stderr, "usage: soak_client --url URL --out FILE [--clients N] [--groups N] [--seconds S] "
                        "[--rate R] [--churn PER_S] [--sample-ms MS]\n");
        return 2;
    }
    if (!open_output(path)) return 2;
    cond_init_monotonic(&cv);

    /* Every table is allocated up front, so that the program's own memory stays flat. */
    max_per_group = (uint32_t)(rate * seconds / ngroups * 1.5) + 64;
    slots = calloc((size_t)nclients, sizeof *slots);
    group_next = calloc((size_t)ngroups, sizeof *group_next);
    acked = calloc((size_t)ngroups * max_per_group, 1);
    dup_allowed = calloc((size_t)ngroups * max_per_group, 1);
    for (int i = 0; i < nclients; i++) {
        slots[i].index = i;
        slots[i].group = i % ngroups;
        slots[i].churner = (i / ngroups) % 5 == 4;
        slots[i].seen = calloc((max_per_group + 7) / 8, 1);
        slots[i].state = IDLE;
    }
    long base_threads = status_field("Threads"), base_fds = fd_count(), base_rss = status_field("VmRSS");
    emit("\"k\":\"baseline\",\"threads\":%ld,\"fds\":%ld,\"rss_kb\":%ld,\"clients\":%d,\"groups\":%d", base_threads,
         base_fds, base_rss, nclients, ngroups);

    pthread_t sampler_thread;
    pthread_create(&sampler_thread, NULL, sampler, NULL);

    for (int i = 0; i < nclients; i++) {
        if (!new_client(&slots[i])) { emit("\"k\":\"fatal\",\"what\":\"new\""); return 1; }
        ADD(clients_alive, 1);
        start_slot(&slots[i]);
    }
    /* Everyone connected and joined (retrying the ones that failed), within two minutes. */
    int64_t deadline = mono_ms() + 120000;
    for (;;) {
        int running = 0;
        for (int i = 0; i < nclients; i++) {
            int st = GET(slots[i].state);
            if (st == RUNNING) running++;
            else if (st == IDLE) start_slot(&slots[i]);
        }
        if (running == nclients) break;
        if (mono_ms() > deadline) { emit("\"k\":\"fatal\",\"what\":\"connect\",\"running\":%d", running); return 1; }
        pace(mono_ms() + 100);
    }
    emit("\"k\":\"all_running\",\"ms\":%lld", (long long)(mono_ms() - t0));
    sample("ready");

    /* Traffic and churn, in ticks of 100 ms. */
    char payload[256];
    int64_t end_at = mono_ms() + (int64_t)seconds * 1000, next = mono_ms();
    double send_credit = 0, churn_credit = 0;
    while (mono_ms() < end_at) {
        next += 100;
        pace(next);
        for (int i = 0; i < nclients; i++)
            if (GET(slots[i].state) == IDLE) start_slot(&slots[i]);
        for (send_credit += rate / 10; send_credit >= 1; send_credit -= 1) {
            slot *s = &slots[rnd() % (unsigned)nclients];
            if (GET(s->state) != RUNNING) continue;
            uint32_t n = group_next[s->group];
            if (n >= max_per_group) continue;
            int len = snprintf(payload, sizeof payload, "G=%d;N=%u;", s->group, n);
            int pad = (int)(rnd() % 150);
            memset(payload + len, 'x', (size_t)pad);
            len += pad;
            msg_ctx *m = malloc(sizeof *m);
            *m = (msg_ctx){s->group, n, GET(s->disc_gen), s};
            char group[32];
            snprintf(group, sizeof group, "soak-%d", s->group);
            ADD(inflight, 1);
            int32_t rc = wps_send_to_group_async(s->c, group, (const uint8_t *)payload, (size_t)len,
                                                 s->index % 3 ? WPS_DATA_TEXT : WPS_DATA_BINARY, 0, 0, on_send_done, m, NULL);
            if (rc == WPS_OK) { group_next[s->group] = n + 1; ADD(sent, 1); ADD(async_ok, 1); }
            else { ADD(inflight, -1); ADD(send_refused, 1); free(m); }
        }
        for (churn_credit += churn_rate / 10; churn_credit >= 1; churn_credit -= 1) {
            /* A random churner: member k of group g is slot g + k * groups, churners have k % 5 == 4. */
            int per_group = nclients / ngroups, churners = per_group / 5;
            if (churners == 0) break;
            int k = 5 * (int)(rnd() % (unsigned)churners) + 4;
            slot *s = &slots[(int)(rnd() % (unsigned)ngroups) + k * ngroups];
            if (!s->churner || GET(s->state) != RUNNING) continue;
            if (rnd() % 4 == 0) {
                /* Freed and created anew (free delivers the owed events on this thread). */
                wps_client_free(s->c);
                s->c = NULL;
                ADD(clients_alive, -1);
                ADD(frees, 1);
                if (!new_client(s)) { emit("\"k\":\"fatal\",\"what\":\"renew\""); return 1; }
                ADD(clients_alive, 1);
                start_slot(s);
            } else {
                __atomic_store_n(&s->state, STOPPING, __ATOMIC_RELEASE);
                ADD(stops, 1);
                if (wps_client_stop_async(s->c, on_stop_done, s) == WPS_OK) ADD(async_ok, 1);
                else __atomic_store_n(&s->state, IDLE, __ATOMIC_RELEASE);
            }
        }
    }
    emit("\"k\":\"traffic_done\"");

    /* Let acks come in, then wait for stable clients to have every acked message. */
    deadline = mono_ms() + 90000;
    while (GET(inflight) > 0 && mono_ms() < deadline) pace(mono_ms() + 100);
    long lost = 0, lost_sessions = 0, checked = 0;
    deadline = mono_ms() + 60000;
    for (;;) {
        lost = 0; lost_sessions = 0; checked = 0;
        for (int i = 0; i < nclients; i++) {
            slot *s = &slots[i];
            if (s->churner) continue;
            if (GET(s->connects) != 1) { lost_sessions++; continue; }
            checked++;
            for (uint32_t n = 0; n < group_next[s->group]; n++)
                if (__atomic_load_n(&acked[(size_t)s->group * max_per_group + n], __ATOMIC_ACQUIRE) == 1 &&
                    !(s->seen[n >> 3] & (1u << (n & 7))))
                    lost++;
        }
        if (lost == 0 || mono_ms() > deadline) break;
        pace(mono_ms() + 250);
    }
    long allowed_dups_msgs = 0;
    for (size_t k = 0; k < (size_t)ngroups * max_per_group; k++) allowed_dups_msgs += dup_allowed[k];
    sample("before_free");

    int64_t t_free = mono_ms();
    for (int i = 0; i < nclients; i++) {
        wps_client_free(slots[i].c);
        slots[i].c = NULL;
        ADD(clients_alive, -1);
    }
    long free_ms = (long)(mono_ms() - t_free);
    pthread_mutex_lock(&mu);
    done = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(sampler_thread, NULL);
    sample("after_free");
    emit("\"k\":\"end\",\"sent\":%ld,\"acked_ok\":%ld,\"acked_failed\":%ld,\"send_refused\":%ld,\"received\":%ld,"
         "\"duplicates\":%ld,\"dup_allowed_msgs\":%ld,\"wrong_group\":%ld,\"lost\":%ld,\"stable_checked\":%ld,"
         "\"stable_sessions_lost\":%ld,\"async_ok\":%ld,\"completions\":%ld,\"starts_ok\":%ld,\"starts_failed\":%ld,"
         "\"stops\":%ld,\"frees\":%ld,\"stopped_events\":%ld,\"inflight\":%ld,\"free_all_ms\":%ld",
         GET(sent), GET(acked_ok), GET(acked_failed), GET(send_refused), GET(received), GET(duplicates),
         allowed_dups_msgs, GET(wrong_group), lost, checked, lost_sessions, GET(async_ok), GET(completions),
         GET(starts_ok), GET(starts_failed), GET(stops), GET(frees), GET(stopped_events), GET(inflight), free_ms);
    fclose(out);
    for (int i = 0; i < nclients; i++) free(slots[i].seen);
    free(slots);
    free(group_next);
    free(acked);
    free(dup_allowed);
    return 0;
}
