/* Receives group streams and prints every frame as one JSON line:
 *   {"group","fromUserId","streamId","streamSequenceId","endOfStream","dataType","data","error"}
 * (text as a string, json as its value, binary as base64; error is null or
 * {"name","message","userErrorCode"}). Exits 0 after COUNT streams ended (cleanly or not),
 * 1 on a failure or when they did not end within 60 s.
 *
 *   cc stream_listen.c -o stream_listen $(pkg-config --cflags --libs webpubsub_client)
 *   ./stream_listen "$CLIENT_ACCESS_URL" GROUP COUNT
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "webpubsub_client.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv;
static long ended;

/* A JSON string literal of `len` bytes of UTF-8 (or NULL as null). */
static void put_string(const char *s, size_t len) {
    if (!s) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void put_base64(const unsigned char *d, size_t len) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    putchar('"');
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < len ? (unsigned)d[i + 1] << 8 : 0) |
                     (i + 2 < len ? d[i + 2] : 0);
        putchar(abc[v >> 18 & 63]);
        putchar(abc[v >> 12 & 63]);
        putchar(i + 1 < len ? abc[v >> 6 & 63] : '=');
        putchar(i + 2 < len ? abc[v & 63] : '=');
    }
    putchar('"');
}

static const char *type_name(uint32_t t) {
    switch (t) {
    case WPS_DATA_TEXT: return "text";
    case WPS_DATA_JSON: return "json";
    case WPS_DATA_BINARY: return "binary";
    default: return "protobuf";
    }
}

static void on_stream(void *user_data, const wps_event *e) {
    (void)user_data;
    printf("{\"group\":");
    put_string(e->group, e->group ? strlen(e->group) : 0);
    printf(",\"fromUserId\":");
    put_string(e->from_user_id, e->from_user_id ? strlen(e->from_user_id) : 0);
    printf(",\"streamId\":");
    put_string(e->stream_id, strlen(e->stream_id));
    printf(",\"streamSequenceId\":%llu,\"endOfStream\":%s,\"dataType\":\"%s\",\"data\":",
           (unsigned long long)e->stream_sequence_id, e->end_of_stream ? "true" : "false",
           type_name(e->data_type));
    if (e->data_type == WPS_DATA_TEXT) put_string((const char *)e->data, e->data_len);
    else if (e->data_type == WPS_DATA_JSON && e->data_len > 0) fwrite(e->data, 1, e->data_len, stdout);
    else if (e->data_type == WPS_DATA_JSON) fputs("null", stdout);
    else put_base64(e->data, e->data_len);
    printf(",\"error\":");
    if (e->error_name) {
        printf("{\"name\":");
        put_string(e->error_name, strlen(e->error_name));
        printf(",\"message\":");
        put_string(e->message, e->message ? strlen(e->message) : 0);
        printf(",\"userErrorCode\":");
        put_string(e->user_error_code, e->user_error_code ? strlen(e->user_error_code) : 0);
        putchar('}');
    } else {
        fputs("null", stdout);
    }
    puts("}");
    fflush(stdout);
    if (e->end_of_stream) {
        pthread_mutex_lock(&mu);
        ended++;
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
}

static int fail(const char *what, wps_result r) {
    fprintf(stderr, "stream_listen: %s: %s (%s)\n", what, wps_result_name(r),
            wps_last_error_message() ? wps_last_error_message() : "");
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: stream_listen URL GROUP COUNT\n");
        return 2;
    }
    long want = strtol(argv[3], NULL, 10);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&cv, &attr);

    wps_client *c = NULL;
    wps_result r = wps_client_new(argv[1], NULL, &c);
    if (r != WPS_OK) return fail("create", r);
    if ((r = wps_set_callback(c, WPS_EVENT_STREAM, on_stream, NULL)) != WPS_OK) return fail("callback", r);
    if ((r = wps_client_start(c, 0)) != WPS_OK) return fail("start", r);
    if ((r = wps_join_group(c, argv[2], 0, NULL)) != WPS_OK) return fail("join", r);
    fprintf(stderr, "stream_listen: joined group %s\n", argv[2]);

    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += 60;
    int timed_out = 0;
    pthread_mutex_lock(&mu);
    while (ended < want && !timed_out)
        timed_out = pthread_cond_timedwait(&cv, &mu, &deadline) == ETIMEDOUT;
    pthread_mutex_unlock(&mu);
    wps_client_free(c);
    if (timed_out) fprintf(stderr, "stream_listen: %ld of %ld streams ended within 60 s\n", ended, want);
    return timed_out ? 1 : 0;
}
