/* API surface without a service: versions, result codes, options, NULL / invalid arguments,
 * stale handles, malformed URLs, dead ports and a server that closes during the handshake. */
#include "harness.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>

static const char *GOOD_URL = "ws://127.0.0.1:9/client/hubs/h?access_token=x";

static int test_version_macros_match_library(void) {
    CHECK(WPS_VERSION_NUMBER == ((WPS_VERSION_MAJOR << 16) | (WPS_VERSION_MINOR << 8) | WPS_VERSION_PATCH),
          "composed macro");
    CHECK(wps_version_number() == WPS_VERSION_NUMBER, "library %u header %u", wps_version_number(),
          (unsigned)WPS_VERSION_NUMBER);
    const char *s = wps_version_string();
    CHECK(s && strcmp(s, WPS_VERSION_STRING) == 0, "library %s, header %s", s ? s : "(null)", WPS_VERSION_STRING);
    char composed[32];
    snprintf(composed, sizeof composed, "%d.%d.%d", WPS_VERSION_MAJOR, WPS_VERSION_MINOR, WPS_VERSION_PATCH);
    CHECK(strcmp(WPS_VERSION_STRING, composed) == 0, "string %s, parts %s", WPS_VERSION_STRING, composed);
    return 0;
}

static int test_event_layout_keeps_the_pinned_field_order(void) {
    /* pinned fields first, in the documented order; later fields only appended */
    CHECK(offsetof(wps_event, struct_size) == 0, "struct_size first");
    CHECK(offsetof(wps_event, type) == 4, "type second");
    size_t order[] = {
        offsetof(wps_event, type), offsetof(wps_event, connection_id), offsetof(wps_event, user_id),
        offsetof(wps_event, group), offsetof(wps_event, from_user_id), offsetof(wps_event, data_type),
        offsetof(wps_event, data), offsetof(wps_event, data_len), offsetof(wps_event, sequence_id),
        offsetof(wps_event, message), offsetof(wps_event, error_name), offsetof(wps_event, ack_id),
        offsetof(wps_event, op_context), offsetof(wps_event, result), offsetof(wps_event, op),
        offsetof(wps_event, is_duplicate),
    };
    for (size_t i = 1; i < sizeof order / sizeof order[0]; i++) CHECK(order[i] > order[i - 1], "field %zu in order", i);
    CHECK(sizeof(((wps_event *)0)->sequence_id) == 8 && sizeof(((wps_event *)0)->data_len) == sizeof(size_t), "widths");
    return 0;
}

static int test_result_codes_have_names_and_text(void) {
    int32_t codes[] = {WPS_OK, WPS_ERR_NULL_ARG, WPS_ERR_INVALID_ARG, WPS_ERR_INVALID_UTF8,
                       WPS_ERR_INVALID_HANDLE, WPS_ERR_TIMEOUT, WPS_ERR_ACK_FORBIDDEN,
                       WPS_ERR_CANCELLED, WPS_ERR_FORKED, WPS_ERR_PANIC};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        CHECK(strncmp(wps_result_name(codes[i]), "WPS_", 4) == 0, "name of %d", codes[i]);
        CHECK(wps_result_str(codes[i]) && *wps_result_str(codes[i]), "text of %d", codes[i]);
    }
    CHECK(strcmp(wps_result_name(WPS_ERR_TIMEOUT), "WPS_ERR_TIMEOUT") == 0, "timeout name");
    CHECK(strcmp(wps_result_name(77777), "WPS_ERR_UNKNOWN") == 0, "unknown name");
    CHECK(wps_result_str(-5) != NULL, "never NULL");
    CHECK(wps_result_is_retryable(WPS_ERR_TIMEOUT) && wps_result_is_retryable(WPS_ERR_NOT_CONNECTED),
          "transient codes retryable");
    CHECK(!wps_result_is_retryable(WPS_ERR_ACK_FORBIDDEN) && !wps_result_is_retryable(WPS_OK),
          "others not");
    return 0;
}

static int test_options_reject_unknown_values(void) {
    wps_options *o = NULL;
    CHECK_RC(wps_options_new(NULL), WPS_ERR_NULL_ARG);
    CHECK_OK(wps_options_new(&o));
    CHECK_RC(wps_options_set_protocol(o, 0), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_options_set_protocol(o, 99), WPS_ERR_INVALID_ARG);
    CHECK_OK(wps_options_set_protocol(o, WPS_PROTOCOL_PROTOBUF));
    CHECK_OK(wps_options_set_protocol(o, WPS_PROTOCOL_PROTOBUF_RELIABLE));
    CHECK_RC(wps_options_set_protocol(o, 5), WPS_ERR_INVALID_ARG);
    CHECK_OK(wps_options_set_protocol(o, WPS_PROTOCOL_JSON));
    CHECK_RC(wps_options_set_auto_reconnect(o, 2), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_options_set_auto_rejoin_groups(o, 7), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_options_set_ack_timeout_ms(o, 0), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_options_set_message_retry(o, 3, 9, 10, 20), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_options_set_message_retry(o, 3, WPS_RETRY_FIXED, 20, 10), WPS_ERR_INVALID_ARG);
    CHECK_OK(wps_options_set_message_retry(o, 0, WPS_RETRY_FIXED, 10, 10));
    CHECK_RC(wps_options_set_reconnect_retry(o, 3, 0, 10, 20), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_options_set_keep_alive(o, 1000, 0), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_options_set_connect_timeout_ms(o, 0), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_options_set_max_message_size(o, 0), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_options_set_dispatch_mode(o, 3), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_options_set_ca_file(o, "\xff\xfe"), WPS_ERR_INVALID_UTF8);
    CHECK_OK(wps_options_set_ca_file(o, NULL));
    /* every setter rejects a NULL builder */
    CHECK_RC(wps_options_set_protocol(NULL, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_auto_reconnect(NULL, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_auto_rejoin_groups(NULL, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_ack_timeout_ms(NULL, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_message_retry(NULL, 1, 1, 1, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_reconnect_retry(NULL, 1, 1, 1, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_recovery_timeout_ms(NULL, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_keep_alive(NULL, 1, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_connect_timeout_ms(NULL, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_max_message_size(NULL, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_shutdown_timeout_ms(NULL, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_dispatch_mode(NULL, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_ca_file(NULL, "x"), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_proxy(NULL, "http://127.0.0.1:1"), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_socket_buffers(NULL, 1, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_sequence_ack_interval_ms(NULL, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_options_set_fire_and_forget_buffer(NULL, 1), WPS_ERR_NULL_ARG);
    CHECK_OK(wps_options_set_fire_and_forget_buffer(o, 256));
    CHECK_RC(wps_options_set_socket_buffers(o, 0, 1), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_options_set_sequence_ack_interval_ms(o, 0), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_options_set_proxy(o, "\xff"), WPS_ERR_INVALID_UTF8);
    CHECK_OK(wps_options_set_proxy(o, ""));
    CHECK_OK(wps_options_set_socket_buffers(o, 4096, 4096));
    wps_options_free(o);
    wps_options_free(NULL);
    return 0;
}

/* Every size and duration option is range-checked: what a setter accepts, a client survives. */
static int test_option_values_out_of_range_are_rejected_and_accepted_extremes_work(void) {
    wps_options *o = NULL;
    CHECK_OK(wps_options_new(&o));
    size_t huge[] = {SIZE_MAX, SIZE_MAX / 2, (size_t)16777216 + 1};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        CHECK_RC(wps_options_set_socket_buffers(o, huge[i], 4096), WPS_ERR_INVALID_ARG);
        CHECK(strstr(wps_last_error_message(), "16777216") != NULL, "bound named: %s", wps_last_error_message());
        CHECK_RC(wps_options_set_socket_buffers(o, 4096, huge[i]), WPS_ERR_INVALID_ARG);
        CHECK_RC(wps_options_set_max_message_size(o, huge[i] > 67108864 ? huge[i] : 67108865), WPS_ERR_INVALID_ARG);
        CHECK(strstr(wps_last_error_message(), "67108864") != NULL, "bound named: %s", wps_last_error_message());
    }
    CHECK_RC(wps_options_set_socket_buffers(o, 0, 4096), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_options_set_shutdown_timeout_ms(o, 0), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_options_set_keep_alive(o, 0, 0), WPS_ERR_INVALID_ARG);
    /* the extremes that are accepted */
    CHECK_OK(wps_options_set_socket_buffers(o, 16777216, 16777216));
    CHECK_OK(wps_options_set_socket_buffers(o, 1, 1));
    CHECK_OK(wps_options_set_max_message_size(o, 67108864));
    CHECK_OK(wps_options_set_ack_timeout_ms(o, UINT32_MAX));
    CHECK_OK(wps_options_set_message_retry(o, UINT32_MAX, WPS_RETRY_EXPONENTIAL, UINT32_MAX, UINT32_MAX));
    CHECK_OK(wps_options_set_reconnect_retry(o, UINT32_MAX, WPS_RETRY_EXPONENTIAL, 0, UINT32_MAX));
    CHECK_OK(wps_options_set_recovery_timeout_ms(o, UINT32_MAX));
    CHECK_OK(wps_options_set_keep_alive(o, UINT32_MAX, UINT32_MAX));
    CHECK_OK(wps_options_set_connect_timeout_ms(o, UINT32_MAX));
    CHECK_OK(wps_options_set_sequence_ack_interval_ms(o, UINT32_MAX));
    CHECK_OK(wps_options_set_fire_and_forget_buffer(o, UINT32_MAX));
    CHECK_OK(wps_options_set_shutdown_timeout_ms(o, UINT32_MAX));
    if (have_emulator()) {
        /* a client built from all of them connects, exchanges a message and stops */
        char *u = mint_url("apihub", "extreme", ALL_ROLES, 3600);
        CHECK(u, "url");
        recorder r;
        rec_init(&r);
        wps_client *c = started_client(u, o, &r);
        free(u);
        CHECK(c, "client with extreme options");
        char g[96];
        unique_group("extreme", g);
        CHECK_OK(wps_join_group(c, g, 0, NULL));
        CHECK_OK(wps_send_to_group(c, g, (const uint8_t *)"hi", 2, WPS_DATA_TEXT, 0, 0, NULL));
        CHECK(rec_wait(&r, WPS_EVENT_GROUP_MESSAGE, 1, 5000), "message received");
        CHECK_OK(wps_client_stop(c, 5000));
        wps_client_free(c);
        rec_free(&r);
    }
    wps_options_free(o);
    return 0;
}

/* A value that was never a handle is WPS_ERR_INVALID_HANDLE, not WPS_ERR_FORKED (that is only
 * for a real handle inherited from before fork()). */
static int test_garbage_handles_are_invalid_not_forked(void) {
    int on_stack = 0;
    wps_client *garbage[] = {(wps_client *)(uintptr_t)-1, (wps_client *)(uintptr_t)1,
                             (wps_client *)(uintptr_t)0x1234, (wps_client *)(uintptr_t)UINT32_MAX,
                             (wps_client *)(void *)&on_stack};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        CHECK_RC(wps_client_stop(garbage[i], 10), WPS_ERR_INVALID_HANDLE);
        CHECK_RC(wps_set_callback(garbage[i], WPS_EVENT_CONNECTED, NULL, NULL), WPS_ERR_INVALID_HANDLE);
        CHECK(!wps_client_is_connected(garbage[i]), "not connected");
        wps_client_free(garbage[i]); /* a no-op */
    }
    /* a real handle with one bit flipped is garbage too */
    wps_client *c = NULL;
    CHECK_OK(wps_client_new(GOOD_URL, NULL, &c));
    CHECK_RC(wps_client_stop((wps_client *)((uintptr_t)c ^ ((uintptr_t)1 << (sizeof(void *) * 8 - 1))), 10),
             WPS_ERR_INVALID_HANDLE);
    CHECK_OK(wps_set_callback(c, WPS_EVENT_CONNECTED, NULL, NULL));
    wps_client_free(c);
    return 0;
}

static wps_result dummy_provider(void *ud, char *buf, size_t cap, size_t *out_len) {
    (void)ud; (void)buf; (void)cap; (void)out_len;
    return WPS_ERR_URL_PROVIDER;
}

static int test_client_new_rejects_bad_arguments(void) {
    wps_client *c = (wps_client *)0x1;
    CHECK_RC(wps_client_new(NULL, NULL, &c), WPS_ERR_NULL_ARG);
    CHECK(c == (wps_client *)0x1, "out untouched on failure");
    CHECK_RC(wps_client_new(GOOD_URL, NULL, NULL), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_client_new("ws://127.0.0.1/\xc3\x28", NULL, &c), WPS_ERR_INVALID_UTF8);
    CHECK_RC(wps_client_new("not a url", NULL, &c), WPS_ERR_INVALID_URL);
    CHECK(strstr(wps_last_error_message(), "malformed") != NULL, "message: %s", wps_last_error_message());
    CHECK_RC(wps_client_new("http://127.0.0.1/client/hubs/h?access_token=x", NULL, &c), WPS_ERR_INVALID_URL);
    CHECK_RC(wps_client_new("ws://", NULL, &c), WPS_ERR_INVALID_URL);
    CHECK_RC(wps_client_new_with_provider(NULL, NULL, NULL, &c), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_client_new_with_provider(dummy_provider, NULL, NULL, NULL), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_client_new_with_provider_ex(NULL, NULL, NULL, NULL, &c), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_client_new_with_provider_ex(dummy_provider, NULL, NULL, NULL, NULL), WPS_ERR_NULL_ARG);
    CHECK(c == (wps_client *)0x1, "out untouched on failure");
    /* response buffer accessors accept NULL */
    CHECK(wps_buffer_data(NULL) == NULL && wps_buffer_len(NULL) == 0 && wps_buffer_data_type(NULL) == 0, "NULL buffer");
    wps_buffer_free(NULL);
    return 0;
}

static void noop_cb(void *ud, const wps_event *e) { (void)ud; (void)e; }

static int test_null_and_invalid_arguments_on_a_client(void) {
    wps_client *c = NULL;
    uint64_t ack = 99;
    CHECK_OK(wps_client_new(GOOD_URL, NULL, &c));
    /* NULL client everywhere */
    CHECK_RC(wps_client_start(NULL, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_client_stop(NULL, 1), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_client_start_async(NULL, 1, NULL, NULL), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_client_stop_async(NULL, NULL, NULL), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_set_callback(NULL, WPS_EVENT_CONNECTED, noop_cb, NULL), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_set_callback_ex(NULL, WPS_EVENT_CONNECTED, noop_cb, NULL, NULL), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_join_group(NULL, "g", 0, &ack), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_leave_group(NULL, "g", 0, &ack), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_send_to_group(NULL, "g", (const uint8_t *)"x", 1, WPS_DATA_TEXT, 0, 0, &ack), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_send_event(NULL, "e", (const uint8_t *)"x", 1, WPS_DATA_TEXT, 0, 0, &ack), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_join_group_async(NULL, "g", 0, NULL, NULL, &ack), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_leave_group_async(NULL, "g", 0, NULL, NULL, &ack), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_send_to_group_async(NULL, "g", NULL, 0, WPS_DATA_TEXT, 0, 0, NULL, NULL, &ack), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_send_event_async(NULL, "e", NULL, 0, WPS_DATA_TEXT, 0, 0, NULL, NULL, &ack), WPS_ERR_NULL_ARG);
    CHECK(ack == 99, "out_ack_id untouched when not accepted");
    CHECK(!wps_client_is_connected(NULL), "NULL is not connected");
    CHECK(wps_client_get_fd(NULL) == -1, "no fd for NULL");
    CHECK_RC(wps_client_dispatch(NULL, 0, 0, NULL), WPS_ERR_NULL_ARG);
    char buf[64];
    CHECK_RC(wps_client_get_connection_id(NULL, buf, sizeof buf, NULL), WPS_ERR_NULL_ARG);
    wps_buffer *resp = NULL;
    CHECK_RC(wps_invoke_event(NULL, "e", NULL, 0, WPS_DATA_TEXT, 0, &resp), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_invoke_event(c, "e", NULL, 0, WPS_DATA_TEXT, 0, NULL), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_invoke_event_async(NULL, "e", NULL, 0, WPS_DATA_TEXT, 0, NULL, NULL), WPS_ERR_NULL_ARG);

    /* NULL string / payload arguments on a live client */
    CHECK_RC(wps_join_group(c, NULL, 0, &ack), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_leave_group(c, NULL, 0, &ack), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_join_group_async(c, NULL, 0, NULL, NULL, &ack), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_send_to_group(c, NULL, (const uint8_t *)"x", 1, WPS_DATA_TEXT, 0, 0, &ack), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_send_to_group(c, "g", NULL, 5, WPS_DATA_TEXT, 0, 0, &ack), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_send_event(c, NULL, (const uint8_t *)"x", 1, WPS_DATA_TEXT, 0, 0, &ack), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_send_event(c, "e", NULL, 5, WPS_DATA_BINARY, 0, 0, &ack), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_invoke_event(c, NULL, NULL, 0, WPS_DATA_TEXT, 0, &resp), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_client_get_connection_id(c, NULL, 10, NULL), WPS_ERR_NULL_ARG);
    CHECK(ack == 99, "out_ack_id untouched when not accepted");

    /* invalid UTF-8 and unknown enum values */
    CHECK_RC(wps_join_group(c, "bad\xff", 0, &ack), WPS_ERR_INVALID_UTF8);
    CHECK_RC(wps_send_event(c, "\xc0", NULL, 0, WPS_DATA_TEXT, 0, 0, &ack), WPS_ERR_INVALID_UTF8);
    CHECK_RC(wps_send_to_group(c, "g", (const uint8_t *)"\xff", 1, WPS_DATA_TEXT, 0, 0, &ack), WPS_ERR_INVALID_UTF8);
    CHECK_RC(wps_send_to_group(c, "g", (const uint8_t *)"\xff", 1, WPS_DATA_JSON, 0, 0, &ack), WPS_ERR_INVALID_UTF8);
    CHECK_RC(wps_send_to_group(c, "g", (const uint8_t *)"x", 1, 0, 0, 0, &ack), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_send_to_group(c, "g", (const uint8_t *)"x", 1, 42, 0, 0, &ack), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_send_to_group(c, "g", (const uint8_t *)"x", 1, WPS_DATA_TEXT, 0x80, 0, &ack), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_send_to_group(c, "g", (const uint8_t *)"x", 1, WPS_DATA_TEXT, WPS_SEND_FIRE_AND_FORGET, 5, &ack),
             WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_send_event(c, "e", (const uint8_t *)"x", 1, WPS_DATA_TEXT, WPS_SEND_NO_ECHO, 0, &ack),
             WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_set_callback(c, 0, noop_cb, NULL), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_set_callback(c, 1000, noop_cb, NULL), WPS_ERR_INVALID_ARG);
    CHECK(ack == 99, "out_ack_id untouched when not accepted");

    /* a thread-mode client has no fd and cannot be dispatched */
    CHECK(wps_client_get_fd(c) == -1, "no fd in thread mode");
    CHECK_RC(wps_client_dispatch(c, 0, 0, NULL), WPS_ERR_INVALID_STATE);
    CHECK(!wps_client_is_connected(c), "not started");
    CHECK_RC(wps_client_get_connection_id(c, buf, sizeof buf, NULL), WPS_ERR_NOT_CONNECTED);
    /* not started: operations are accepted (ack id allocated) but fail with NOT_CONNECTED */
    CHECK_RC(wps_join_group(c, "g", 0, &ack), WPS_ERR_NOT_CONNECTED);
    CHECK(ack != 99 && ack != 0, "ack id written for an accepted request: %llu", (unsigned long long)ack);
    CHECK(wps_result_is_retryable(WPS_ERR_NOT_CONNECTED), "retryable");
    wps_client_free(c);
    return 0;
}

static int test_oversized_payload_is_rejected(void) {
    wps_options *o = NULL;
    wps_client *c = NULL;
    uint64_t ack = 7;
    CHECK_OK(wps_options_new(&o));
    CHECK_OK(wps_options_set_max_message_size(o, 1024));
    CHECK_OK(wps_client_new(GOOD_URL, o, &c));
    wps_options_free(o);
    unsigned char *big = calloc(1, 4096);
    int32_t rc = wps_send_to_group(c, "g", big, 4096, WPS_DATA_BINARY, 0, 0, &ack);
    free(big);
    CHECK_RC(rc, WPS_ERR_PAYLOAD_TOO_LARGE);
    CHECK(ack == 7, "not accepted");
    wps_client_free(c);
    return 0;
}

static int test_freed_handle_is_invalid_and_free_is_idempotent(void) {
    wps_client *c = NULL;
    CHECK_OK(wps_client_new(GOOD_URL, NULL, &c));
    wps_client_free(c);
    CHECK_RC(wps_client_start(c, 1), WPS_ERR_INVALID_HANDLE);
    CHECK_RC(wps_join_group(c, "g", 0, NULL), WPS_ERR_INVALID_HANDLE);
    CHECK_RC(wps_set_callback(c, WPS_EVENT_CONNECTED, noop_cb, NULL), WPS_ERR_INVALID_HANDLE);
    CHECK(!wps_client_is_connected(c), "freed is not connected");
    wps_client_free(c); /* double free: no-op */
    wps_client_free(NULL);
    /* a forged handle is just unknown */
    CHECK_RC(wps_client_stop((wps_client *)(uintptr_t)0x7777, 1), WPS_ERR_INVALID_HANDLE);
    return 0;
}

static int frees;
static void count_free(void *ud) { (void)ud; __atomic_add_fetch(&frees, 1, __ATOMIC_SEQ_CST); }

static int test_user_data_free_runs_once_on_replace_and_on_free(void) {
    wps_client *c = NULL;
    frees = 0;
    CHECK_OK(wps_client_new(GOOD_URL, NULL, &c));
    CHECK_OK(wps_set_callback_ex(c, WPS_EVENT_CONNECTED, noop_cb, NULL, count_free));
    CHECK_OK(wps_set_callback_ex(c, WPS_EVENT_CONNECTED, noop_cb, NULL, count_free));
    CHECK(frees == 1, "replaced registration freed once, got %d", frees);
    CHECK_OK(wps_set_callback(c, WPS_EVENT_CONNECTED, NULL, NULL));
    CHECK(frees == 2, "removed registration freed, got %d", frees);
    CHECK_OK(wps_set_callback_ex(c, WPS_EVENT_GROUP_MESSAGE, noop_cb, NULL, count_free));
    CHECK_RC(wps_set_callback_ex(c, 99, noop_cb, NULL, count_free), WPS_ERR_INVALID_ARG);
    CHECK(frees == 2, "failed registration not freed");
    wps_client_free(c);
    CHECK(frees == 3, "free releases the remaining registration, got %d", frees);
    return 0;
}

static int test_dead_port_fails_with_connection_error(void) {
    /* bind a port and close it again so nothing listens there */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0, "bind");
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/client/hubs/h?access_token=x", ntohs(a.sin_port));
    wps_client *c = NULL;
    CHECK_OK(wps_client_new(url, NULL, &c));
    int64_t t0 = now_ms();
    CHECK_RC(wps_client_start(c, 10000), WPS_ERR_CONNECTION);
    CHECK(now_ms() - t0 < 9000, "fails fast");
    CHECK(wps_last_error_message() != NULL, "message");
    wps_client_free(c);
    return 0;
}

/* A TCP server that accepts one connection, reads the upgrade request and closes. */
typedef struct { int fd; int mode; } tiny_server;

static void *tiny_server_run(void *arg) {
    tiny_server *s = arg;
    int conn = accept(s->fd, NULL, NULL);
    if (conn >= 0) {
        char buf[4096];
        ssize_t n = recv(conn, buf, sizeof buf, 0);
        (void)n;
        if (s->mode == 1) {
            const char *resp = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
            ssize_t w = send(conn, resp, strlen(resp), MSG_NOSIGNAL);
            (void)w;
        }
        close(conn);
    }
    return NULL;
}

static int start_tiny_server(tiny_server *s, int mode, pthread_t *t) {
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    s->mode = mode;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s->fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->fd, 4) != 0) return -1;
    socklen_t len = sizeof a;
    getsockname(s->fd, (struct sockaddr *)&a, &len);
    pthread_create(t, NULL, tiny_server_run, s);
    return ntohs(a.sin_port);
}

static int test_server_closing_during_handshake_is_a_clear_error(void) {
    for (int mode = 0; mode < 2; mode++) {
        tiny_server s;
        pthread_t t;
        int port = start_tiny_server(&s, mode, &t);
        CHECK(port > 0, "server");
        char url[128];
        snprintf(url, sizeof url, "ws://127.0.0.1:%d/client/hubs/h?access_token=x", port);
        wps_client *c = NULL;
        CHECK_OK(wps_client_new(url, NULL, &c));
        int32_t rc = wps_client_start(c, 10000);
        int32_t expected = mode == 0 ? WPS_ERR_CONNECTION : WPS_ERR_HANDSHAKE;
        wps_client_free(c);
        pthread_join(t, NULL);
        close(s.fd);
        CHECK(rc == expected, "mode %d: got %s (%s)", mode, wps_result_name(rc),
              wps_last_error_message() ? wps_last_error_message() : "");
    }
    return 0;
}

/* A server that accepts and never answers: start blocks until the client is freed. */
typedef struct { wps_client *c; int32_t rc; latch done; } blocked_call;

static void *blocked_start(void *arg) {
    blocked_call *b = arg;
    b->rc = wps_client_start(b->c, 60000);
    latch_add(&b->done, 1);
    return NULL;
}

static int test_free_while_another_thread_is_blocked_in_start(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0 && listen(s, 4) == 0, "listen");
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/client/hubs/h?access_token=x", ntohs(a.sin_port));
    blocked_call b;
    latch_init(&b.done);
    b.rc = -1;
    CHECK_OK(wps_client_new(url, NULL, &b.c));
    pthread_t t;
    pthread_create(&t, NULL, blocked_start, &b);
    /* the connection reaching the listener proves the call is in flight */
    int conn = accept(s, NULL, NULL);
    CHECK(conn >= 0, "accept");
    CHECK(!latch_wait(&b.done, 1, 200), "start is still blocked");
    int64_t t0 = now_ms();
    wps_client_free(b.c);
    CHECK(latch_wait(&b.done, 1, 10000), "blocked start returned after free");
    pthread_join(t, NULL);
    CHECK(b.rc == WPS_ERR_CANCELLED || b.rc == WPS_ERR_INVALID_HANDLE, "got %s", wps_result_name(b.rc));
    CHECK(now_ms() - t0 < 8000, "free did not wait for the connect timeout");
    close(conn);
    close(s);
    latch_destroy(&b.done);
    return 0;
}

static int test_log_callback_levels(void) {
    CHECK_RC(wps_set_log_callback(NULL, NULL, 9), WPS_ERR_INVALID_ARG);
    CHECK_OK(wps_set_log_callback(NULL, NULL, WPS_LOG_OFF));
    return 0;
}

int main(int argc, char **argv) {
    static const test_case tests[] = {
        {"version_macros_match_library", test_version_macros_match_library},
        {"event_layout_keeps_the_pinned_field_order", test_event_layout_keeps_the_pinned_field_order},
        {"result_codes_have_names_and_text", test_result_codes_have_names_and_text},
        {"options_reject_unknown_values", test_options_reject_unknown_values},
        {"option_values_out_of_range_are_rejected_and_accepted_extremes_work",
         test_option_values_out_of_range_are_rejected_and_accepted_extremes_work},
        {"client_new_rejects_bad_arguments", test_client_new_rejects_bad_arguments},
        {"null_and_invalid_arguments_on_a_client", test_null_and_invalid_arguments_on_a_client},
        {"oversized_payload_is_rejected", test_oversized_payload_is_rejected},
        {"freed_handle_is_invalid_and_free_is_idempotent", test_freed_handle_is_invalid_and_free_is_idempotent},
        {"garbage_handles_are_invalid_not_forked", test_garbage_handles_are_invalid_not_forked},
        {"user_data_free_runs_once_on_replace_and_on_free", test_user_data_free_runs_once_on_replace_and_on_free},
        {"dead_port_fails_with_connection_error", test_dead_port_fails_with_connection_error},
        {"server_closing_during_handshake_is_a_clear_error", test_server_closing_during_handshake_is_a_clear_error},
        {"free_while_another_thread_is_blocked_in_start", test_free_while_another_thread_is_blocked_in_start},
        {"log_callback_levels", test_log_callback_levels},
    };
    return run_tests("api", tests, sizeof tests / sizeof tests[0], argc, argv);
}
