/* Messaging against the emulator: connect, join, every data type, no-echo, fire-and-forget,
 * service errors, duplicate ack ids, blocking calls inside callbacks, async completions. */
#include "harness.h"

#define HUB "chub"

static wps_options *no_retry_options(void) {
    wps_options *o = NULL;
    if (wps_options_new(&o) != WPS_OK) return NULL;
    wps_options_set_message_retry(o, 0, WPS_RETRY_FIXED, 100, 100);
    return o;
}

static int test_connect_and_stop(void) {
    recorder r;
    rec_init(&r);
    char *url = mint_url(HUB, "alice", ALL_ROLES, 3600);
    CHECK(url, "mint url");
    wps_client *c = started_client(url, NULL, &r);
    free(url);
    CHECK(c, "start");
    CHECK(wps_client_is_connected(c), "connected");
    CHECK(rec_wait(&r, WPS_EVENT_CONNECTED, 1, 5000), "CONNECTED event");
    rec_event *ev = rec_nth(&r, WPS_EVENT_CONNECTED, 0);
    char id[128];
    CHECK(conn_id(c, id), "connection id");
    CHECK(ev->connection_id && strcmp(ev->connection_id, id) == 0, "event id %s vs %s", ev->connection_id, id);
    CHECK(ev->user_id && strcmp(ev->user_id, "alice") == 0, "user id");
    size_t need = 0;
    char tiny[2];
    CHECK_RC(wps_client_get_connection_id(c, tiny, sizeof tiny, &need), WPS_ERR_BUFFER_TOO_SMALL);
    CHECK(need == strlen(id) + 1, "needed size %zu", need);
    CHECK_RC(wps_client_start(c, 1000), WPS_ERR_INVALID_STATE);
    CHECK_OK(wps_client_stop(c, 5000));
    CHECK(rec_wait(&r, WPS_EVENT_STOPPED, 1, 5000), "STOPPED");
    CHECK(!wps_client_is_connected(c), "not connected after stop");
    /* DISCONNECTED precedes STOPPED, STOPPED is last */
    pthread_mutex_lock(&r.mu);
    int disc_before = 0, stopped_last = r.n > 0 && r.ev[r.n - 1].type == WPS_EVENT_STOPPED;
    for (size_t i = 0; i < r.n; i++) if (r.ev[i].type == WPS_EVENT_DISCONNECTED) disc_before = 1;
    pthread_mutex_unlock(&r.mu);
    CHECK(disc_before && stopped_last, "order: disconnected %d, stopped last %d", disc_before, stopped_last);
    /* restart: callbacks survive */
    CHECK_OK(wps_client_start(c, 10000));
    CHECK(rec_wait(&r, WPS_EVENT_CONNECTED, 2, 5000), "second CONNECTED");
    wps_client_free(c);
    CHECK(rec_count(&r, WPS_EVENT_STOPPED) == 2, "stopped once per start");
    CHECK(!r.overlap && !r.bad_struct_size, "never concurrent, struct size ok");
    rec_free(&r);
    return 0;
}

static int send_and_receive_each_data_type(uint32_t protocol) {
    recorder ra, rb;
    rec_init(&ra);
    rec_init(&rb);
    char g[96];
    unique_group("types", g);
    wps_options *o = NULL;
    CHECK_OK(wps_options_new(&o));
    CHECK_OK(wps_options_set_protocol(o, protocol));
    int reliable = protocol == WPS_PROTOCOL_JSON_RELIABLE || protocol == WPS_PROTOCOL_PROTOBUF_RELIABLE;
    int protobuf = protocol == WPS_PROTOCOL_PROTOBUF_RELIABLE || protocol == WPS_PROTOCOL_PROTOBUF;
    char *ua = mint_url(HUB, "alice", ALL_ROLES, 3600), *ub = mint_url(HUB, "bob", ALL_ROLES, 3600);
    wps_client *a = started_client(ua, o, &ra), *b = started_client(ub, o, &rb);
    wps_options_free(o);
    free(ua);
    free(ub);
    CHECK(a && b, "clients");
    uint64_t ack = 0;
    CHECK_OK(wps_join_group(b, g, 0, &ack));
    CHECK(ack != 0, "join ack id");
    static const unsigned char bin[] = {0, 1, 2, 0, 255, 254};
    const char *json = "{\"k\":[1,2,{\"x\":null}]}";
    const char *text = "h\xc3\xa9llo";
    const unsigned char proto[] = {0x0a, 0x03, 'a', 'b', 'c'};
    struct { uint32_t type; const unsigned char *data; size_t len; } msgs[] = {
        {WPS_DATA_TEXT, (const unsigned char *)text, strlen(text)},
        {WPS_DATA_JSON, (const unsigned char *)json, strlen(json)},
        {WPS_DATA_BINARY, bin, sizeof bin},
        {WPS_DATA_PROTOBUF, proto, sizeof proto},
        {WPS_DATA_TEXT, NULL, 0},
    };
    size_t n = sizeof msgs / sizeof msgs[0];
    for (size_t i = 0; i < n; i++) {
        uint64_t id = 0;
        int32_t rc = wps_send_to_group(a, g, msgs[i].data, msgs[i].len, msgs[i].type, 0, 0, &id);
        CHECK(rc == WPS_OK, "send %zu: %s (%s)", i, wps_result_name(rc), wps_last_error_message());
        CHECK(id != 0, "ack id");
    }
    CHECK(rec_wait(&rb, WPS_EVENT_GROUP_MESSAGE, n, 5000), "received %zu of %zu", rec_count(&rb, WPS_EVENT_GROUP_MESSAGE), n);
    for (size_t i = 0; i < n; i++) {
        rec_event *e = rec_nth(&rb, WPS_EVENT_GROUP_MESSAGE, i);
        /* the protobuf subprotocol may carry JSON as text_data (as the C# protobuf client does) */
        int json_as_text = protobuf && msgs[i].type == WPS_DATA_JSON && e->data_type == WPS_DATA_TEXT;
        CHECK(e->data_type == msgs[i].type || json_as_text, "msg %zu type %u", i, e->data_type);
        CHECK(e->data_len == msgs[i].len && (msgs[i].len == 0 || memcmp(e->data, msgs[i].data, msgs[i].len) == 0),
              "msg %zu payload (len %zu)", i, e->data_len);
        CHECK(e->data[e->data_len] == 0, "NUL after payload");
        CHECK(e->group && strcmp(e->group, g) == 0, "group");
        if (!protobuf) CHECK(e->from_user_id && strcmp(e->from_user_id, "alice") == 0, "from user");
        CHECK(reliable ? e->sequence_id > 0 : e->sequence_id == 0, "sequence id %llu", (unsigned long long)e->sequence_id);
    }
    wps_client_free(a);
    wps_client_free(b);
    CHECK(!rb.overlap && !rb.bad_struct_size, "never concurrent");
    rec_free(&ra);
    rec_free(&rb);
    return 0;
}

/* The offline queue: async sends before start are accepted up to the limit, the next one
 * fails at once with WPS_ERR_QUEUE_FULL (no completion); after start they go out in order and
 * complete; stop completes what is still queued with WPS_ERR_CANCELLED. */
static int test_offline_queue_before_start_full_and_stop(void) {
    recorder ra, rb, rc;
    rec_init(&ra);
    rec_init(&rb);
    rec_init(&rc);
    char g[96];
    unique_group("offline", g);
    char *ua = mint_url(HUB, "off-rx", ALL_ROLES, 3600), *ub = mint_url(HUB, "off-tx", ALL_ROLES, 3600);
    CHECK(ua && ub, "urls");
    wps_client *a = started_client(ua, NULL, &ra);
    CHECK(a, "receiver");
    CHECK_OK(wps_join_group(a, g, 0, NULL));
    wps_options *o = NULL;
    CHECK_OK(wps_options_new(&o));
    CHECK_RC(wps_options_set_offline_queue(NULL, 3, 0), WPS_ERR_NULL_ARG);
    CHECK_OK(wps_options_set_offline_queue(o, 3, 0));
    wps_client *b = NULL;
    CHECK_OK(wps_client_new(ub, o, &b));
    CHECK_OK(rec_attach(b, &rb));
    uint64_t ids[3];
    for (int i = 0; i < 3; i++) {
        char text[16];
        int n = snprintf(text, sizeof text, "q%d", i);
        CHECK_OK(wps_send_to_group_async(b, g, (const uint8_t *)text, (size_t)n, WPS_DATA_TEXT, 0, 0, NULL, NULL,
                                         &ids[i]));
    }
    uint64_t refused = 0;
    CHECK_RC(wps_send_to_group_async(b, g, (const uint8_t *)"no", 2, WPS_DATA_TEXT, 0, 0, NULL, NULL, &refused),
             WPS_ERR_QUEUE_FULL);
    CHECK(strcmp(wps_result_name(WPS_ERR_QUEUE_FULL), "WPS_ERR_QUEUE_FULL") == 0, "name");
    CHECK_OK(wps_client_start(b, 10000));
    CHECK(rec_wait(&rb, WPS_EVENT_ACK, 3, 10000), "three completions");
    CHECK(rec_wait(&ra, WPS_EVENT_GROUP_MESSAGE, 3, 10000), "three messages");
    for (int i = 0; i < 3; i++) {
        /* Completions of different operations may come in any order; each one comes once. */
        int found = 0;
        for (size_t k = 0; k < 3; k++) {
            rec_event *ack = rec_nth(&rb, WPS_EVENT_ACK, k);
            if (ack->ack_id == ids[i]) found += ack->result == WPS_OK ? 1 : 100;
        }
        CHECK(found == 1, "completion of ack id %llu: %d", (unsigned long long)ids[i], found);
        rec_event *m = rec_nth(&ra, WPS_EVENT_GROUP_MESSAGE, (size_t)i);
        char want[16];
        snprintf(want, sizeof want, "q%d", i);
        CHECK(m->data_len == strlen(want) && memcmp(m->data, want, m->data_len) == 0, "message %d in order", i);
    }
    CHECK(rec_count(&rb, WPS_EVENT_ACK) == 3, "no completion for the refused send");
    /* Stop cancels what is queued. */
    wps_client *c = NULL;
    CHECK_OK(wps_client_new(ub, o, &c));
    CHECK_OK(rec_attach(c, &rc));
    CHECK_OK(wps_send_to_group_async(c, g, (const uint8_t *)"x", 1, WPS_DATA_TEXT, 0, 0, NULL, NULL, NULL));
    CHECK_OK(wps_join_group_async(c, "other", 0, NULL, NULL, NULL));
    CHECK_OK(wps_client_stop(c, 5000));
    CHECK(rec_wait(&rc, WPS_EVENT_ACK, 2, 5000), "two completions");
    CHECK(rec_nth(&rc, WPS_EVENT_ACK, 0)->result == WPS_ERR_CANCELLED &&
              rec_nth(&rc, WPS_EVENT_ACK, 1)->result == WPS_ERR_CANCELLED,
          "cancelled by stop");
    wps_options_free(o);
    free(ua);
    free(ub);
    wps_client_free(a);
    wps_client_free(b);
    wps_client_free(c);
    rec_free(&ra);
    rec_free(&rb);
    rec_free(&rc);
    return 0;
}

/* Fire-and-forget sends with the offline queue: made before start they wait in the same queue
 * as acked sends, in order, count against its bound (WPS_ERR_QUEUE_FULL at once for an async
 * one), and complete once written; without the queue they fail with WPS_ERR_NOT_CONNECTED. */
static int test_offline_queue_fire_and_forget_before_start(void) {
    recorder ra, rb;
    rec_init(&ra);
    rec_init(&rb);
    char g[96];
    unique_group("offline-ff", g);
    char *ua = mint_url(HUB, "offff-rx", ALL_ROLES, 3600), *ub = mint_url(HUB, "offff-tx", ALL_ROLES, 3600);
    CHECK(ua && ub, "urls");
    wps_client *a = started_client(ua, NULL, &ra);
    CHECK(a, "receiver");
    CHECK_OK(wps_join_group(a, g, 0, NULL));
    /* Without the queue: refused before start. */
    wps_client *plain = NULL;
    CHECK_OK(wps_client_new(ub, NULL, &plain));
    CHECK_RC(wps_send_to_group(plain, g, (const uint8_t *)"no", 2, WPS_DATA_TEXT, WPS_SEND_FIRE_AND_FORGET, 0, NULL),
             WPS_ERR_NOT_CONNECTED);
    wps_client_free(plain);
    wps_options *o = NULL;
    CHECK_OK(wps_options_new(&o));
    CHECK_OK(wps_options_set_offline_queue(o, 3, 0));
    wps_client *b = NULL;
    CHECK_OK(wps_client_new(ub, o, &b));
    CHECK_OK(rec_attach(b, &rb));
    for (int i = 0; i < 3; i++) {
        char text[16];
        int n = snprintf(text, sizeof text, "f%d", i);
        uint32_t flags = i == 1 ? 0 : WPS_SEND_FIRE_AND_FORGET; /* the middle one is acked */
        uint64_t id = 99;
        CHECK_OK(wps_send_to_group_async(b, g, (const uint8_t *)text, (size_t)n, WPS_DATA_TEXT, flags, 0, NULL, NULL,
                                         &id));
        CHECK(i == 1 ? id != 0 : id == 0, "ack id of send %d: %llu", i, (unsigned long long)id);
    }
    CHECK_RC(wps_send_to_group_async(b, g, (const uint8_t *)"no", 2, WPS_DATA_TEXT, WPS_SEND_FIRE_AND_FORGET, 0, NULL,
                                     NULL, NULL),
             WPS_ERR_QUEUE_FULL);
    CHECK_OK(wps_client_start(b, 10000));
    CHECK(rec_wait(&rb, WPS_EVENT_ACK, 3, 10000), "three completions");
    CHECK(rec_wait(&ra, WPS_EVENT_GROUP_MESSAGE, 3, 10000), "three messages");
    for (size_t k = 0; k < 3; k++) {
        CHECK(rec_nth(&rb, WPS_EVENT_ACK, k)->result == WPS_OK, "completion %zu ok", k);
        rec_event *m = rec_nth(&ra, WPS_EVENT_GROUP_MESSAGE, k);
        char want[16];
        snprintf(want, sizeof want, "f%zu", k);
        CHECK(m->data_len == strlen(want) && memcmp(m->data, want, m->data_len) == 0, "message %zu in order", k);
    }
    CHECK(rec_count(&rb, WPS_EVENT_ACK) == 3, "no completion for the refused send");
    wps_options_free(o);
    free(ua);
    free(ub);
    wps_client_free(a);
    wps_client_free(b);
    rec_free(&ra);
    rec_free(&rb);
    return 0;
}

/* wps_client_get_stats: argument checks, struct_size versioning, counters that move. */
static int test_stats_count_and_respect_struct_size(void) {
    recorder r;
    rec_init(&r);
    char *url = mint_url(HUB, "stats", ALL_ROLES, 3600);
    CHECK(url, "mint url");
    wps_client *c = NULL;
    CHECK_OK(wps_client_new(url, NULL, &c));
    free(url);
    CHECK_OK(rec_attach(c, &r));
    wps_stats st;
    memset(&st, 0, sizeof st);
    CHECK_RC(wps_client_get_stats(c, NULL), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_client_get_stats(c, &st), WPS_ERR_INVALID_ARG); /* struct_size 0 */
    st.struct_size = sizeof st;
    CHECK_RC(wps_client_get_stats(NULL, &st), WPS_ERR_NULL_ARG);
    CHECK_OK(wps_client_get_stats(c, &st));
    CHECK(st.state == WPS_STATE_STOPPED && st.connects == 0, "stopped, fresh");
    CHECK_OK(wps_client_start(c, 10000));
    char g[96];
    unique_group("stats", g);
    CHECK_OK(wps_join_group(c, g, 0, NULL));
    for (int i = 0; i < 3; i++) CHECK_OK(wps_send_to_group(c, g, (const uint8_t *)"s", 1, WPS_DATA_TEXT, 0, 0, NULL));
    CHECK(rec_wait(&r, WPS_EVENT_GROUP_MESSAGE, 3, 10000), "messages");
    CHECK_OK(wps_client_get_stats(c, &st));
    CHECK(st.struct_size == sizeof st, "struct_size kept");
    CHECK(st.state == WPS_STATE_CONNECTED, "state %u", st.state);
    CHECK(st.connects == 1 && st.messages_sent == 4 && st.acks_ok == 4 && st.messages_received == 3,
          "connects %llu sent %llu acks %llu received %llu", (unsigned long long)st.connects,
          (unsigned long long)st.messages_sent, (unsigned long long)st.acks_ok,
          (unsigned long long)st.messages_received);
    CHECK(st.bytes_sent > 0 && st.bytes_received > 0 && st.inflight_acks == 0, "bytes, nothing in flight");
    /* An older, shorter struct: only its bytes are written. */
    unsigned char small[24];
    memset(small, 0xAB, sizeof small);
    uint32_t size16 = 16;
    memcpy(small, &size16, sizeof size16);
    CHECK_OK(wps_client_get_stats(c, (wps_stats *)(void *)small));
    CHECK(small[16] == 0xAB && small[23] == 0xAB, "nothing written past struct_size");
    uint64_t sent16;
    memcpy(&sent16, small + 8, sizeof sent16);
    CHECK(sent16 == 4, "messages_sent in the short struct");
    wps_client_free(c);
    rec_free(&r);
    return 0;
}

static int test_send_and_receive_each_data_type(void) {
    return send_and_receive_each_data_type(WPS_PROTOCOL_JSON_RELIABLE);
}

static int test_every_subprotocol_carries_every_data_type(void) {
    uint32_t protocols[] = {WPS_PROTOCOL_JSON, WPS_PROTOCOL_PROTOBUF_RELIABLE, WPS_PROTOCOL_PROTOBUF};
    for (size_t i = 0; i < 3; i++) {
        if (send_and_receive_each_data_type(protocols[i]) != 0) {
            fprintf(stderr, "    protocol %u failed\n", protocols[i]);
            return 1;
        }
    }
    return 0;
}

static int test_no_echo_and_fire_and_forget(void) {
    recorder ra, rb;
    rec_init(&ra);
    rec_init(&rb);
    char g[96];
    unique_group("echo", g);
    char *ua = mint_url(HUB, "alice", ALL_ROLES, 3600), *ub = mint_url(HUB, "bob", ALL_ROLES, 3600);
    wps_client *a = started_client(ua, NULL, &ra), *b = started_client(ub, NULL, &rb);
    free(ua);
    free(ub);
    CHECK(a && b, "clients");
    CHECK_OK(wps_join_group(a, g, 0, NULL));
    CHECK_OK(wps_join_group(b, g, 0, NULL));
    uint64_t id = 123;
    CHECK_OK(wps_send_to_group(a, g, (const uint8_t *)"quiet", 5, WPS_DATA_TEXT, WPS_SEND_NO_ECHO, 0, &id));
    CHECK(id != 0, "acked no-echo send has an ack id");
    CHECK_OK(wps_send_to_group(a, g, (const uint8_t *)"ff", 2, WPS_DATA_TEXT, WPS_SEND_FIRE_AND_FORGET, 0, &id));
    CHECK(id == 0, "fire-and-forget has no ack id, got %llu", (unsigned long long)id);
    CHECK_OK(wps_send_to_group(a, g, (const uint8_t *)"loud", 4, WPS_DATA_TEXT, 0, 0, NULL));
    CHECK(rec_wait(&rb, WPS_EVENT_GROUP_MESSAGE, 3, 5000), "bob gets all three");
    CHECK(rec_wait(&ra, WPS_EVENT_GROUP_MESSAGE, 2, 5000), "alice gets her echoes");
    /* ordered delivery: once "loud" arrived, "quiet" would have arrived before it */
    rec_event *e0 = rec_nth(&ra, WPS_EVENT_GROUP_MESSAGE, 0), *e1 = rec_nth(&ra, WPS_EVENT_GROUP_MESSAGE, 1);
    CHECK(strcmp((char *)e0->data, "ff") == 0 && strcmp((char *)e1->data, "loud") == 0, "alice got %s, %s",
          (char *)e0->data, (char *)e1->data);
    CHECK(strcmp((char *)rec_nth(&rb, WPS_EVENT_GROUP_MESSAGE, 0)->data, "quiet") == 0, "bob got quiet first");
    wps_client_free(a);
    wps_client_free(b);
    rec_free(&ra);
    rec_free(&rb);
    return 0;
}

static int test_forbidden_reports_the_service_error_name(void) {
    recorder r;
    rec_init(&r);
    char *url = mint_url(HUB, "mallory", "", 3600);
    wps_options *o = no_retry_options();
    wps_client *c = started_client(url, o, &r);
    wps_options_free(o);
    free(url);
    CHECK(c, "client");
    uint64_t ack = 0;
    int32_t rc = wps_join_group(c, "private", 0, &ack);
    CHECK(rc == WPS_ERR_ACK_FORBIDDEN, "got %s", wps_result_name(rc));
    CHECK(wps_last_error_name() && strcmp(wps_last_error_name(), "Forbidden") == 0, "error name %s",
          wps_last_error_name() ? wps_last_error_name() : "(null)");
    CHECK(ack != 0, "ack id written on failure");
    CHECK(!wps_result_is_retryable(rc), "not retryable");
    rc = wps_send_to_group(c, "private", (const uint8_t *)"x", 1, WPS_DATA_TEXT, 0, 0, NULL);
    CHECK(rc == WPS_ERR_ACK_FORBIDDEN, "send got %s", wps_result_name(rc));
    /* async: the completion carries the same */
    int ctx = 42;
    CHECK_OK(wps_join_group_async(c, "private", 0, NULL, &ctx, &ack));
    CHECK(rec_wait(&r, WPS_EVENT_ACK, 1, 5000), "completion");
    rec_event *e = rec_nth(&r, WPS_EVENT_ACK, 0);
    CHECK(e->result == WPS_ERR_ACK_FORBIDDEN && e->op == WPS_OP_JOIN_GROUP && e->op_context == &ctx &&
              e->ack_id == ack && e->error_name && strcmp(e->error_name, "Forbidden") == 0 &&
              e->group && strcmp(e->group, "private") == 0,
          "completion fields: result %d op %u", e->result, e->op);
    /* a later success does not clear the thread's last error name; a different failure does */
    CHECK_RC(wps_join_group(c, "bad\xff", 0, NULL), WPS_ERR_INVALID_UTF8);
    CHECK(wps_last_error_name() == NULL, "no service name for local errors");
    wps_client_free(c);
    rec_free(&r);
    return 0;
}

static int test_reused_ack_id_is_duplicate_success(void) {
    recorder ra, rb;
    rec_init(&ra);
    rec_init(&rb);
    char g[96];
    unique_group("dup", g);
    char *ua = mint_url(HUB, "alice", ALL_ROLES, 3600), *ub = mint_url(HUB, "bob", ALL_ROLES, 3600);
    wps_client *a = started_client(ua, NULL, &ra), *b = started_client(ub, NULL, &rb);
    free(ua);
    free(ub);
    CHECK(a && b, "clients");
    CHECK_OK(wps_join_group(b, g, 0, NULL));
    uint64_t id = 0, again = 0;
    CHECK_OK(wps_send_to_group(a, g, (const uint8_t *)"once", 4, WPS_DATA_TEXT, 0, 0, &id));
    CHECK(!wps_last_ack_duplicate(), "a first send is not a duplicate");
    CHECK_OK(wps_send_to_group(a, g, (const uint8_t *)"once", 4, WPS_DATA_TEXT, 0, id, &again));
    CHECK(again == id, "same ack id reported");
    CHECK(wps_last_ack_duplicate(), "a blocking caller sees the Duplicate answer");
    CHECK_OK(wps_send_to_group_async(a, g, (const uint8_t *)"once", 4, WPS_DATA_TEXT, 0, id, NULL, NULL, &again));
    CHECK(rec_wait(&ra, WPS_EVENT_ACK, 1, 5000), "async completion");
    rec_event *e = rec_nth(&ra, WPS_EVENT_ACK, 0);
    CHECK(e->result == WPS_OK && e->is_duplicate == 1 && e->ack_id == id, "duplicate completion: result %d dup %u",
          e->result, e->is_duplicate);
    CHECK_OK(wps_send_to_group(a, g, (const uint8_t *)"marker", 6, WPS_DATA_TEXT, 0, 0, NULL));
    CHECK(rec_wait(&rb, WPS_EVENT_GROUP_MESSAGE, 2, 5000), "bob got once + marker");
    CHECK(rec_count(&rb, WPS_EVENT_GROUP_MESSAGE) == 2, "the duplicate was not delivered again");
    /* join with a reused id is a duplicate too */
    uint64_t jid = 0;
    CHECK_OK(wps_join_group(a, g, 0, &jid));
    CHECK_OK(wps_join_group(a, g, jid, NULL));
    CHECK(wps_last_ack_duplicate(), "join duplicate");
    /* The top of the range is refused before anything is queued; allocation goes on above the
     * largest id a caller may use, never answered as a duplicate. */
    uint64_t none = 7;
    CHECK_RC(wps_join_group(a, g, UINT64_MAX, &none), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_send_to_group_async(a, g, (const uint8_t *)"x", 1, WPS_DATA_TEXT, 0, WPS_MAX_ACK_ID + 1, NULL, NULL,
                                     &none),
             WPS_ERR_INVALID_ARG);
    CHECK(none == 7, "no ack id reported for a refused call");
    CHECK_OK(wps_join_group(a, g, WPS_MAX_ACK_ID, NULL));
    uint64_t next = 0;
    CHECK_OK(wps_send_to_group(a, g, (const uint8_t *)"after", 5, WPS_DATA_TEXT, 0, 0, &next));
    CHECK(next > WPS_MAX_ACK_ID && !wps_last_ack_duplicate(), "allocated above the caller's ids: %llu",
          (unsigned long long)next);
    CHECK_OK(wps_send_to_group(a, g, (const uint8_t *)"after", 5, WPS_DATA_TEXT, 0, next, NULL));
    CHECK(wps_last_ack_duplicate(), "an allocated id can be retried");
    wps_client_free(a);
    wps_client_free(b);
    rec_free(&ra);
    rec_free(&rb);
    return 0;
}

/* A group-message callback that answers with a blocking send on the same client. */
typedef struct { wps_client *c; const char *group; int32_t rc; latch replied; } responder;

static void respond_cb(void *ud, const wps_event *e) {
    responder *r = ud;
    if (e->data_len == 4 && memcmp(e->data, "ping", 4) == 0) {
        r->rc = wps_send_to_group(r->c, r->group, (const uint8_t *)"pong", 4, WPS_DATA_TEXT, 0, 0, NULL);
        latch_add(&r->replied, 1);
    }
}

static int test_blocking_send_inside_group_message_callback(void) {
    recorder ra;
    rec_init(&ra);
    char g[96];
    unique_group("pingpong", g);
    char *ua = mint_url(HUB, "alice", ALL_ROLES, 3600), *ub = mint_url(HUB, "bob", ALL_ROLES, 3600);
    wps_client *a = started_client(ua, NULL, &ra);
    wps_client *b = NULL;
    CHECK_OK(wps_client_new(ub, NULL, &b));
    free(ua);
    free(ub);
    responder resp;
    resp.c = b;
    resp.group = g;
    resp.rc = -1;
    latch_init(&resp.replied);
    CHECK_OK(wps_set_callback(b, WPS_EVENT_GROUP_MESSAGE, respond_cb, &resp));
    CHECK_OK(wps_client_start(b, 10000));
    CHECK_OK(wps_join_group(a, g, 0, NULL));
    CHECK_OK(wps_join_group(b, g, 0, NULL));
    for (int i = 0; i < 5; i++)
        CHECK_OK(wps_send_to_group(a, g, (const uint8_t *)"ping", 4, WPS_DATA_TEXT, 0, 0, NULL));
    CHECK(latch_wait(&resp.replied, 5, 10000), "replied %ld", latch_get(&resp.replied));
    CHECK(resp.rc == WPS_OK, "blocking send in callback: %s", wps_result_name(resp.rc));
    /* alice sees 5 pings (echo) and 5 pongs */
    CHECK(rec_wait(&ra, WPS_EVENT_GROUP_MESSAGE, 10, 10000), "alice saw %zu", rec_count(&ra, WPS_EVENT_GROUP_MESSAGE));
    wps_client_free(a);
    wps_client_free(b);
    latch_destroy(&resp.replied);
    rec_free(&ra);
    return 0;
}

/* Per-operation completions: exactly one each, also when stop cancels them. */
typedef struct { latch done; int results[256]; int dup_calls; int bad_context; } completions;
static completions comp;

static void completion_cb(void *op_context, const wps_event *e) {
    int *slot = op_context;
    if (e->op_context != op_context) comp.bad_context = 1;
    if (__atomic_add_fetch(slot, 1, __ATOMIC_SEQ_CST) > 1) comp.dup_calls++;
    latch_add(&comp.done, 1);
}

static int test_async_operations_complete_exactly_once(void) {
    recorder r;
    rec_init(&r);
    char g[96];
    unique_group("async", g);
    char *u = mint_url(HUB, "alice", ALL_ROLES, 3600);
    wps_client *c = started_client(u, NULL, &r);
    free(u);
    CHECK(c, "client");
    memset(&comp, 0, sizeof comp);
    latch_init(&comp.done);
    CHECK_OK(wps_join_group_async(c, g, 0, completion_cb, &comp.results[0], NULL));
    for (int i = 1; i < 200; i++)
        CHECK_OK(wps_send_to_group_async(c, g, (const uint8_t *)"m", 1, WPS_DATA_TEXT, 0, 0, completion_cb,
                                         &comp.results[i], NULL));
    CHECK(latch_wait(&comp.done, 200, 10000), "completed %ld of 200", latch_get(&comp.done));
    /* now a burst followed by an immediate stop: every op still completes exactly once */
    for (int i = 200; i < 256; i++)
        CHECK_OK(wps_send_to_group_async(c, g, (const uint8_t *)"m", 1, WPS_DATA_TEXT, 0, 0, completion_cb,
                                         &comp.results[i], NULL));
    CHECK_OK(wps_client_stop(c, 5000));
    CHECK(latch_wait(&comp.done, 256, 10000), "completed %ld of 256", latch_get(&comp.done));
    CHECK(rec_wait(&r, WPS_EVENT_STOPPED, 1, 5000), "stopped");
    wps_client_free(c);
    CHECK(comp.dup_calls == 0 && !comp.bad_context, "no operation completed twice, contexts ok");
    for (int i = 0; i < 256; i++) CHECK(comp.results[i] == 1, "op %d completed %d times", i, comp.results[i]);
    latch_destroy(&comp.done);
    rec_free(&r);
    return 0;
}

/* Successive calls from one thread reach the service in call order, async and blocking mixed. */
static int test_successive_calls_keep_their_order(void) {
    recorder ra, rb;
    rec_init(&ra);
    rec_init(&rb);
    char g[96];
    unique_group("order", g);
    char *ua = mint_url(HUB, "alice", ALL_ROLES, 3600), *ub = mint_url(HUB, "bob", ALL_ROLES, 3600);
    wps_client *a = started_client(ua, NULL, &ra), *b = started_client(ub, NULL, &rb);
    free(ua);
    free(ub);
    CHECK(a && b, "clients");
    CHECK_OK(wps_join_group(b, g, 0, NULL));
    enum { N = 300 };
    for (int i = 0; i < N; i++) {
        char msg[16];
        int len = snprintf(msg, sizeof msg, "%d", i);
        if (i % 50 == 49)
            CHECK_OK(wps_send_to_group(a, g, (const uint8_t *)msg, (size_t)len, WPS_DATA_TEXT, 0, 0, NULL));
        else if (i % 7 == 3)
            CHECK_OK(wps_send_to_group_async(a, g, (const uint8_t *)msg, (size_t)len, WPS_DATA_TEXT,
                                             WPS_SEND_FIRE_AND_FORGET, 0, NULL, NULL, NULL));
        else
            CHECK_OK(wps_send_to_group_async(a, g, (const uint8_t *)msg, (size_t)len, WPS_DATA_TEXT, 0, 0, NULL,
                                             NULL, NULL));
    }
    CHECK(rec_wait(&rb, WPS_EVENT_GROUP_MESSAGE, N, 10000), "received %zu of %d", rec_count(&rb, WPS_EVENT_GROUP_MESSAGE), N);
    for (int i = 0; i < N; i++) {
        rec_event *e = rec_nth(&rb, WPS_EVENT_GROUP_MESSAGE, (size_t)i);
        CHECK(atoi((char *)e->data) == i, "message %d arrived as #%d", atoi((char *)e->data), i);
    }
    wps_client_free(a);
    wps_client_free(b);
    rec_free(&ra);
    rec_free(&rb);
    return 0;
}

static int test_start_and_stop_async(void) {
    recorder r;
    rec_init(&r);
    char *u = mint_url(HUB, "alice", ALL_ROLES, 3600);
    wps_client *c = NULL;
    CHECK_OK(wps_client_new(u, NULL, &c));
    free(u);
    CHECK_OK(rec_attach(c, &r));
    int ctx_start, ctx_stop;
    CHECK_OK(wps_client_start_async(c, 10000, NULL, &ctx_start));
    CHECK(rec_wait(&r, WPS_EVENT_ACK, 1, 10000), "start completion");
    rec_event *e = rec_nth(&r, WPS_EVENT_ACK, 0);
    CHECK(e->op == WPS_OP_START && e->result == WPS_OK && e->op_context == &ctx_start, "start completion fields");
    CHECK(rec_count(&r, WPS_EVENT_CONNECTED) == 1, "connected before the start completion");
    CHECK_OK(wps_client_stop_async(c, NULL, &ctx_stop));
    CHECK(rec_wait(&r, WPS_EVENT_ACK, 2, 10000), "stop completion");
    e = rec_nth(&r, WPS_EVENT_ACK, 1);
    CHECK(e->op == WPS_OP_STOP && e->result == WPS_OK && e->op_context == &ctx_stop, "stop completion fields");
    wps_client_free(c);
    rec_free(&r);
    return 0;
}

static int test_expired_token_and_missing_token_are_unauthorized(void) {
    char *expired = mint_url(HUB, "alice", ALL_ROLES, -600);
    wps_client *c = NULL;
    CHECK_OK(wps_client_new(expired, NULL, &c));
    free(expired);
    CHECK_RC(wps_client_start(c, 10000), WPS_ERR_UNAUTHORIZED);
    wps_client_free(c);
    const char *connstr = getenv("WPS_TEST_CONNSTR");
    char url[256];
    const char *host = strstr(connstr, "http://") + 7;
    size_t hl = strcspn(host, ";/");
    snprintf(url, sizeof url, "ws://%.*s/client/hubs/%s", (int)hl, host, HUB);
    CHECK_OK(wps_client_new(url, NULL, &c));
    CHECK_RC(wps_client_start(c, 10000), WPS_ERR_UNAUTHORIZED);
    CHECK(strstr(wps_last_error_message(), "access_token") != NULL, "hint: %s", wps_last_error_message());
    wps_client_free(c);
    return 0;
}

/* URL provider: a fresh URL per connection, written into the library's buffer. */
static wps_result provider(void *ud, char *buf, size_t cap, size_t *out_len) {
    const char *url = ud;
    size_t need = strlen(url) + 1;
    if (cap < need) { *out_len = need; return WPS_ERR_BUFFER_TOO_SMALL; }
    memcpy(buf, url, need);
    return WPS_OK;
}

static wps_result failing_provider(void *ud, char *buf, size_t cap, size_t *out_len) {
    (void)ud; (void)buf; (void)cap; (void)out_len;
    return WPS_ERR_UNAUTHORIZED;
}

static int provider_frees;
static void provider_free(void *ud) { (void)ud; __atomic_add_fetch(&provider_frees, 1, __ATOMIC_SEQ_CST); }

static int test_url_provider(void) {
    provider_frees = 0;
    recorder r;
    rec_init(&r);
    /* a long URL (padding parameter) exercises the second, bigger buffer */
    char *u = mint_url(HUB, "alice", ALL_ROLES, 3600);
    size_t pad = 3000;
    char *longu = malloc(strlen(u) + pad + 16);
    sprintf(longu, "%s&pad=", u);
    size_t l = strlen(longu);
    memset(longu + l, 'p', pad);
    longu[l + pad] = 0;
    free(u);
    wps_client *c = NULL;
    CHECK_RC(wps_client_new_with_provider_ex(provider, longu, provider_free, NULL, NULL), WPS_ERR_NULL_ARG);
    CHECK(provider_frees == 0, "no destructor when creation fails");
    CHECK_OK(wps_client_new_with_provider_ex(provider, longu, provider_free, NULL, &c));
    CHECK_OK(rec_attach(c, &r));
    CHECK_OK(wps_client_start(c, 10000));
    CHECK(rec_wait(&r, WPS_EVENT_CONNECTED, 1, 5000), "connected");
    CHECK(provider_frees == 0, "destructor not before free");
    wps_client_free(c);
    CHECK(provider_frees == 1, "destructor once after the last provider call: %d", provider_frees);
    free(longu);
    CHECK_OK(wps_client_new_with_provider(failing_provider, NULL, NULL, &c));
    int32_t rc = wps_client_start(c, 10000);
    CHECK(rc == WPS_ERR_URL_PROVIDER, "a failing provider fails start with its own code: %s", wps_result_name(rc));
    CHECK(strstr(wps_last_error_message(), "provider") != NULL, "message names the provider: %s (%s)",
          wps_last_error_message(), wps_result_name(rc));
    wps_client_free(c);
    rec_free(&r);
    return 0;
}

static int test_server_message_and_send_event_without_upstream(void) {
    recorder r;
    rec_init(&r);
    char *u = mint_url(HUB, "alice", ALL_ROLES, 3600);
    wps_options *o = no_retry_options();
    wps_client *c = started_client(u, o, &r);
    wps_options_free(o);
    free(u);
    CHECK(c, "client");
    char id[128];
    CHECK(conn_id(c, id), "id");
    char *out = tool_run("server-send %s %s from-server && echo ok", HUB, id);
    CHECK(out, "REST send");
    free(out);
    CHECK(rec_wait(&r, WPS_EVENT_SERVER_MESSAGE, 1, 5000), "server message");
    rec_event *e = rec_nth(&r, WPS_EVENT_SERVER_MESSAGE, 0);
    CHECK(e->data_type == WPS_DATA_TEXT && strcmp((char *)e->data, "from-server") == 0, "payload %s", (char *)e->data);
    CHECK(e->group == NULL, "no group on a server message");
    /* no upstream handler is configured: the service answers an acked event with
     * InternalServerError, a retryable ack error that keeps the service's name */
    uint64_t ack = 0;
    int32_t rc = wps_send_event(c, "ping", (const uint8_t *)"{}", 2, WPS_DATA_JSON, 0, 0, &ack);
    CHECK(ack != 0, "ack id");
    CHECK(rc == WPS_ERR_ACK_INTERNAL_SERVER_ERROR && wps_result_is_retryable(rc), "got %s", wps_result_name(rc));
    CHECK(wps_last_error_name() && strcmp(wps_last_error_name(), "InternalServerError") == 0, "name");
    printf("INFO send_event without upstream: %s\n", wps_result_name(rc));
    /* fire-and-forget events are accepted */
    CHECK_OK(wps_send_event(c, "ping", (const uint8_t *)"x", 1, WPS_DATA_TEXT, WPS_SEND_FIRE_AND_FORGET, 0, &ack));
    CHECK(ack == 0, "no ack id");
    wps_client_free(c);
    rec_free(&r);
    return 0;
}

typedef struct { pthread_mutex_t mu; int lines; int leaked_token; } log_sink;
static log_sink logs = {PTHREAD_MUTEX_INITIALIZER, 0, 0};

static void log_cb(void *ud, uint32_t level, const char *message) {
    (void)ud;
    (void)level;
    pthread_mutex_lock(&logs.mu);
    logs.lines++;
    /* a token value starts with the base64url JWT header {"alg": eyJ... */
    if (strstr(message, "eyJ")) logs.leaked_token = 1;
    pthread_mutex_unlock(&logs.mu);
}

static int test_log_callback_receives_redacted_lines(void) {
    CHECK_OK(wps_set_log_callback(log_cb, NULL, WPS_LOG_VERBOSE));
    char *u = mint_url(HUB, "alice", ALL_ROLES, 3600);
    recorder r;
    rec_init(&r);
    wps_client *c = started_client(u, NULL, &r);
    free(u);
    CHECK(c, "client");
    wps_client_free(c);
    CHECK_OK(wps_set_log_callback(NULL, NULL, WPS_LOG_OFF));
    pthread_mutex_lock(&logs.mu);
    int lines = logs.lines, leaked = logs.leaked_token;
    pthread_mutex_unlock(&logs.mu);
    CHECK(lines > 0, "log lines received");
    CHECK(!leaked, "no access token in the log");
    rec_free(&r);
    return 0;
}

int main(int argc, char **argv) {
    if (!have_emulator()) { printf("messaging: needs WPS_TEST_CONNSTR (run scripts/c-tests.sh)\n"); return 1; }
    static const test_case tests[] = {
        {"connect_and_stop", test_connect_and_stop},
        {"send_and_receive_each_data_type", test_send_and_receive_each_data_type},
        {"stats_count_and_respect_struct_size", test_stats_count_and_respect_struct_size},
        {"offline_queue_before_start_full_and_stop", test_offline_queue_before_start_full_and_stop},
        {"offline_queue_fire_and_forget_before_start", test_offline_queue_fire_and_forget_before_start},
        {"every_subprotocol_carries_every_data_type", test_every_subprotocol_carries_every_data_type},
        {"no_echo_and_fire_and_forget", test_no_echo_and_fire_and_forget},
        {"forbidden_reports_the_service_error_name", test_forbidden_reports_the_service_error_name},
        {"reused_ack_id_is_duplicate_success", test_reused_ack_id_is_duplicate_success},
        {"blocking_send_inside_group_message_callback", test_blocking_send_inside_group_message_callback},
        {"async_operations_complete_exactly_once", test_async_operations_complete_exactly_once},
        {"successive_calls_keep_their_order", test_successive_calls_keep_their_order},
        {"start_and_stop_async", test_start_and_stop_async},
        {"expired_token_and_missing_token_are_unauthorized", test_expired_token_and_missing_token_are_unauthorized},
        {"url_provider", test_url_provider},
        {"server_message_and_send_event_without_upstream", test_server_message_and_send_event_without_upstream},
        {"log_callback_receives_redacted_lines", test_log_callback_receives_redacted_lines},
    };
    return run_tests("messaging", tests, sizeof tests / sizeof tests[0], argc, argv);
}
