/* Gateway network options through the C ABI: URL providers on a few shared threads with a
 * timeout, reconnect jitter with unlimited retries, client certificate files checked when set,
 * proxy URLs of every kind. */
#include "harness.h"

#define HUB "nhub"

/* ---- options ---------------------------------------------------------------------------- */

static int test_option_setters_check_their_values(void) {
    wps_options *o = NULL;
    CHECK_OK(wps_options_new(&o));
    CHECK_RC(wps_options_set_reconnect_jitter(o, 101), WPS_ERR_INVALID_ARG);
    CHECK(strstr(wps_last_error_message(), "0..100") != NULL, "message: %s", wps_last_error_message());
    CHECK_OK(wps_options_set_reconnect_jitter(o, 0));
    CHECK_OK(wps_options_set_reconnect_jitter(o, 100));
    CHECK_RC(wps_options_set_reconnect_jitter(NULL, 1), WPS_ERR_NULL_ARG);
    CHECK_OK(wps_options_set_reconnect_retry(o, WPS_RETRY_UNLIMITED, WPS_RETRY_EXPONENTIAL, 1000, 30000));
    CHECK_RC(wps_options_set_url_provider_timeout_ms(o, 0), WPS_ERR_INVALID_ARG);
    CHECK_OK(wps_options_set_url_provider_timeout_ms(o, 250));
    CHECK_RC(wps_options_set_url_provider_timeout_ms(NULL, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_client_cert(NULL, NULL, NULL), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_client_cert(o, "/nonexistent/client.pem", "/nonexistent/client.key"),
             WPS_ERR_INVALID_ARG);
    CHECK(strstr(wps_last_error_message(), "/nonexistent/client.pem") != NULL, "message names the file: %s",
          wps_last_error_message());
    CHECK_RC(wps_options_set_client_cert(o, "/nonexistent/client.pem", NULL), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_options_set_client_cert(o, "\xff", "x"), WPS_ERR_INVALID_UTF8);
    CHECK_OK(wps_options_set_client_cert(o, NULL, NULL));
    const char *proxies[] = {"http://u:p@127.0.0.1:3128", "https://proxy.example", "socks5://127.0.0.1:1080",
                             "socks5h://u:p%40@[::1]:1080", ""};
    for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++) CHECK_OK(wps_options_set_proxy(o, proxies[i]));
    wps_options_free(o);
    return 0;
}

/* Valid, malformed and mismatched PEM files made with the openssl command. */
static int test_client_cert_files_are_checked_when_set(void) {
    char dir[] = "/tmp/wps-netopts-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && for n in a b; do openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
             "-nodes -keyout $n.key -out $n.pem -days 2 -subj /CN=$n >/dev/null 2>&1 || exit 1; done "
             "&& echo junk > junk.pem",
             dir);
    CHECK(system(cmd) == 0, "openssl made the test certificates");
    char cert[256], key[256], other_key[256], junk[256];
    snprintf(cert, sizeof cert, "%s/a.pem", dir);
    snprintf(key, sizeof key, "%s/a.key", dir);
    snprintf(other_key, sizeof other_key, "%s/b.key", dir);
    snprintf(junk, sizeof junk, "%s/junk.pem", dir);
    wps_options *o = NULL;
    CHECK_OK(wps_options_new(&o));
    CHECK_OK(wps_options_set_client_cert(o, cert, key));
    CHECK_RC(wps_options_set_client_cert(o, cert, other_key), WPS_ERR_INVALID_ARG);
    CHECK(strstr(wps_last_error_message(), "does not fit") != NULL, "mismatch: %s", wps_last_error_message());
    CHECK_RC(wps_options_set_client_cert(o, junk, key), WPS_ERR_INVALID_ARG);
    CHECK(strstr(wps_last_error_message(), "no certificate") != NULL, "junk: %s", wps_last_error_message());
    CHECK_RC(wps_options_set_client_cert(o, cert, cert), WPS_ERR_INVALID_ARG);
    CHECK(strstr(wps_last_error_message(), "no private key") != NULL, "no key: %s", wps_last_error_message());
    wps_options_free(o);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return 0;
}

/* ---- URL providers ------------------------------------------------------------------------ */

typedef struct {
    char *url;
    latch calls;
    latch gate;       /* calls numbered >= hang_from wait until this reaches 1 */
    long hang_from;
    long fail_from, fail_until; /* calls in [fail_from, fail_until) fail */
    int sleep_ms;
} prov;

static int32_t test_provider(void *ud, char *buf, size_t cap, size_t *out_len) {
    prov *p = ud;
    long n = latch_get(&p->calls);
    latch_add(&p->calls, 1);
    if (p->sleep_ms) {
        struct timespec ts = {0, (long)p->sleep_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (n >= p->hang_from) latch_wait(&p->gate, 1, 60000);
    if (n >= p->fail_from && n < p->fail_until) return WPS_ERR_UNAUTHORIZED;
    size_t len = strlen(p->url) + 1;
    *out_len = len;
    if (len > cap) return WPS_ERR_BUFFER_TOO_SMALL;
    memcpy(buf, p->url, len);
    return WPS_OK;
}

static void prov_init(prov *p) {
    memset(p, 0, sizeof *p);
    latch_init(&p->calls);
    latch_init(&p->gate);
    p->hang_from = p->fail_from = p->fail_until = 1L << 40;
    p->url = mint_url(HUB, "netopts", ALL_ROLES, 3600);
}

static void prov_destroy(prov *p) {
    latch_destroy(&p->calls);
    latch_destroy(&p->gate);
    free(p->url);
}

enum { SLOW_CLIENTS = 24 };

static int test_slow_providers_share_a_few_threads(void) {
    prov p;
    prov_init(&p);
    CHECK(p.url, "url");
    p.sleep_ms = 100;
    /* Warm up: the runtime and the provider threads exist before the baseline. */
    wps_client *warm = NULL;
    CHECK_OK(wps_client_new_with_provider(test_provider, &p, NULL, &warm));
    CHECK_OK(wps_client_start(warm, 10000));
    long base = thread_count();
    wps_client *cs[SLOW_CLIENTS];
    for (int i = 0; i < SLOW_CLIENTS; i++) {
        CHECK_OK(wps_client_new_with_provider(test_provider, &p, NULL, &cs[i]));
        CHECK_OK(wps_client_start_async(cs[i], 20000, NULL, NULL));
    }
    long max = base;
    int64_t deadline = now_ms() + 20000;
    int connected = 0;
    while (connected < SLOW_CLIENTS && now_ms() < deadline) {
        long t = thread_count();
        if (t > max) max = t;
        connected = 0;
        for (int i = 0; i < SLOW_CLIENTS; i++) connected += wps_client_is_connected(cs[i]) ? 1 : 0;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL); /* sampling period, not synchronisation */
    }
    CHECK(connected == SLOW_CLIENTS, "%d of %d connected", connected, SLOW_CLIENTS);
    printf("    %d slow providers: %ld extra threads\n", SLOW_CLIENTS, max - base);
    CHECK(max - base <= 4, "provider calls took %ld more threads (bound: 4 shared provider threads)", max - base);
    for (int i = 0; i < SLOW_CLIENTS; i++) wps_client_free(cs[i]);
    wps_client_free(warm);
    prov_destroy(&p);
    return 0;
}

static int test_a_hung_provider_fails_the_attempt_within_the_timeout(void) {
    prov p;
    prov_init(&p);
    CHECK(p.url, "url");
    p.hang_from = 0;
    wps_options *o = NULL;
    CHECK_OK(wps_options_new(&o));
    CHECK_OK(wps_options_set_url_provider_timeout_ms(o, 300));
    wps_client *c = NULL;
    CHECK_OK(wps_client_new_with_provider(test_provider, &p, o, &c));
    wps_options_free(o);
    int64_t t0 = now_ms();
    CHECK_RC(wps_client_start(c, 10000), WPS_ERR_URL_PROVIDER);
    int64_t took = now_ms() - t0;
    CHECK(strstr(wps_last_error_message(), "did not return within 300 ms") != NULL, "message: %s",
          wps_last_error_message());
    CHECK(took < 2300, "start failed after %lld ms", (long long)took);
    /* A second start waits for the hung call first (never two calls at once), then fails too. */
    CHECK_RC(wps_client_start(c, 10000), WPS_ERR_URL_PROVIDER);
    CHECK(latch_get(&p.calls) == 1, "%ld provider calls", latch_get(&p.calls));
    /* Once the provider returns, the next start works. */
    latch_add(&p.gate, 1);
    CHECK_OK(wps_client_start(c, 10000));
    wps_client_free(c);
    prov_destroy(&p);
    return 0;
}

static int test_unlimited_jittered_reconnects_outlast_failures(void) {
    prov p;
    prov_init(&p);
    CHECK(p.url, "url");
    p.fail_from = 1;
    p.fail_until = 13; /* twelve failed reconnect attempts */
    wps_options *o = NULL;
    CHECK_OK(wps_options_new(&o));
    CHECK_OK(wps_options_set_reconnect_retry(o, WPS_RETRY_UNLIMITED, WPS_RETRY_FIXED, 40, 40));
    CHECK_OK(wps_options_set_reconnect_jitter(o, 50));
    CHECK_OK(wps_options_set_recovery_timeout_ms(o, 0));
    recorder r;
    rec_init(&r);
    wps_client *c = NULL;
    CHECK_OK(wps_client_new_with_provider(test_provider, &p, o, &c));
    wps_options_free(o);
    CHECK_OK(rec_attach(c, &r));
    CHECK_OK(wps_client_start(c, 10000));
    CHECK(rec_wait(&r, WPS_EVENT_CONNECTED, 1, 10000), "connected");
    char id[128];
    CHECK(conn_id(c, id), "connection id");
    CHECK(emulator_fault(HUB, id, "expire"), "expire");
    CHECK(rec_wait(&r, WPS_EVENT_CONNECTED, 2, 20000), "reconnected after the failures");
    CHECK(latch_get(&p.calls) == 14, "%ld provider calls", latch_get(&p.calls));
    wps_client_free(c);
    rec_free(&r);
    prov_destroy(&p);
    return 0;
}

int main(int argc, char **argv) {
    if (!have_emulator()) { printf("netopts: needs WPS_TEST_CONNSTR (run scripts/c-tests.sh)\n"); return 1; }
    static const test_case tests[] = {
        {"option_setters_check_their_values", test_option_setters_check_their_values},
        {"client_cert_files_are_checked_when_set", test_client_cert_files_are_checked_when_set},
        {"slow_providers_share_a_few_threads", test_slow_providers_share_a_few_threads},
        {"a_hung_provider_fails_the_attempt_within_the_timeout", test_a_hung_provider_fails_the_attempt_within_the_timeout},
        {"unlimited_jittered_reconnects_outlast_failures", test_unlimited_jittered_reconnects_outlast_failures},
    };
    return run_tests("netopts", tests, sizeof tests / sizeof tests[0], argc, argv);
}
