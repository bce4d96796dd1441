/* Upstream events against an emulator with an upstream handler: invoke request/response
 * (blocking and async) and send-event acks, including handler failures. */
#include "harness.h"

#define HUB "ihub"

static wps_client *upstream_client(recorder *r) {
    const char *up = getenv("WPS_TEST_UPSTREAM_CONNSTR");
    if (!up) return NULL;
    setenv("WPS_TEST_CONNSTR", up, 1); /* the tool mints for this emulator from now on */
    char *u = mint_url(HUB, "alice", ALL_ROLES, 3600);
    wps_options *o = NULL;
    wps_options_new(&o);
    wps_options_set_message_retry(o, 0, WPS_RETRY_FIXED, 100, 100);
    wps_client *c = started_client(u, o, r);
    wps_options_free(o);
    free(u);
    return c;
}

static int test_invoke_returns_the_upstream_response(void) {
    recorder r;
    rec_init(&r);
    wps_client *c = upstream_client(&r);
    CHECK(c, "client on the upstream emulator");
    wps_buffer *resp = NULL;
    const char *q = "{\"question\":42}";
    CHECK_OK(wps_invoke_event(c, "echo", (const uint8_t *)q, strlen(q), WPS_DATA_JSON, 10000, &resp));
    CHECK(resp, "response");
    CHECK(wps_buffer_len(resp) == strlen(q) && memcmp(wps_buffer_data(resp), q, strlen(q)) == 0, "echoed body %.*s",
          (int)wps_buffer_len(resp), (const char *)wps_buffer_data(resp));
    CHECK(wps_buffer_data_type(resp) == WPS_DATA_JSON, "json response, got %u", wps_buffer_data_type(resp));
    CHECK(wps_buffer_data(resp)[wps_buffer_len(resp)] == 0, "NUL after the payload");
    wps_buffer_free(resp);
    /* binary round trip */
    const unsigned char bin[] = {0, 1, 2, 3, 0};
    CHECK_OK(wps_invoke_event(c, "echo", bin, sizeof bin, WPS_DATA_BINARY, 10000, &resp));
    CHECK(wps_buffer_len(resp) == sizeof bin && memcmp(wps_buffer_data(resp), bin, sizeof bin) == 0, "binary echo");
    wps_buffer_free(resp);
    /* a failing handler is a service error with a name */
    resp = NULL;
    int32_t rc = wps_invoke_event(c, "fail", (const uint8_t *)"x", 1, WPS_DATA_TEXT, 10000, &resp);
    CHECK(rc >= 400 && rc < 500 && resp == NULL, "failing handler: %s", wps_result_name(rc));
    CHECK(wps_last_error_name() != NULL, "service error name");
    /* async: the response arrives in the completion */
    int ctx;
    CHECK_OK(wps_invoke_event_async(c, "echo", (const uint8_t *)"hi", 2, WPS_DATA_TEXT, 10000, NULL, &ctx));
    CHECK(rec_wait(&r, WPS_EVENT_ACK, 1, 10000), "completion");
    rec_event *e = rec_nth(&r, WPS_EVENT_ACK, 0);
    CHECK(e->op == WPS_OP_INVOKE_EVENT && e->result == WPS_OK && e->op_context == &ctx && e->data_len == 2 &&
              memcmp(e->data, "hi", 2) == 0 && e->data_type == WPS_DATA_TEXT,
          "invoke completion: result %d len %zu", e->result, e->data_len);
    wps_client_free(c);
    rec_free(&r);
    return 0;
}

static int test_send_event_acks_and_handler_failures(void) {
    recorder r;
    rec_init(&r);
    wps_client *c = upstream_client(&r);
    CHECK(c, "client");
    uint64_t ack = 0;
    CHECK_OK(wps_send_event(c, "echo", (const uint8_t *)"e", 1, WPS_DATA_TEXT, 0, 0, &ack));
    CHECK(ack != 0, "ack id");
    int32_t rc = wps_send_event(c, "fail", (const uint8_t *)"e", 1, WPS_DATA_TEXT, 0, 0, &ack);
    CHECK(rc == WPS_ERR_ACK_INTERNAL_SERVER_ERROR, "failing handler: %s", wps_result_name(rc));
    CHECK(wps_last_error_name() && strcmp(wps_last_error_name(), "InternalServerError") == 0, "name %s",
          wps_last_error_name() ? wps_last_error_name() : "(null)");
    CHECK(wps_result_is_retryable(rc), "retryable");
    wps_client_free(c);
    rec_free(&r);
    return 0;
}

int main(int argc, char **argv) {
    if (!getenv("WPS_TEST_UPSTREAM_CONNSTR")) {
        printf("invoke: needs WPS_TEST_UPSTREAM_CONNSTR (run scripts/c-tests.sh)\n");
        return 1;
    }
    static const test_case tests[] = {
        {"invoke_returns_the_upstream_response", test_invoke_returns_the_upstream_response},
        {"send_event_acks_and_handler_failures", test_send_event_acks_and_handler_failures},
    };
    return run_tests("invoke", tests, sizeof tests / sizeof tests[0], argc, argv);
}
