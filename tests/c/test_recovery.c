/* Connection loss: recovery after :drop during a burst (no loss, no duplicates) and reconnect
 * with a new connection id plus auto-rejoin after :expire. */
#include "harness.h"

#define HUB "rhub"
#define BURST 1000

typedef struct {
    wps_client *c;
    const char *group;
    int sent, retries, failures;
    latch progress;
} sender;

static void *send_burst(void *arg) {
    sender *s = arg;
    for (int i = 0; i < BURST; i++) {
        char msg[32];
        int len = snprintf(msg, sizeof msg, "%d", i);
        uint64_t id = 0;
        int32_t rc = WPS_ERR_TIMEOUT;
        /* retry a retryable failure with the same ack id: the service deduplicates it */
        for (int attempt = 0; attempt < 10; attempt++) {
            rc = wps_send_to_group(s->c, s->group, (const uint8_t *)msg, (size_t)len, WPS_DATA_TEXT, 0, id, &id);
            if (rc == WPS_OK || !wps_result_is_retryable(rc)) break;
            s->retries++;
        }
        if (rc != WPS_OK) s->failures++;
        s->sent++;
        latch_add(&s->progress, 1);
    }
    return NULL;
}

static int test_recovery_after_drop_during_a_burst(void) {
    recorder ra, rb;
    rec_init(&ra);
    rec_init(&rb);
    char g[96];
    unique_group("burst", g);
    char *ua = mint_url(HUB, "alice", ALL_ROLES, 3600), *ub = mint_url(HUB, "bob", ALL_ROLES, 3600);
    wps_client *a = started_client(ua, NULL, &ra), *b = started_client(ub, NULL, &rb);
    free(ua);
    free(ub);
    CHECK(a && b, "clients");
    CHECK_OK(wps_join_group(b, g, 0, NULL));
    char ida[128], idb[128];
    CHECK(conn_id(a, ida) && conn_id(b, idb), "connection ids");

    sender s;
    memset(&s, 0, sizeof s);
    s.c = a;
    s.group = g;
    latch_init(&s.progress);
    pthread_t t;
    pthread_create(&t, NULL, send_burst, &s);
    /* drop the receiver a fifth of the way in, the sender at half way */
    CHECK(rec_wait(&rb, WPS_EVENT_GROUP_MESSAGE, BURST / 5, 30000), "receiver progress");
    CHECK(emulator_fault(HUB, idb, "drop"), "drop receiver");
    CHECK(latch_wait(&s.progress, BURST / 2, 60000), "sender progress");
    CHECK(emulator_fault(HUB, ida, "drop"), "drop sender");
    pthread_join(t, NULL);
    CHECK(s.failures == 0, "%d sends failed", s.failures);
    CHECK_OK(wps_send_to_group(a, g, (const uint8_t *)"end", 3, WPS_DATA_TEXT, 0, 0, NULL));
    CHECK(rec_wait(&rb, WPS_EVENT_GROUP_MESSAGE, BURST + 1, 60000), "received %zu of %d",
          rec_count(&rb, WPS_EVENT_GROUP_MESSAGE), BURST + 1);
    /* exactly 0..BURST-1 in order, then "end": zero lost, zero duplicated */
    pthread_mutex_lock(&rb.mu);
    int expect = 0, dup_or_gap = 0, total = 0;
    uint64_t last_seq = 0;
    int seq_ok = 1;
    for (size_t i = 0; i < rb.n; i++) {
        rec_event *e = &rb.ev[i];
        if (e->type != WPS_EVENT_GROUP_MESSAGE) continue;
        total++;
        if (e->sequence_id <= last_seq) seq_ok = 0;
        last_seq = e->sequence_id;
        if (strcmp((char *)e->data, "end") == 0) continue;
        if (atoi((char *)e->data) != expect) dup_or_gap++;
        expect++;
    }
    pthread_mutex_unlock(&rb.mu);
    CHECK(total == BURST + 1 && expect == BURST && dup_or_gap == 0, "total %d, in-order mismatches %d", total, dup_or_gap);
    CHECK(seq_ok, "sequence ids strictly increase");
    CHECK(rec_count(&rb, WPS_EVENT_RECOVERING) == 1 && rec_count(&rb, WPS_EVENT_RECOVERED) == 1,
          "one recovering/recovered pair (%zu, %zu)", rec_count(&rb, WPS_EVENT_RECOVERING),
          rec_count(&rb, WPS_EVENT_RECOVERED));
    CHECK(rec_count(&rb, WPS_EVENT_SESSION_LOST) == 0 && rec_count(&rb, WPS_EVENT_CONNECTED) == 1,
          "no session lost, no second connected");
    /* recovery keeps the connection: no new CONNECTED, no DISCONNECTED */
    CHECK(rec_count(&rb, WPS_EVENT_CONNECTED) == 1 && rec_count(&rb, WPS_EVENT_DISCONNECTED) == 0,
          "receiver recovered (connected %zu, disconnected %zu)", rec_count(&rb, WPS_EVENT_CONNECTED),
          rec_count(&rb, WPS_EVENT_DISCONNECTED));
    char idb2[128];
    CHECK(conn_id(b, idb2) && strcmp(idb, idb2) == 0, "same connection id after recovery");
    printf("INFO burst of %d with 2 drops: %d send retries\n", BURST, s.retries);
    wps_client_free(a);
    wps_client_free(b);
    latch_destroy(&s.progress);
    rec_free(&ra);
    rec_free(&rb);
    return 0;
}

static int test_reconnect_with_new_connection_id_and_rejoin_after_expire(void) {
    recorder ra, rb;
    rec_init(&ra);
    rec_init(&rb);
    char g[96];
    unique_group("rejoin", g);
    wps_options *o = NULL;
    CHECK_OK(wps_options_new(&o));
    CHECK_OK(wps_options_set_reconnect_retry(o, 10, WPS_RETRY_FIXED, 200, 200));
    char *ua = mint_url(HUB, "alice", ALL_ROLES, 3600), *ub = mint_url(HUB, "bob", ALL_ROLES, 3600);
    wps_client *a = started_client(ua, NULL, &ra), *b = started_client(ub, o, &rb);
    wps_options_free(o);
    free(ua);
    free(ub);
    CHECK(a && b, "clients");
    CHECK_OK(wps_join_group(b, g, 0, NULL));
    char before[128], after[128];
    CHECK(conn_id(b, before), "id");
    CHECK(emulator_fault(HUB, before, "expire"), "expire");
    CHECK(rec_wait(&rb, WPS_EVENT_CONNECTED, 2, 20000), "reconnected");
    CHECK(rec_count(&rb, WPS_EVENT_DISCONNECTED) >= 1, "disconnected first");
    /* The lifecycle in order: RECOVERING, SESSION_LOST (refused with 1008), DISCONNECTED,
     * CONNECTED; never RECOVERED. */
    {
        uint32_t order[8];
        size_t n = 0;
        pthread_mutex_lock(&rb.mu);
        for (size_t i = 0; i < rb.n && n < 8; i++) {
            uint32_t t = rb.ev[i].type;
            if (t == WPS_EVENT_RECOVERING || t == WPS_EVENT_RECOVERED || t == WPS_EVENT_SESSION_LOST ||
                t == WPS_EVENT_DISCONNECTED || t == WPS_EVENT_CONNECTED)
                order[n++] = t;
        }
        pthread_mutex_unlock(&rb.mu);
        CHECK(n == 5, "five lifecycle events");
        CHECK(order[0] == WPS_EVENT_CONNECTED && order[1] == WPS_EVENT_RECOVERING &&
                  order[2] == WPS_EVENT_SESSION_LOST && order[3] == WPS_EVENT_DISCONNECTED &&
                  order[4] == WPS_EVENT_CONNECTED,
              "connected, recovering, session lost, disconnected, connected");
        rec_event *lost = rec_nth(&rb, WPS_EVENT_SESSION_LOST, 0);
        CHECK(lost->connection_id && strcmp(lost->connection_id, before) == 0, "session lost: old id");
        CHECK(lost->message && strstr(lost->message, "1008"), "session lost: reason");
        rec_event *rec = rec_nth(&rb, WPS_EVENT_RECOVERING, 0);
        CHECK(rec->connection_id && strcmp(rec->connection_id, before) == 0, "recovering: old id");
    }
    rec_event *e = rec_nth(&rb, WPS_EVENT_CONNECTED, 1);
    CHECK(strcmp(e->connection_id, before) != 0, "new connection id");
    CHECK(conn_id(b, after) && strcmp(after, e->connection_id) == 0, "getter agrees");
    /* auto-rejoin: messages to the group reach the new connection (rejoin may still be in
     * flight right after CONNECTED, so retry the probe until one arrives) */
    int got = 0;
    for (int i = 0; i < 50 && !got; i++) {
        CHECK_OK(wps_send_to_group(a, g, (const uint8_t *)"after", 5, WPS_DATA_TEXT, 0, 0, NULL));
        got = rec_wait(&rb, WPS_EVENT_GROUP_MESSAGE, 1, 200);
    }
    CHECK(got, "rejoined group delivers");
    CHECK(rec_count(&rb, WPS_EVENT_REJOIN_GROUP_FAILED) == 0, "no rejoin failure");
    wps_client_free(a);
    wps_client_free(b);
    rec_free(&ra);
    rec_free(&rb);
    return 0;
}

/* A pipelined burst from a fast publisher. The service keeps at most 1,000 un-acked messages
 * per reliable connection and closes a receiver that falls further behind with 1008, which
 * forbids recovery (PROTOCOL.md section 4). Whether that happens depends on the machine's
 * speed, so the test pins down what the client guarantees either way: every message arrives,
 * or the loss is visible (DISCONNECTED, then a new connection id that rejoined the group), and
 * nothing is ever duplicated or reordered. */
#define FAST 5000
static latch fast_written;
static void fast_done(void *ctx, const wps_event *e) {
    (void)ctx;
    (void)e;
    latch_add(&fast_written, 1);
}

static int test_fast_burst_arrives_or_the_loss_is_visible(void) {
    recorder ra, rb;
    rec_init(&ra);
    rec_init(&rb);
    latch_init(&fast_written);
    char g[96];
    unique_group("fast", g);
    wps_options *o = NULL;
    CHECK_OK(wps_options_new(&o));
    CHECK_OK(wps_options_set_reconnect_retry(o, 10, WPS_RETRY_FIXED, 100, 100));
    char *ua = mint_url(HUB, "alice", ALL_ROLES, 3600), *ub = mint_url(HUB, "bob", ALL_ROLES, 3600);
    wps_client *a = started_client(ua, NULL, &ra), *b = started_client(ub, o, &rb);
    wps_options_free(o);
    free(ua);
    free(ub);
    CHECK(a && b, "clients");
    CHECK_OK(wps_join_group(b, g, 0, NULL));
    for (int i = 0; i < FAST; i++) {
        char msg[16];
        int len = snprintf(msg, sizeof msg, "%d", i);
        CHECK_OK(wps_send_to_group_async(a, g, (const uint8_t *)msg, (size_t)len, WPS_DATA_TEXT, 0, 0, fast_done,
                                         NULL, NULL));
    }
    CHECK(latch_wait(&fast_written, FAST, 60000), "all sends completed");
    int all = rec_wait(&rb, WPS_EVENT_GROUP_MESSAGE, FAST, 10000);
    size_t got = rec_count(&rb, WPS_EVENT_GROUP_MESSAGE);
    size_t connects = rec_count(&rb, WPS_EVENT_CONNECTED);
    if (!all) {
        CHECK(rec_count(&rb, WPS_EVENT_DISCONNECTED) >= 1 && connects >= 2,
              "silent loss: received %zu of %d without DISCONNECTED + new connection", got, FAST);
        rec_event *d = rec_nth(&rb, WPS_EVENT_DISCONNECTED, 0);
        /* The loss is signalled as such, with the last sequence id that arrived. */
        long lost_at = -1, disc_at = -1;
        uint64_t lost_seq = 0;
        pthread_mutex_lock(&rb.mu);
        for (size_t i = 0; i < rb.n; i++) {
            if (rb.ev[i].type == WPS_EVENT_SESSION_LOST && lost_at < 0) {
                lost_at = (long)i;
                lost_seq = rb.ev[i].sequence_id;
            }
            if (rb.ev[i].type == WPS_EVENT_DISCONNECTED && disc_at < 0) disc_at = (long)i;
        }
        pthread_mutex_unlock(&rb.mu);
        CHECK(lost_at >= 0 && lost_at < disc_at, "SESSION_LOST before the first DISCONNECTED");
        CHECK(lost_seq > 0, "SESSION_LOST carries the last sequence id");
        printf("INFO fast burst: receiver fell behind, received %zu of %d; DISCONNECTED \"%s\", %zu connections\n",
               got, FAST, d->message ? d->message : "", connects);
        /* the new connection rejoined: a probe reaches it */
        int probe = 0;
        for (int i = 0; i < 50 && !probe; i++) {
            CHECK_OK(wps_send_to_group(a, g, (const uint8_t *)"probe", 5, WPS_DATA_TEXT, 0, 0, NULL));
            probe = rec_wait(&rb, WPS_EVENT_GROUP_MESSAGE, got + 1, 200);
        }
        CHECK(probe, "rejoined after the overflow");
    } else {
        printf("INFO fast burst: all %d delivered\n", FAST);
    }
    /* never duplicated or reordered: message numbers strictly increase */
    pthread_mutex_lock(&rb.mu);
    int last = -1, order_ok = 1;
    for (size_t i = 0; i < rb.n; i++) {
        rec_event *e = &rb.ev[i];
        if (e->type != WPS_EVENT_GROUP_MESSAGE || strcmp((char *)e->data, "probe") == 0) continue;
        int v = atoi((char *)e->data);
        if (v <= last && order_ok) {
            order_ok = 0;
            fprintf(stderr, "    message %d after %d (event %zu of %zu, seq %llu)\n", v, last, i, rb.n,
                    (unsigned long long)e->sequence_id);
        }
        last = v;
    }
    pthread_mutex_unlock(&rb.mu);
    CHECK(order_ok, "no duplicate or reordered message");
    wps_client_free(a);
    wps_client_free(b);
    latch_destroy(&fast_written);
    rec_free(&ra);
    rec_free(&rb);
    return 0;
}

int main(int argc, char **argv) {
    if (!have_emulator()) { printf("recovery: needs WPS_TEST_CONNSTR (run scripts/c-tests.sh)\n"); return 1; }
    static const test_case tests[] = {
        {"recovery_after_drop_during_a_burst", test_recovery_after_drop_during_a_burst},
        {"reconnect_with_new_connection_id_and_rejoin_after_expire", test_reconnect_with_new_connection_id_and_rejoin_after_expire},
        {"fast_burst_arrives_or_the_loss_is_visible", test_fast_burst_arrives_or_the_loss_is_visible},
    };
    return run_tests("recovery", tests, sizeof tests / sizeof tests[0], argc, argv);
}
