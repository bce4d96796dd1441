/*
 * chat.c - join a group, print what arrives, send lines from stdin.
 *
 *   chat URL GROUP        (URL: a client access URL, ws://.../client/hubs/HUB?access_token=...;
 *                          "-" reads it from the environment variable WPS_CLIENT_URL)
 *
 * Every group message is printed on stdout as "[GROUP] FROM: TEXT". Each line read from
 * stdin is sent to GROUP as text. At end of input the program waits (up to 10 s) until its
 * own lines have come back through the group, stops the client and exits: 0 when every line
 * came back, 1 otherwise, 2 for bad arguments, 3 when it cannot connect or join.
 *
 * Callbacks run on the library's dispatcher threads (the default dispatch mode), so the
 * state they share with main() is guarded by a mutex.
 */
#include <webpubsub_client.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ECHO_WAIT_SECONDS 10

struct chat {
  pthread_mutex_t mu;
  pthread_cond_t changed;
  char user_id[256];    /* own user id from the connected event ("" if none) */
  char **pending;       /* lines sent whose echo has not arrived yet */
  size_t pending_len, pending_cap;
  int stopped;
};

/* Prints a failure; copies the thread-local detail before making any other wps_ call. */
static void fail(const char *what, wps_result r) {
  char name[128] = "", msg[512] = "";
  const char *p;
  if ((p = wps_last_error_name()) != NULL) snprintf(name, sizeof name, " [%s]", p);
  if ((p = wps_last_error_message()) != NULL) snprintf(msg, sizeof msg, ": %s", p);
  fprintf(stderr, "chat: %s failed: %s%s%s\n", what, wps_result_name(r), name, msg);
}

static void on_connected(void *user_data, const wps_event *ev) {
  struct chat *chat = user_data;
  pthread_mutex_lock(&chat->mu);
  snprintf(chat->user_id, sizeof chat->user_id, "%s", ev->user_id ? ev->user_id : "");
  pthread_mutex_unlock(&chat->mu);
  printf("connected: connection %s, user %s\n", ev->connection_id ? ev->connection_id : "?",
         ev->user_id ? ev->user_id : "(none)");
  fflush(stdout);
}

static void on_disconnected(void *user_data, const wps_event *ev) {
  (void)user_data;
  fprintf(stderr, "chat: disconnected%s%s\n", ev->message ? ": " : "", ev->message ? ev->message : "");
}

static void on_stopped(void *user_data, const wps_event *ev) {
  struct chat *chat = user_data;
  (void)ev;
  pthread_mutex_lock(&chat->mu);
  chat->stopped = 1;
  pthread_cond_broadcast(&chat->changed);
  pthread_mutex_unlock(&chat->mu);
}

static void on_group_message(void *user_data, const wps_event *ev) {
  struct chat *chat = user_data;
  const char *from = ev->from_user_id ? ev->from_user_id : "(anonymous)";
  printf("[%s] %s: %.*s\n", ev->group ? ev->group : "?", from, (int)ev->data_len, (const char *)ev->data);
  fflush(stdout);

  /* An own line came back: strike it from the pending list. */
  pthread_mutex_lock(&chat->mu);
  int own = ev->from_user_id ? strcmp(ev->from_user_id, chat->user_id) == 0 : chat->user_id[0] == '\0';
  for (size_t i = 0; own && i < chat->pending_len; i++) {
    if (strlen(chat->pending[i]) == ev->data_len && memcmp(chat->pending[i], ev->data, ev->data_len) == 0) {
      free(chat->pending[i]);
      chat->pending[i] = chat->pending[--chat->pending_len];
      pthread_cond_broadcast(&chat->changed);
      break;
    }
  }
  pthread_mutex_unlock(&chat->mu);
}

static int remember(struct chat *chat, const char *line) {
  char *copy = strdup(line);
  if (!copy) return -1;
  pthread_mutex_lock(&chat->mu);
  if (chat->pending_len == chat->pending_cap) {
    size_t cap = chat->pending_cap ? chat->pending_cap * 2 : 16;
    char **grown = realloc(chat->pending, cap * sizeof *grown);
    if (!grown) {
      pthread_mutex_unlock(&chat->mu);
      free(copy);
      return -1;
    }
    chat->pending = grown;
    chat->pending_cap = cap;
  }
  chat->pending[chat->pending_len++] = copy;
  pthread_mutex_unlock(&chat->mu);
  return 0;
}

/* Waits until no sent line is pending, or the deadline. Returns the number still pending. */
static size_t wait_for_echoes(struct chat *chat, int seconds) {
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += seconds;
  pthread_mutex_lock(&chat->mu);
  while (chat->pending_len > 0) {
    if (pthread_cond_timedwait(&chat->changed, &chat->mu, &deadline) == ETIMEDOUT) break;
  }
  size_t left = chat->pending_len;
  pthread_mutex_unlock(&chat->mu);
  return left;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s URL GROUP   (URL \"-\" = $WPS_CLIENT_URL)\n", argv[0]);
    return 2;
  }
  const char *url = strcmp(argv[1], "-") == 0 ? getenv("WPS_CLIENT_URL") : argv[1];
  const char *group = argv[2];
  if (!url || !*url) {
    fprintf(stderr, "chat: no client access URL (WPS_CLIENT_URL is empty)\n");
    return 2;
  }

  struct chat chat;
  memset(&chat, 0, sizeof chat);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&chat.changed, &attr);
  pthread_condattr_destroy(&attr);
  pthread_mutex_init(&chat.mu, NULL);

  wps_client *client = NULL;
  wps_result r = wps_client_new(url, NULL, &client);
  if (r != WPS_OK) {
    fail("wps_client_new", r);
    return 3;
  }
  /* chat outlives the client: no destructor needed for user_data. */
  wps_set_callback(client, WPS_EVENT_CONNECTED, on_connected, &chat);
  wps_set_callback(client, WPS_EVENT_DISCONNECTED, on_disconnected, &chat);
  wps_set_callback(client, WPS_EVENT_STOPPED, on_stopped, &chat);
  wps_set_callback(client, WPS_EVENT_GROUP_MESSAGE, on_group_message, &chat);

  int status = 0, started = 0;
  if ((r = wps_client_start(client, 30000)) != WPS_OK) {
    fail("wps_client_start", r);
    status = 3;
    goto out;
  }
  started = 1;
  uint64_t ack_id = 0;
  if ((r = wps_join_group(client, group, 0, &ack_id)) != WPS_OK) {
    fail("wps_join_group", r);
    status = 3;
    goto out;
  }
  fprintf(stderr, "chat: joined %s (ack %llu); type lines to send\n", group, (unsigned long long)ack_id);

  char line[4096];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0] == '\0') continue;
    if (remember(&chat, line) != 0) {
      fprintf(stderr, "chat: out of memory\n");
      status = 1;
      break;
    }
    r = wps_send_to_group(client, group, (const uint8_t *)line, strlen(line), WPS_DATA_TEXT, 0, 0, &ack_id);
    if (r != WPS_OK) {
      fail("wps_send_to_group", r); /* keep going: the line stays pending and counts as lost */
      status = 1;
    }
  }

  size_t left = wait_for_echoes(&chat, ECHO_WAIT_SECONDS);
  if (left > 0) {
    fprintf(stderr, "chat: %zu of my messages did not come back\n", left);
    status = 1;
  }

out:
  if (started && (r = wps_client_stop(client, 5000)) != WPS_OK) fail("wps_client_stop", r);
  wps_client_free(client); /* after this no callback runs, so chat can go */
  for (size_t i = 0; i < chat.pending_len; i++) free(chat.pending[i]);
  free(chat.pending);
  pthread_cond_destroy(&chat.changed);
  pthread_mutex_destroy(&chat.mu);
  return status;
}
