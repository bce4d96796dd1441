/* Quickstart: join a group and send a message to it.
 *
 * Build and run from the repository root (cargo-c installs the library into build/wps;
 * scripts/test-all.sh runs these lines as written):
 *
 *   cargo cinstall --release --prefix "$PWD/build/wps" --libdir lib
 *   export PKG_CONFIG_PATH="$PWD/build/wps/lib/pkgconfig"
 *   cc examples/c/quickstart.c $(pkg-config --cflags --libs webpubsub_client) -Wl,-rpath,"$PWD/build/wps/lib" -o quickstart
 *   ./quickstart "wss://<name>.webpubsub.azure.com/client/hubs/<hub>?access_token=..."
 *
 * Against an installed package (libwebpubsub-client-dev, or `cargo cinstall --prefix /usr/local`):
 *
 *   cc quickstart.c $(pkg-config --cflags --libs webpubsub_client) -o quickstart
 *
 * The client access URL comes from argv[1] or the WPS_CLIENT_URL environment variable. The
 * token needs the roles webpubsub.joinLeaveGroup and webpubsub.sendToGroup. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "webpubsub_client.h"

/* The callbacks run on a library thread; main waits for the first group message. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t received = PTHREAD_COND_INITIALIZER;
static int got_message = 0;

static void on_connected(void *user_data, const wps_event *ev) {
    (void)user_data;
    printf("connected: connection id %s\n", ev->connection_id);
}

static void on_group_message(void *user_data, const wps_event *ev) {
    (void)user_data;
    /* ev and its data are valid only until this function returns */
    printf("received message from group %s: %.*s\n", ev->group, (int)ev->data_len, (const char *)ev->data);
    pthread_mutex_lock(&lock);
    got_message = 1;
    pthread_cond_signal(&received);
    pthread_mutex_unlock(&lock);
}

static int fail(const char *what, wps_result rc) {
    const char *detail = wps_last_error_message();
    fprintf(stderr, "%s failed: %s (%s)\n", what, wps_result_name(rc), detail ? detail : "");
    return 1;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : getenv("WPS_CLIENT_URL");
    if (url == NULL) {
        fprintf(stderr, "usage: %s CLIENT_ACCESS_URL (or set WPS_CLIENT_URL)\n", argv[0]);
        return 2;
    }

    wps_client *client = NULL;
    wps_result rc = wps_client_new(url, NULL, &client);
    if (rc != WPS_OK) return fail("wps_client_new", rc);

    wps_set_callback(client, WPS_EVENT_CONNECTED, on_connected, NULL);
    wps_set_callback(client, WPS_EVENT_GROUP_MESSAGE, on_group_message, NULL);

    rc = wps_client_start(client, 30000);
    if (rc != WPS_OK) { wps_client_free(client); return fail("wps_client_start", rc); }

    const char *group_name = "group1";

    /* the client needs to join a group to receive messages from it */
    rc = wps_join_group(client, group_name, 0, NULL);
    if (rc != WPS_OK) { wps_client_free(client); return fail("wps_join_group", rc); }

    /* send a message to the group */
    const char *text = "hello world";
    rc = wps_send_to_group(client, group_name, (const uint8_t *)text, strlen(text), WPS_DATA_TEXT, 0, 0, NULL);
    if (rc != WPS_OK) { wps_client_free(client); return fail("wps_send_to_group", rc); }

    /* the message comes back to us (we are in the group): wait for it, at most 10 s */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&lock);
    while (!got_message) {
        if (pthread_cond_timedwait(&received, &lock, &deadline) == ETIMEDOUT) break;
    }
    int ok = got_message;
    pthread_mutex_unlock(&lock);

    wps_client_stop(client, 5000);
    wps_client_free(client);
    if (!ok) {
        fprintf(stderr, "no group message within 10 s\n");
        return 1;
    }
    printf("done\n");
    return 0;
}
