/* Lifecycle edge cases: free from inside a callback (deferred), free while another thread is
 * blocked in a call on the client, user_data destructors after the last callback. */
#include "harness.h"

#define HUB "lhub"

typedef struct {
    wps_client *c;
    latch freed_data;     /* user_data_free ran */
    latch after_free;     /* callback invocations after the free call returned */
    int free_returned;
    int32_t call_after_free;
} self_free;

static void free_me_on_message(void *ud, const wps_event *e) {
    self_free *s = ud;
    (void)e;
    if (s->free_returned) { latch_add(&s->after_free, 1); return; }
    wps_client_free(s->c);   /* deferred: we are inside this client's callback */
    s->free_returned = 1;
    /* the handle is invalid immediately */
    s->call_after_free = wps_send_to_group(s->c, "g", (const uint8_t *)"x", 1, WPS_DATA_TEXT, 0, 0, NULL);
}

static void free_data(void *ud) {
    self_free *s = ud;
    latch_add(&s->freed_data, 1);
}

static int test_free_from_inside_a_callback(void) {
    self_free s;
    memset(&s, 0, sizeof s);
    latch_init(&s.freed_data);
    latch_init(&s.after_free);
    char g[96];
    unique_group("selffree", g);
    char *u = mint_url(HUB, "alice", ALL_ROLES, 3600);
    CHECK_OK(wps_client_new(u, NULL, &s.c));
    free(u);
    CHECK_OK(wps_set_callback_ex(s.c, WPS_EVENT_GROUP_MESSAGE, free_me_on_message, &s, free_data));
    CHECK_OK(wps_client_start(s.c, 10000));
    CHECK_OK(wps_join_group(s.c, g, 0, NULL));
    /* the first echo frees the client; later sends race with that free */
    for (int i = 0; i < 3; i++) {
        int32_t rc = wps_send_to_group(s.c, g, (const uint8_t *)"m", 1, WPS_DATA_TEXT, 0, 0, NULL);
        CHECK(rc == WPS_OK || rc == WPS_ERR_CANCELLED || rc == WPS_ERR_INVALID_HANDLE, "send: %s", wps_result_name(rc));
    }
    CHECK(latch_wait(&s.freed_data, 1, 10000), "user_data_free ran after the deferred free");
    CHECK(latch_get(&s.freed_data) == 1, "exactly once");
    CHECK(s.call_after_free == WPS_ERR_INVALID_HANDLE, "call after free: %s", wps_result_name(s.call_after_free));
    CHECK(latch_get(&s.after_free) == 0, "no message callback after the free");
    wps_client_free(s.c); /* already freed: no-op */
    latch_destroy(&s.freed_data);
    latch_destroy(&s.after_free);
    return 0;
}

/* Another thread blocks in a join whose ack never comes (a WebSocket server that sends
 * `connected` and then stays silent); free must cancel it promptly. */
typedef struct { wps_client *c; int32_t rc; latch entered, done; } blocked;

static void *block_in_join(void *arg) {
    blocked *b = arg;
    latch_add(&b->entered, 1);
    b->rc = wps_join_group(b->c, "never-acked", 0, NULL);
    latch_add(&b->done, 1);
    return NULL;
}

static int test_free_while_another_thread_is_blocked_in_join(void) {
    blocked b;
    memset(&b, 0, sizeof b);
    latch_init(&b.entered);
    latch_init(&b.done);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "python3 %s mute-server -", tool_path());
    FILE *server = popen(cmd, "r");
    CHECK(server, "mute server");
    int port = 0;
    CHECK(fscanf(server, "%d", &port) == 1 && port > 0, "port");
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/client/hubs/h?access_token=x", port);
    wps_options *o = NULL;
    CHECK_OK(wps_options_new(&o));
    CHECK_OK(wps_options_set_ack_timeout_ms(o, 60000));
    CHECK_OK(wps_options_set_protocol(o, WPS_PROTOCOL_JSON));
    CHECK_OK(wps_client_new(url, o, &b.c));
    wps_options_free(o);
    CHECK_OK(wps_client_start(b.c, 10000));
    pthread_t t;
    pthread_create(&t, NULL, block_in_join, &b);
    CHECK(latch_wait(&b.entered, 1, 5000), "thread started");
    CHECK(!latch_wait(&b.done, 1, 300), "join is blocked waiting for its ack");
    int64_t t0 = now_ms();
    wps_client_free(b.c);
    CHECK(latch_wait(&b.done, 1, 10000), "blocked call returned after free");
    pthread_join(t, NULL);
    CHECK(now_ms() - t0 < 8000, "free did not wait for the ack timeout");
    CHECK(b.rc == WPS_ERR_CANCELLED, "got %s", wps_result_name(b.rc));
    pclose(server); /* the server exits once the client closed the socket */
    latch_destroy(&b.entered);
    latch_destroy(&b.done);
    return 0;
}

/* free on another thread while a callback is running: free waits for it, and nothing runs
 * after free returned. */
typedef struct { latch in_cb; latch release; int running; int after_free; int free_returned; } slow_cb;
static slow_cb slow;

static void slow_callback(void *ud, const wps_event *e) {
    (void)ud;
    (void)e;
    if (__atomic_load_n(&slow.free_returned, __ATOMIC_SEQ_CST)) slow.after_free = 1;
    __atomic_store_n(&slow.running, 1, __ATOMIC_SEQ_CST);
    latch_add(&slow.in_cb, 1);
    latch_wait(&slow.release, 1, 2000);
    __atomic_store_n(&slow.running, 0, __ATOMIC_SEQ_CST);
}

typedef struct { wps_client *c; latch done; } freer;
static void *free_it(void *arg) {
    freer *f = arg;
    wps_client_free(f->c);
    __atomic_store_n(&slow.free_returned, 1, __ATOMIC_SEQ_CST);
    latch_add(&f->done, 1);
    return NULL;
}

static int test_free_waits_for_an_in_flight_callback(void) {
    memset(&slow, 0, sizeof slow);
    latch_init(&slow.in_cb);
    latch_init(&slow.release);
    char g[96];
    unique_group("slow", g);
    char *u = mint_url(HUB, "alice", ALL_ROLES, 3600);
    freer f;
    latch_init(&f.done);
    CHECK_OK(wps_client_new(u, NULL, &f.c));
    free(u);
    CHECK_OK(wps_set_callback(f.c, WPS_EVENT_GROUP_MESSAGE, slow_callback, NULL));
    CHECK_OK(wps_set_callback(f.c, WPS_EVENT_DISCONNECTED, slow_callback, NULL));
    CHECK_OK(wps_set_callback(f.c, WPS_EVENT_STOPPED, slow_callback, NULL));
    CHECK_OK(wps_client_start(f.c, 10000));
    CHECK_OK(wps_join_group(f.c, g, 0, NULL));
    CHECK_OK(wps_send_to_group(f.c, g, (const uint8_t *)"m", 1, WPS_DATA_TEXT, 0, 0, NULL));
    CHECK(latch_wait(&slow.in_cb, 1, 5000), "callback running");
    pthread_t t;
    pthread_create(&t, NULL, free_it, &f);
    CHECK(!latch_wait(&f.done, 1, 300), "free waits while the callback runs");
    latch_add(&slow.release, 1);
    CHECK(latch_wait(&f.done, 1, 10000), "free returned");
    pthread_join(t, NULL);
    CHECK(!slow.running && !slow.after_free, "no callback after free returned");
    latch_destroy(&slow.in_cb);
    latch_destroy(&slow.release);
    latch_destroy(&f.done);
    return 0;
}

/* Replacing a callback from inside itself: the running invocation completes, the destructor of
 * the old registration runs after it. */
typedef struct { wps_client *c; latch freed; int freed_while_running; int running; } replacer;
static replacer rep;
static void rep_free(void *ud) { (void)ud; if (rep.running) rep.freed_while_running = 1; latch_add(&rep.freed, 1); }
static void rep_noop(void *ud, const wps_event *e) { (void)ud; (void)e; }
static void rep_cb(void *ud, const wps_event *e) {
    (void)e;
    rep.running = 1;
    wps_set_callback_ex(rep.c, WPS_EVENT_CONNECTED, rep_noop, ud, NULL);
    rep.running = 0;
}

static int test_replace_callback_from_inside_itself(void) {
    memset(&rep, 0, sizeof rep);
    latch_init(&rep.freed);
    char *u = mint_url(HUB, "alice", ALL_ROLES, 3600);
    CHECK_OK(wps_client_new(u, NULL, &rep.c));
    free(u);
    CHECK_OK(wps_set_callback_ex(rep.c, WPS_EVENT_CONNECTED, rep_cb, NULL, rep_free));
    CHECK_OK(wps_client_start(rep.c, 10000));
    CHECK(latch_wait(&rep.freed, 1, 5000), "old registration destroyed");
    CHECK(!rep.freed_while_running, "destructor ran after the invocation returned");
    wps_client_free(rep.c);
    CHECK(latch_get(&rep.freed) == 1, "exactly once");
    latch_destroy(&rep.freed);
    return 0;
}

/* More clients block in callbacks at once than the callback pool has threads: every blocking
 * call still completes (the pool grows while callbacks block; acks never wait for callbacks). */
#define ECHOERS 8
typedef struct { wps_client *c; char group[96]; latch *done; int32_t rc; } echoer;

static void echo_once(void *ud, const wps_event *e) {
    echoer *x = ud;
    if (e->data_len == 2 && memcmp(e->data, "go", 2) == 0) {
        x->rc = wps_send_to_group(x->c, x->group, (const uint8_t *)"back", 4, WPS_DATA_TEXT, WPS_SEND_NO_ECHO, 0, NULL);
        latch_add(x->done, 1);
    }
}

static int test_many_clients_blocking_inside_callbacks_at_once(void) {
    latch done;
    latch_init(&done);
    static echoer x[ECHOERS];
    char g[96];
    unique_group("many", g);
    char *u = mint_url(HUB, "echo", ALL_ROLES, 3600);
    for (int i = 0; i < ECHOERS; i++) {
        memset(&x[i], 0, sizeof x[i]);
        x[i].done = &done;
        x[i].rc = -1;
        snprintf(x[i].group, sizeof x[i].group, "%s", g);
        CHECK_OK(wps_client_new(u, NULL, &x[i].c));
        CHECK_OK(wps_set_callback(x[i].c, WPS_EVENT_GROUP_MESSAGE, echo_once, &x[i]));
        CHECK_OK(wps_client_start(x[i].c, 10000));
        CHECK_OK(wps_join_group(x[i].c, g, 0, NULL));
    }
    wps_client *sender = NULL;
    CHECK_OK(wps_client_new(u, NULL, &sender));
    free(u);
    CHECK_OK(wps_client_start(sender, 10000));
    CHECK_OK(wps_send_to_group(sender, g, (const uint8_t *)"go", 2, WPS_DATA_TEXT, 0, 0, NULL));
    CHECK(latch_wait(&done, ECHOERS, 20000), "%ld of %d callbacks finished their blocking send", latch_get(&done), ECHOERS);
    for (int i = 0; i < ECHOERS; i++) CHECK(x[i].rc == WPS_OK, "client %d: %s", i, wps_result_name(x[i].rc));
    printf("INFO threads with %d clients after blocking callbacks: %ld\n", ECHOERS + 1, thread_count());
    for (int i = 0; i < ECHOERS; i++) wps_client_free(x[i].c);
    wps_client_free(sender);
    latch_destroy(&done);
    return 0;
}

/* One client's callback frees another client (a blocking teardown on a pool thread). */
typedef struct { wps_client *victim; latch freed; latch victim_data_freed; } cross;
static cross xf;
static void cross_victim_free(void *ud) { (void)ud; latch_add(&xf.victim_data_freed, 1); }
static void cross_cb(void *ud, const wps_event *e) {
    (void)ud;
    (void)e;
    if (latch_get(&xf.freed) == 0) {
        wps_client_free(xf.victim);
        latch_add(&xf.freed, 1);
    }
}

static int test_callback_of_one_client_frees_another(void) {
    memset(&xf, 0, sizeof xf);
    latch_init(&xf.freed);
    latch_init(&xf.victim_data_freed);
    char *u = mint_url(HUB, "alice", ALL_ROLES, 3600);
    wps_client *killer = NULL;
    CHECK_OK(wps_client_new(u, NULL, &xf.victim));
    CHECK_OK(wps_set_callback_ex(xf.victim, WPS_EVENT_STOPPED, rep_noop, NULL, cross_victim_free));
    CHECK_OK(wps_client_start(xf.victim, 10000));
    CHECK_OK(wps_client_new(u, NULL, &killer));
    free(u);
    CHECK_OK(wps_set_callback(killer, WPS_EVENT_CONNECTED, cross_cb, NULL));
    CHECK_OK(wps_client_start(killer, 10000));
    CHECK(latch_wait(&xf.freed, 1, 10000), "free from the other client's callback returned");
    CHECK(latch_get(&xf.victim_data_freed) == 1, "victim fully torn down when free returned");
    CHECK_RC(wps_client_stop(xf.victim, 100), WPS_ERR_INVALID_HANDLE);
    wps_client_free(killer);
    latch_destroy(&xf.freed);
    latch_destroy(&xf.victim_data_freed);
    return 0;
}

/* stop_async then start_async: the first session's STOPPED comes after the stop's completion
 * and before every event of the next session (its CONNECTED, the start's completion). */
static int index_of(recorder *r, uint32_t type, size_t k) {
    for (size_t i = 0; i < r->n; i++)
        if (r->ev[i].type == type && k-- == 0) return (int)i;
    return -1;
}

static int index_of_op(recorder *r, uint32_t op, size_t k) {
    for (size_t i = 0; i < r->n; i++)
        if (r->ev[i].type == WPS_EVENT_ACK && r->ev[i].op == op && k-- == 0) return (int)i;
    return -1;
}

static int test_stop_async_then_start_async_keeps_sessions_in_order(void) {
    recorder r;
    rec_init(&r);
    char *u = mint_url(HUB, "alice", ALL_ROLES, 3600);
    wps_client *c = started_client(u, NULL, &r);
    free(u);
    CHECK(c, "client");
    CHECK(rec_wait(&r, WPS_EVENT_CONNECTED, 1, 5000), "connected");
    for (size_t round = 1; round <= 5; round++) {
        CHECK_OK(wps_client_stop_async(c, NULL, NULL));
        CHECK_OK(wps_client_start_async(c, 10000, NULL, NULL));
        CHECK(rec_wait(&r, WPS_EVENT_CONNECTED, round + 1, 10000), "round %zu: connected again", round);
        CHECK(rec_wait(&r, WPS_EVENT_ACK, 2 * round, 10000), "round %zu: both completions", round);
        CHECK(rec_wait(&r, WPS_EVENT_STOPPED, round, 10000), "round %zu: stopped", round);
        pthread_mutex_lock(&r.mu);
        int stopped = index_of(&r, WPS_EVENT_STOPPED, round - 1);
        int connected = index_of(&r, WPS_EVENT_CONNECTED, round);
        int stop_ack = index_of_op(&r, WPS_OP_STOP, round - 1);
        int start_ack = index_of_op(&r, WPS_OP_START, round - 1);
        pthread_mutex_unlock(&r.mu);
        CHECK(stop_ack >= 0 && start_ack >= 0, "round %zu: completions recorded", round);
        CHECK(stop_ack < stopped, "round %zu: the stop's completion (%d) before STOPPED (%d)", round, stop_ack, stopped);
        CHECK(stopped < connected, "round %zu: STOPPED (%d) before the next CONNECTED (%d)", round, stopped, connected);
        CHECK(connected < start_ack, "round %zu: CONNECTED (%d) before the start's completion (%d)", round, connected, start_ack);
        CHECK(rec_nth(&r, WPS_EVENT_ACK, 2 * round - 1)->result == WPS_OK, "round %zu", round);
    }
    CHECK(!r.overlap, "never concurrent");
    wps_client_free(c);
    rec_free(&r);
    return 0;
}

/* The log callback can run on a runtime thread inside the engine's own task: a blocking call
 * made there fails at once with WPS_ERR_INVALID_STATE instead of wedging the client. */
typedef struct {
    wps_client *c;
    char group[96];
    int tried;            /* blocking calls attempted on a runtime thread */
    int32_t rc;
    int64_t took_ms;
    int async_rc;
    latch done, async_done;
} log_probe;
static log_probe lp;

static void probe_async_done(void *ud, const wps_event *e) {
    (void)ud;
    (void)e;
    latch_add(&lp.async_done, 1);
}

static void probing_log(void *ud, uint32_t level, const char *message) {
    (void)ud;
    (void)level;
    char name[32] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    /* "connected as ..." is logged by the client's own engine task */
    if (strcmp(name, "wps-rt") != 0 || !strstr(message, "connected as") || !__atomic_load_n(&lp.c, __ATOMIC_SEQ_CST))
        return;
    if (__atomic_exchange_n(&lp.tried, 1, __ATOMIC_SEQ_CST)) return;
    int64_t t0 = now_ms();
    lp.rc = wps_join_group(lp.c, lp.group, 0, NULL);
    lp.took_ms = now_ms() - t0;
    /* the async twin works from here */
    lp.async_rc = wps_leave_group_async(lp.c, lp.group, 0, probe_async_done, NULL, NULL);
    latch_add(&lp.done, 1);
}

static int test_blocking_call_from_the_log_callback_on_a_runtime_thread_fails_fast(void) {
    memset(&lp, 0, sizeof lp);
    latch_init(&lp.done);
    latch_init(&lp.async_done);
    unique_group("logprobe", lp.group);
    char *u = mint_url(HUB, "alice", ALL_ROLES, 3600);
    wps_client *c = NULL;
    CHECK_OK(wps_client_new(u, NULL, &c));
    free(u);
    __atomic_store_n(&lp.c, c, __ATOMIC_SEQ_CST);
    CHECK_OK(wps_set_log_callback(probing_log, NULL, WPS_LOG_INFO));
    CHECK_OK(wps_client_start_async(c, 10000, probe_async_done, NULL));
    int fired = latch_wait(&lp.done, 1, 10000);
    CHECK_OK(wps_set_log_callback(NULL, NULL, WPS_LOG_OFF));
    CHECK(fired, "the log callback ran on a runtime thread and its blocking call returned");
    CHECK(lp.rc == WPS_ERR_INVALID_STATE, "got %s", wps_result_name(lp.rc));
    CHECK(lp.took_ms < 1000, "returned at once (%lld ms)", (long long)lp.took_ms);
    CHECK(lp.async_rc == WPS_OK, "async call from the log callback: %s", wps_result_name(lp.async_rc));
    CHECK(latch_wait(&lp.async_done, 2, 10000), "the start's and the leave's completions arrived");
    /* the client was not wedged */
    CHECK_OK(wps_join_group(c, lp.group, 0, NULL));
    wps_client_free(c);
    latch_destroy(&lp.done);
    latch_destroy(&lp.async_done);
    return 0;
}

/* URL providers run on the runtime's blocking threads, where blocking calls keep working. */
typedef struct { wps_client *other; char group[96]; char *url; latch rc; } blocking_prov;

static int32_t provider_making_a_blocking_call(void *ud, char *buf, size_t cap, size_t *out_len) {
    blocking_prov *p = ud;
    /* The result travels through a latch: a pthread hand-over that thread checkers see. */
    latch_add(&p->rc, 1 + (long)wps_join_group(p->other, p->group, 0, NULL));
    size_t n = strlen(p->url) + 1;
    *out_len = n;
    if (n > cap) return WPS_ERR_BUFFER_TOO_SMALL;
    memcpy(buf, p->url, n);
    return WPS_OK;
}

static int test_url_provider_may_make_blocking_calls(void) {
    blocking_prov p;
    memset(&p, 0, sizeof p);
    latch_init(&p.rc);
    unique_group("provblock", p.group);
    p.url = mint_url(HUB, "alice", ALL_ROLES, 3600);
    p.other = started_client(p.url, NULL, NULL);
    CHECK(p.other, "other client");
    wps_client *c = NULL;
    CHECK_OK(wps_client_new_with_provider(provider_making_a_blocking_call, &p, NULL, &c));
    CHECK_OK(wps_client_start(c, 10000));
    long rc = latch_get(&p.rc) - 1;
    CHECK(rc == WPS_OK, "blocking join from the provider: %s", wps_result_name((int32_t)rc));
    wps_client_free(c);
    wps_client_free(p.other);
    free(p.url);
    latch_destroy(&p.rc);
    return 0;
}

int main(int argc, char **argv) {
    if (!have_emulator()) { printf("lifecycle: needs WPS_TEST_CONNSTR (run scripts/c-tests.sh)\n"); return 1; }
    static const test_case tests[] = {
        {"free_from_inside_a_callback", test_free_from_inside_a_callback},
        {"free_while_another_thread_is_blocked_in_join", test_free_while_another_thread_is_blocked_in_join},
        {"free_waits_for_an_in_flight_callback", test_free_waits_for_an_in_flight_callback},
        {"replace_callback_from_inside_itself", test_replace_callback_from_inside_itself},
        {"many_clients_blocking_inside_callbacks_at_once", test_many_clients_blocking_inside_callbacks_at_once},
        {"callback_of_one_client_frees_another", test_callback_of_one_client_frees_another},
        {"stop_async_then_start_async_keeps_sessions_in_order", test_stop_async_then_start_async_keeps_sessions_in_order},
        {"blocking_call_from_the_log_callback_on_a_runtime_thread_fails_fast",
         test_blocking_call_from_the_log_callback_on_a_runtime_thread_fails_fast},
        {"url_provider_may_make_blocking_calls", test_url_provider_may_make_blocking_calls},
    };
    return run_tests("lifecycle", tests, sizeof tests / sizeof tests[0], argc, argv);
}
