/* Group streams and group state from C against the emulator: a stream end to end, abort and
 * refusal, a stream across a dropped connection, freeing an open stream, bad arguments and
 * freed handles, and group-state snapshots, updates and async completions. */
#include "harness.h"

#define HUB "shub"

/* Waits for a terminal STREAM event of `stream_id`; returns its index among STREAM events,
 * or -1 on timeout. */
static long wait_stream_end(recorder *r, const char *stream_id, int timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    for (size_t seen = 1;; seen++) {
        int64_t left = deadline - now_ms();
        if (left <= 0 || !rec_wait(r, WPS_EVENT_STREAM, seen, (int)left)) return -1;
        rec_event *e = rec_nth(r, WPS_EVENT_STREAM, seen - 1);
        if (e->end_of_stream && e->stream_id && strcmp(e->stream_id, stream_id) == 0)
            return (long)(seen - 1);
    }
}

/* Checks that the STREAM events of `stream_id` before `end_index` are fragments 1..n in
 * order, whose text is their number; returns n, or -1 after printing the first mismatch. */
static long check_fragments(recorder *r, const char *stream_id, long end_index) {
    long n = 0;
    for (long i = 0; i < end_index; i++) {
        rec_event *e = rec_nth(r, WPS_EVENT_STREAM, (size_t)i);
        if (!e->stream_id || strcmp(e->stream_id, stream_id) != 0) continue;
        n++;
        char want[32];
        snprintf(want, sizeof want, "%ld", n);
        if (e->stream_sequence_id != (uint64_t)n || e->end_of_stream || !e->data ||
            strcmp((const char *)e->data, want) != 0) {
            fprintf(stderr, "    fragment %ld: id %llu, end %u, data %s\n", n,
                    (unsigned long long)e->stream_sequence_id, e->end_of_stream,
                    e->data ? (const char *)e->data : "(null)");
            return -1;
        }
    }
    return n;
}

static int write_numbers(wps_stream *s, int from, int to) {
    for (int i = from; i <= to; i++) {
        char text[32];
        int len = snprintf(text, sizeof text, "%d", i);
        int32_t rc = wps_stream_write(s, (const uint8_t *)text, (size_t)len, WPS_DATA_TEXT, 10000);
        if (rc != WPS_OK) {
            fprintf(stderr, "    write %d: %s (%s)\n", i, wps_result_name(rc), wps_last_error_message());
            return 1;
        }
    }
    return 0;
}

static int test_a_stream_arrives_in_order_and_ends(void) {
    recorder rp, rs;
    rec_init(&rp);
    rec_init(&rs);
    char g[96];
    unique_group("stream", g);
    char *up = mint_url(HUB, "alice", ALL_ROLES, 3600), *us = mint_url(HUB, "bob", ALL_ROLES, 3600);
    wps_client *p = started_client(up, NULL, &rp), *sub = started_client(us, NULL, &rs);
    free(up);
    free(us);
    CHECK(p && sub, "clients");
    CHECK_OK(wps_join_group(sub, g, 0, NULL));
    wps_stream *s = NULL;
    CHECK_OK(wps_stream_open(p, g, NULL, 0, 0, 10000, &s));
    const char *id = wps_stream_get_id(s);
    CHECK(id && strlen(id) == 36, "a generated UUID: %s", id ? id : "(null)");
    char sid[64];
    snprintf(sid, sizeof sid, "%s", id);
    CHECK(write_numbers(s, 1, 300) == 0, "writes");
    CHECK_OK(wps_stream_end(s, 10000));
    long end = wait_stream_end(&rs, sid, 10000);
    CHECK(end >= 0, "terminal frame");
    CHECK(check_fragments(&rs, sid, end) == 300, "300 fragments in order");
    rec_event *last = rec_nth(&rs, WPS_EVENT_STREAM, (size_t)end);
    CHECK(last->error_name == NULL && last->stream_sequence_id == 301, "clean end (%s, %llu)",
          last->error_name ? last->error_name : "-", (unsigned long long)last->stream_sequence_id);
    CHECK(last->group && strcmp(last->group, g) == 0, "group");
    CHECK(last->from_user_id && strcmp(last->from_user_id, "alice") == 0, "publisher's user");
    /* Ended: writes and a second end are refused with the reason. */
    CHECK_RC(wps_stream_write(s, (const uint8_t *)"x", 1, WPS_DATA_TEXT, 1000), WPS_ERR_STREAM_CLOSED);
    CHECK(wps_last_error_name() && strcmp(wps_last_error_name(), "Ended") == 0, "reason Ended");
    CHECK_RC(wps_stream_end(s, 1000), WPS_ERR_STREAM_CLOSED);
    wps_stream_free(s);
    wps_client_free(p);
    wps_client_free(sub);
    CHECK(!rs.overlap && !rs.bad_struct_size, "never concurrent, struct size ok");
    rec_free(&rp);
    rec_free(&rs);
    return 0;
}

static int test_abort_freeing_and_refusal(void) {
    recorder rs;
    rec_init(&rs);
    char g[96];
    unique_group("abort", g);
    char *up = mint_url(HUB, "alice", ALL_ROLES, 3600), *us = mint_url(HUB, "bob", ALL_ROLES, 3600);
    char *ul = mint_url(HUB, "carol", "webpubsub.joinLeaveGroup", 3600);
    wps_client *p = started_client(up, NULL, NULL), *sub = started_client(us, NULL, &rs);
    wps_client *limited = started_client(ul, NULL, NULL);
    free(up);
    free(us);
    free(ul);
    CHECK(p && sub && limited, "clients");
    CHECK_OK(wps_join_group(sub, g, 0, NULL));

    wps_stream *s = NULL;
    CHECK_OK(wps_stream_open(p, g, "aborted", WPS_SEND_NO_ECHO, 60000, 10000, &s));
    CHECK(strcmp(wps_stream_get_id(s), "aborted") == 0, "given id");
    CHECK(write_numbers(s, 1, 3) == 0, "writes");
    CHECK_OK(wps_stream_abort(s, "disk full", "E7", 10000));
    long end = wait_stream_end(&rs, "aborted", 10000);
    CHECK(end >= 0, "terminal frame");
    CHECK(check_fragments(&rs, "aborted", end) == 3, "3 fragments");
    rec_event *last = rec_nth(&rs, WPS_EVENT_STREAM, (size_t)end);
    CHECK(last->error_name && strcmp(last->error_name, "UserError") == 0, "UserError");
    CHECK(last->user_error_code && strcmp(last->user_error_code, "E7") == 0, "code");
    CHECK(last->message && strcmp(last->message, "disk full") == 0, "message");
    wps_stream_free(s);

    /* Freeing an open stream aborts it: subscribers are told, not left waiting. */
    CHECK_OK(wps_stream_open(p, g, "freed", 0, 0, 10000, &s));
    CHECK(write_numbers(s, 1, 2) == 0, "writes");
    wps_stream_free(s);
    end = wait_stream_end(&rs, "freed", 10000);
    CHECK(end >= 0, "terminal frame after free");
    last = rec_nth(&rs, WPS_EVENT_STREAM, (size_t)end);
    CHECK(last->error_name && strcmp(last->error_name, "UserError") == 0, "freed stream ends with UserError");

    /* Without the permission to send to the group the service refuses the stream. */
    s = NULL;
    CHECK_RC(wps_stream_open(limited, g, NULL, 0, 0, 10000, &s), WPS_ERR_ACK_FORBIDDEN);
    CHECK(wps_last_error_name() && strcmp(wps_last_error_name(), "Forbidden") == 0, "Forbidden");
    CHECK(s == NULL, "no handle on failure");
    wps_client_free(p);
    wps_client_free(sub);
    wps_client_free(limited);
    rec_free(&rs);
    return 0;
}

static int test_a_stream_across_a_drop_arrives_complete(void) {
    recorder rp, rs;
    rec_init(&rp);
    rec_init(&rs);
    char g[96];
    unique_group("drop", g);
    char *up = mint_url(HUB, "alice", ALL_ROLES, 3600), *us = mint_url(HUB, "bob", ALL_ROLES, 3600);
    wps_client *p = started_client(up, NULL, &rp), *sub = started_client(us, NULL, &rs);
    free(up);
    free(us);
    CHECK(p && sub, "clients");
    CHECK_OK(wps_join_group(sub, g, 0, NULL));
    wps_stream *s = NULL;
    CHECK_OK(wps_stream_open(p, g, "across", 0, 0, 10000, &s));
    CHECK(write_numbers(s, 1, 200) == 0, "writes before");
    char pid[128];
    CHECK(conn_id(p, pid), "id");
    CHECK(emulator_fault(HUB, pid, "drop"), "drop the publisher");
    CHECK(write_numbers(s, 201, 400) == 0, "writes during recovery");
    CHECK_OK(wps_stream_end(s, 20000));
    CHECK(rec_wait(&rp, WPS_EVENT_RECOVERED, 1, 10000), "recovered");
    long end = wait_stream_end(&rs, "across", 10000);
    CHECK(end >= 0, "terminal frame");
    CHECK(check_fragments(&rs, "across", end) == 400, "400 fragments, in order, once");
    CHECK(rec_nth(&rs, WPS_EVENT_STREAM, (size_t)end)->error_name == NULL, "clean end");
    wps_stream_free(s);
    wps_client_free(p);
    wps_client_free(sub);
    rec_free(&rp);
    rec_free(&rs);
    return 0;
}

static int test_bad_arguments_and_freed_handles(void) {
    char *u = mint_url(HUB, "alice", ALL_ROLES, 3600);
    wps_client *c = started_client(u, NULL, NULL);
    free(u);
    CHECK(c, "client");
    wps_stream *s = NULL;
    CHECK_RC(wps_stream_open(c, NULL, NULL, 0, 0, 1000, &s), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_stream_open(c, "g", NULL, 0, 0, 1000, NULL), WPS_ERR_NULL_ARG);
    CHECK_RC(wps_stream_open(c, "g", NULL, 0x80, 0, 1000, &s), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_stream_open(c, "g", "", 0, 0, 1000, &s), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_stream_open(c, "g", "\xff", 0, 0, 1000, &s), WPS_ERR_INVALID_UTF8);
    CHECK_RC(wps_stream_open(NULL, "g", NULL, 0, 0, 1000, &s), WPS_ERR_NULL_ARG);
    CHECK_OK(wps_stream_open(c, "g", "dup", 0, 0, 10000, &s));
    wps_stream *again = NULL;
    CHECK_RC(wps_stream_open(c, "g", "dup", 0, 0, 10000, &again), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_stream_write(s, (const uint8_t *)"x", 1, 99, 1000), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_stream_write(s, (const uint8_t *)"{", 1, WPS_DATA_JSON, 1000), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_stream_write(s, (const uint8_t *)"\xff", 1, WPS_DATA_TEXT, 1000), WPS_ERR_INVALID_UTF8);
    CHECK_RC(wps_stream_write(s, NULL, 3, WPS_DATA_BINARY, 1000), WPS_ERR_NULL_ARG);
    CHECK_OK(wps_stream_write(s, NULL, 0, WPS_DATA_BINARY, 1000));
    CHECK_RC(wps_stream_abort(s, "\xff", NULL, 1000), WPS_ERR_INVALID_UTF8);
    CHECK_OK(wps_stream_abort(s, NULL, NULL, 10000));
    wps_stream_free(s);
    /* A freed (or forged) handle is detected, never touched. */
    CHECK_RC(wps_stream_write(s, (const uint8_t *)"x", 1, WPS_DATA_TEXT, 1000), WPS_ERR_INVALID_HANDLE);
    CHECK_RC(wps_stream_end(s, 1000), WPS_ERR_INVALID_HANDLE);
    CHECK(wps_stream_get_id(s) == NULL, "no id for a freed handle");
    CHECK_RC(wps_stream_end((wps_stream *)(uintptr_t)0x12345678, 1000), WPS_ERR_INVALID_HANDLE);
    CHECK_RC(wps_stream_end(NULL, 1000), WPS_ERR_NULL_ARG);
    CHECK(wps_stream_get_id(NULL) == NULL, "NULL id for NULL");
    wps_stream_free(s);
    wps_stream_free(NULL);
    /* A stream outlives nothing: freeing its client first fails its calls, and it can still
     * be freed. */
    CHECK_OK(wps_stream_open(c, "g", "orphan", 0, 0, 10000, &s));
    wps_client_free(c);
    int32_t rc = wps_stream_write(s, (const uint8_t *)"x", 1, WPS_DATA_TEXT, 1000);
    CHECK(rc == WPS_ERR_CANCELLED || rc == WPS_ERR_STREAM_CLOSED, "write after the client was freed: %s",
          wps_result_name(rc));
    wps_stream_free(s);
    /* Not connected: no stream. */
    CHECK_OK(wps_client_new("ws://127.0.0.1:9/client/hubs/h?access_token=x", NULL, &c));
    CHECK_RC(wps_stream_open(c, "g", NULL, 0, 0, 1000, &s), WPS_ERR_NOT_CONNECTED);
    wps_client_free(c);
    return 0;
}

static int test_group_state_snapshot_updates_and_async(void) {
    recorder rw, ra;
    rec_init(&rw);
    rec_init(&ra);
    char g[96];
    unique_group("room", g);
    char *uw = mint_url(HUB, "bob", ALL_ROLES, 3600), *ua = mint_url(HUB, "alice", ALL_ROLES, 3600);
    wps_client *w = started_client(uw, NULL, &rw), *a = started_client(ua, NULL, &ra);
    free(uw);
    free(ua);
    CHECK(w && a, "clients");
    uint64_t ack = 0;
    CHECK_OK(wps_subscribe_group_state(w, g, 0, &ack));
    CHECK(ack != 0, "ack id");
    CHECK(rec_wait(&rw, WPS_EVENT_GROUP_STATE, 1, 10000), "snapshot");
    rec_event *snap = rec_nth(&rw, WPS_EVENT_GROUP_STATE, 0);
    CHECK(snap->is_snapshot == 1 && snap->data_type == WPS_DATA_JSON, "snapshot, JSON");
    CHECK(snap->data && strcmp((const char *)snap->data, "[]") == 0, "empty: %s", (const char *)snap->data);
    CHECK(snap->group && strcmp(snap->group, g) == 0, "group");
    CHECK_OK(wps_join_group(a, g, 0, NULL));
    CHECK_OK(wps_set_group_state_async(a, g, "{\"status\":\"typing\"}", 0, NULL, (void *)7, NULL));
    CHECK(rec_wait(&ra, WPS_EVENT_ACK, 1, 10000), "async completion");
    rec_event *done = rec_nth(&ra, WPS_EVENT_ACK, 0);
    CHECK(done->op == WPS_OP_SET_GROUP_STATE && done->result == WPS_OK && done->op_context == (void *)7,
          "completion: op %u result %d", done->op, done->result);
    CHECK(rec_wait(&rw, WPS_EVENT_GROUP_STATE, 2, 10000), "update");
    rec_event *upd = rec_nth(&rw, WPS_EVENT_GROUP_STATE, 1);
    CHECK(upd->is_snapshot == 0, "an update");
    char aid[128];
    CHECK(conn_id(a, aid), "id");
    CHECK(strstr((const char *)upd->data, aid) && strstr((const char *)upd->data, "\"typing\""),
          "update names alice's state: %s", (const char *)upd->data);
    CHECK_RC(wps_set_group_state(a, g, "{\"n\":1}", 0, NULL), WPS_ERR_INVALID_ARG);
    CHECK_RC(wps_set_group_state(w, g, "{\"k\":\"v\"}", 0, NULL), WPS_ERR_ACK_BAD_REQUEST);
    CHECK_OK(wps_set_group_state(a, g, NULL, 0, NULL));
    CHECK(rec_wait(&rw, WPS_EVENT_GROUP_STATE, 3, 10000), "cleared");
    CHECK(!strstr((const char *)rec_nth(&rw, WPS_EVENT_GROUP_STATE, 2)->data, "\"state\""), "no state");
    CHECK_OK(wps_unsubscribe_group_state_async(w, g, 0, NULL, NULL, NULL));
    CHECK(rec_wait(&rw, WPS_EVENT_ACK, 1, 10000), "unsubscribe completion");
    CHECK(rec_nth(&rw, WPS_EVENT_ACK, 0)->op == WPS_OP_UNSUBSCRIBE_GROUP_STATE, "op");
    CHECK_RC(wps_subscribe_group_state(w, NULL, 0, NULL), WPS_ERR_NULL_ARG);
    wps_client_free(w);
    wps_client_free(a);
    rec_free(&rw);
    rec_free(&ra);
    return 0;
}

int main(int argc, char **argv) {
    if (!have_emulator()) {
        printf("test_streams: skipped (no emulator)\n");
        return 0;
    }
    static const test_case tests[] = {
        {"a_stream_arrives_in_order_and_ends", test_a_stream_arrives_in_order_and_ends},
        {"abort_freeing_and_refusal", test_abort_freeing_and_refusal},
        {"a_stream_across_a_drop_arrives_complete", test_a_stream_across_a_drop_arrives_complete},
        {"bad_arguments_and_freed_handles", test_bad_arguments_and_freed_handles},
        {"group_state_snapshot_updates_and_async", test_group_state_snapshot_updates_and_async},
    };
    return run_tests("test_streams", tests, sizeof tests / sizeof tests[0], argc, argv);
}
