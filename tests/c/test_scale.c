/* 1,000 clients in one process: all connect, join one group and receive one broadcast, on a
 * small bounded number of threads (reported from /proc/self/status). */
#include "harness.h"

#define HUB "shub"
#define CLIENTS 1000
#define MAX_THREADS 16

static latch started, joined, received;
static int start_failures, join_failures;

static void on_start(void *ctx, const wps_event *e) {
    (void)ctx;
    if (e->result != WPS_OK) __atomic_add_fetch(&start_failures, 1, __ATOMIC_SEQ_CST);
    latch_add(&started, 1);
}

static void on_join(void *ctx, const wps_event *e) {
    (void)ctx;
    if (e->result != WPS_OK) __atomic_add_fetch(&join_failures, 1, __ATOMIC_SEQ_CST);
    latch_add(&joined, 1);
}

static void on_message(void *ud, const wps_event *e) {
    (void)ud;
    if (e->data_len == 9 && memcmp(e->data, "broadcast", 9) == 0) latch_add(&received, 1);
}

static int test_thousand_clients_on_a_bounded_thread_count(void) {
    latch_init(&started);
    latch_init(&joined);
    latch_init(&received);
    long threads_before = thread_count();
    char g[96];
    unique_group("scale", g);
    char *u = mint_url(HUB, "many", ALL_ROLES, 3600);
    CHECK(u, "url");
    wps_client **c = calloc(CLIENTS, sizeof *c);
    int64_t t0 = now_ms();
    for (int i = 0; i < CLIENTS; i++) {
        CHECK_OK(wps_client_new(u, NULL, &c[i]));
        CHECK_OK(wps_set_callback(c[i], WPS_EVENT_GROUP_MESSAGE, on_message, NULL));
        CHECK_OK(wps_client_start_async(c[i], 60000, on_start, NULL));
    }
    free(u);
    CHECK(latch_wait(&started, CLIENTS, 120000), "started %ld of %d", latch_get(&started), CLIENTS);
    CHECK(start_failures == 0, "%d starts failed", start_failures);
    int64_t t_connected = now_ms();
    for (int i = 0; i < CLIENTS; i++) CHECK_OK(wps_join_group_async(c[i], g, 0, on_join, NULL, NULL));
    CHECK(latch_wait(&joined, CLIENTS, 120000), "joined %ld", latch_get(&joined));
    CHECK(join_failures == 0, "%d joins failed", join_failures);
    long threads = thread_count();
    CHECK_OK(wps_send_to_group(c[0], g, (const uint8_t *)"broadcast", 9, WPS_DATA_TEXT, 0, 0, NULL));
    CHECK(latch_wait(&received, CLIENTS, 60000), "received %ld of %d", latch_get(&received), CLIENTS);
    int64_t t_fanout = now_ms();
    long threads_peak = thread_count();
    printf("METRIC clients=%d threads_before=%ld threads_connected=%ld threads_after_fanout=%ld "
           "connect_ms=%lld fanout_ms=%lld\n",
           CLIENTS, threads_before, threads, threads_peak, (long long)(t_connected - t0),
           (long long)(t_fanout - t_connected));
    CHECK(threads <= MAX_THREADS && threads_peak <= MAX_THREADS, "threads %ld / %ld exceed %d", threads,
          threads_peak, MAX_THREADS);
    int64_t t1 = now_ms();
    for (int i = 0; i < CLIENTS; i++) wps_client_free(c[i]);
    printf("METRIC free_all_ms=%lld\n", (long long)(now_ms() - t1));
    free(c);
    latch_destroy(&started);
    latch_destroy(&joined);
    latch_destroy(&received);
    return 0;
}

int main(int argc, char **argv) {
    if (!have_emulator()) { printf("scale: needs WPS_TEST_CONNSTR (run scripts/c-tests.sh)\n"); return 1; }
    static const test_case tests[] = {
        {"thousand_clients_on_a_bounded_thread_count", test_thousand_clients_on_a_bounded_thread_count},
    };
    return run_tests("scale", tests, sizeof tests / sizeof tests[0], argc, argv);
}
