/*
 * gateway.c - many clients in one process, driven by the application's own poll() loop.
 *
 *   gateway URL GROUP CLIENTS MESSAGES [TIMEOUT_SECONDS]
 *       URL: a client access URL ("-" = $WPS_CLIENT_URL); every client connects with it
 *
 * Each client is created in POLL dispatch mode: the library never runs a callback on its own
 * threads; instead wps_client_get_fd() gives a descriptor that is readable while the client
 * has events pending, and wps_client_dispatch() runs them on this thread. The loop below
 * polls those descriptors together with one of its own (a timerfd printing progress once a
 * second), so every callback runs on the main thread and needs no locking.
 *
 * Phases (all non-blocking, completions arrive as callbacks inside dispatch):
 *   start every client -> join GROUP -> each sends MESSAGES texts to GROUP -> wait until every
 *   client received CLIENTS * MESSAGES group messages -> stop every client -> free.
 * Every 3 s, and at the end, prints the clients' summed statistics (wps_client_get_stats).
 * Prints one line per phase and exits 0 when everything arrived, 1 otherwise, 2 for bad
 * arguments.
 */
#include <webpubsub_client.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum phase { PHASE_START, PHASE_JOIN, PHASE_SEND, PHASE_STOP, PHASE_DONE };

struct gateway;

struct slot {
  struct gateway *gw;
  size_t index;
  wps_client *client;
  int fd;
  int failed;
  size_t received; /* group messages that arrived at this client */
};

struct gateway {
  const char *group;
  size_t clients, messages;
  struct slot *slots;
  enum phase phase;
  size_t connected, started, joined, sends_acked, received, stopped, failures;
};

static const char *phase_name[] = {"start", "join", "send", "stop", "done"};

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Thread count and resident memory of this process, from /proc/self/status (-1 if unknown). */
static void process_usage(int *threads, long *rss_kib) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  *threads = -1;
  *rss_kib = -1;
  while (f && fgets(line, sizeof line, f)) {
    if (sscanf(line, "Threads: %d", threads) == 1) continue;
    if (sscanf(line, "VmRSS: %ld", rss_kib) == 1) continue;
  }
  if (f) fclose(f);
}

/* A failed completion: print it and remember the client as failed. */
static int check_completion(struct slot *s, const char *what, const wps_event *ev) {
  if (ev->result == WPS_OK) return 1;
  fprintf(stderr, "gateway: client %zu: %s failed: %s%s%s%s%s\n", s->index, what, wps_result_name(ev->result),
          ev->error_name ? ": " : "", ev->error_name ? ev->error_name : "", ev->message ? ": " : "",
          ev->message ? ev->message : "");
  if (!s->failed) s->gw->failures++;
  s->failed = 1;
  return 0;
}

/* Sums the statistics of every client (wps_client_get_stats: atomics, no lock) and prints
 * them with how many clients are connected. */
static void print_stats(const struct gateway *gw, size_t created) {
  wps_stats total;
  memset(&total, 0, sizeof total);
  size_t connected = 0;
  for (size_t i = 0; i < created; i++) {
    wps_stats st;
    memset(&st, 0, sizeof st);
    st.struct_size = sizeof st;
    if (wps_client_get_stats(gw->slots[i].client, &st) != WPS_OK) continue;
    connected += st.state == WPS_STATE_CONNECTED;
    total.messages_sent += st.messages_sent;
    total.messages_received += st.messages_received;
    total.bytes_sent += st.bytes_sent;
    total.bytes_received += st.bytes_received;
    total.acks_ok += st.acks_ok;
    total.acks_failed += st.acks_failed;
    total.retries += st.retries;
    total.connects += st.connects;
    total.recoveries += st.recoveries;
    total.session_losses += st.session_losses;
    total.queued_messages += st.queued_messages;
    total.inflight_acks += st.inflight_acks;
    if (st.last_ping_rtt_us > total.last_ping_rtt_us) total.last_ping_rtt_us = st.last_ping_rtt_us;
  }
  fprintf(stderr,
          "gateway: stats: %zu/%zu connected; sent %" PRIu64 " (%" PRIu64 " B), received %" PRIu64 " (%" PRIu64
          " B); acks ok %" PRIu64 " failed %" PRIu64 ", retries %" PRIu64 "; connects %" PRIu64 ", recoveries %" PRIu64
          ", sessions lost %" PRIu64 "; queued %" PRIu64 ", in flight %" PRIu64 "; max ping rtt %" PRIu64 " us\n",
          connected, created, total.messages_sent, total.bytes_sent, total.messages_received, total.bytes_received,
          total.acks_ok, total.acks_failed, total.retries, total.connects, total.recoveries, total.session_losses,
          total.queued_messages, total.inflight_acks, total.last_ping_rtt_us);
}

/* --- event callbacks (run inside wps_client_dispatch, on the main thread) --- */

static void on_connected(void *user_data, const wps_event *ev) {
  struct slot *s = user_data;
  (void)ev;
  s->gw->connected++;
}

static void on_group_message(void *user_data, const wps_event *ev) {
  struct slot *s = user_data;
  (void)ev;
  s->received++;
  s->gw->received++;
}

static void on_stopped(void *user_data, const wps_event *ev) {
  struct slot *s = user_data;
  (void)ev;
  s->gw->stopped++;
}

/* --- completions of the async operations --- */

static void on_start_done(void *op_context, const wps_event *ev) {
  struct slot *s = op_context;
  if (check_completion(s, "start", ev)) s->gw->started++;
}

static void on_join_done(void *op_context, const wps_event *ev) {
  struct slot *s = op_context;
  if (check_completion(s, "join", ev)) s->gw->joined++;
}

static void on_send_done(void *op_context, const wps_event *ev) {
  struct slot *s = op_context;
  if (check_completion(s, "send", ev)) s->gw->sends_acked++;
}

static void on_stop_done(void *op_context, const wps_event *ev) {
  struct slot *s = op_context;
  check_completion(s, "stop", ev);
}

/* Issues one async operation per client for the next phase. */
static void enter_phase(struct gateway *gw, enum phase phase) {
  gw->phase = phase;
  for (size_t i = 0; i < gw->clients; i++) {
    struct slot *s = &gw->slots[i];
    wps_result r = WPS_OK;
    if (phase == PHASE_JOIN) {
      r = wps_join_group_async(s->client, gw->group, 0, on_join_done, s, NULL);
    } else if (phase == PHASE_SEND) {
      for (size_t m = 0; m < gw->messages && r == WPS_OK; m++) {
        char text[64];
        int n = snprintf(text, sizeof text, "client %zu message %zu", i, m);
        r = wps_send_to_group_async(s->client, gw->group, (const uint8_t *)text, (size_t)n, WPS_DATA_TEXT, 0, 0,
                                    on_send_done, s, NULL);
      }
    } else if (phase == PHASE_STOP) {
      r = wps_client_stop_async(s->client, on_stop_done, s);
    }
    if (r != WPS_OK) {
      fprintf(stderr, "gateway: client %zu: %s rejected: %s\n", i, phase_name[phase], wps_result_name(r));
      if (!s->failed) gw->failures++;
      s->failed = 1;
    }
  }
}

/* Moves to the next phase once the current one is complete. */
static void advance(struct gateway *gw) {
  size_t n = gw->clients;
  size_t expected = n * n * gw->messages;
  if (gw->phase == PHASE_START && gw->started == n) {
    int threads;
    long rss_kib;
    process_usage(&threads, &rss_kib);
    printf("gateway: connected %zu/%zu (process threads: %d, RSS %ld KiB)\n", gw->connected, n, threads, rss_kib);
    enter_phase(gw, PHASE_JOIN);
  } else if (gw->phase == PHASE_JOIN && gw->joined == n) {
    printf("gateway: joined %zu/%zu\n", gw->joined, n);
    enter_phase(gw, PHASE_SEND);
  } else if (gw->phase == PHASE_SEND && gw->sends_acked == n * gw->messages && gw->received == expected) {
    printf("gateway: sends acked %zu/%zu\n", gw->sends_acked, n * gw->messages);
    printf("gateway: received %zu/%zu group messages\n", gw->received, expected);
    enter_phase(gw, PHASE_STOP);
  } else if (gw->phase == PHASE_STOP && gw->stopped == n) {
    printf("gateway: stopped %zu/%zu\n", gw->stopped, n);
    gw->phase = PHASE_DONE;
  }
  fflush(stdout);
}

static int parse_count(const char *s, size_t max, size_t *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *end || v == 0 || v > max) return -1;
  *out = (size_t)v;
  return 0;
}

int main(int argc, char **argv) {
  size_t clients, messages, timeout_s = 60;
  if (argc < 5 || argc > 6 || parse_count(argv[3], 10000, &clients) || parse_count(argv[4], 100000, &messages) ||
      (argc == 6 && parse_count(argv[5], 3600, &timeout_s))) {
    fprintf(stderr, "usage: %s URL GROUP CLIENTS MESSAGES [TIMEOUT_SECONDS]   (URL \"-\" = $WPS_CLIENT_URL)\n",
            argv[0]);
    return 2;
  }
  const char *url = strcmp(argv[1], "-") == 0 ? getenv("WPS_CLIENT_URL") : argv[1];
  if (!url || !*url) {
    fprintf(stderr, "gateway: no client access URL\n");
    return 2;
  }

  struct gateway gw;
  memset(&gw, 0, sizeof gw);
  gw.group = argv[2];
  gw.clients = clients;
  gw.messages = messages;
  gw.slots = calloc(clients, sizeof *gw.slots);
  struct pollfd *fds = calloc(clients + 1, sizeof *fds);
  if (!gw.slots || !fds) {
    fprintf(stderr, "gateway: out of memory\n");
    return 1;
  }
  printf("gateway: %zu clients, group %s, %zu messages each\n", clients, gw.group, messages);

  wps_options *opts = NULL;
  wps_result r = wps_options_new(&opts);
  if (r == WPS_OK) r = wps_options_set_dispatch_mode(opts, WPS_DISPATCH_POLL);
  if (r != WPS_OK) {
    fprintf(stderr, "gateway: options: %s\n", wps_result_name(r));
    return 1;
  }

  size_t created = 0;
  for (; created < clients; created++) {
    struct slot *s = &gw.slots[created];
    s->gw = &gw;
    s->index = created;
    if ((r = wps_client_new(url, opts, &s->client)) != WPS_OK) break;
    wps_set_callback(s->client, WPS_EVENT_CONNECTED, on_connected, s);
    wps_set_callback(s->client, WPS_EVENT_GROUP_MESSAGE, on_group_message, s);
    wps_set_callback(s->client, WPS_EVENT_STOPPED, on_stopped, s);
    s->fd = wps_client_get_fd(s->client);
    if (s->fd < 0) {
      r = WPS_ERR_INVALID_STATE;
      created++;
      break;
    }
    if ((r = wps_client_start_async(s->client, 30000, on_start_done, s)) != WPS_OK) {
      created++;
      break;
    }
  }
  wps_options_free(opts);
  int status = 0;
  if (r != WPS_OK) {
    fprintf(stderr, "gateway: creating client %zu failed: %s\n", created, wps_result_name(r));
    status = 1;
  }

  /* The application's own descriptor: a one-second progress timer. */
  int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  struct itimerspec every_second = {{1, 0}, {1, 0}};
  if (timer < 0 || timerfd_settime(timer, 0, &every_second, NULL) != 0) {
    perror("gateway: timerfd");
    status = 1;
  }

  double deadline = now_seconds() + (double)timeout_s;
  uint64_t seconds = 0; /* timer ticks so far: statistics every 3 s */
  while (status == 0 && gw.phase != PHASE_DONE && gw.failures == 0) {
    double left = deadline - now_seconds();
    if (left <= 0) {
      fprintf(stderr, "gateway: timed out in phase %s\n", phase_name[gw.phase]);
      status = 1;
      break;
    }
    fds[0].fd = timer;
    fds[0].events = POLLIN;
    for (size_t i = 0; i < clients; i++) {
      fds[i + 1].fd = gw.slots[i].fd;
      fds[i + 1].events = POLLIN;
    }
    int ready = poll(fds, clients + 1, (int)(left * 1000) + 1);
    if (ready < 0 && errno != EINTR) {
      perror("gateway: poll");
      status = 1;
      break;
    }
    for (size_t i = 0; ready > 0 && i < clients; i++) {
      if (!(fds[i + 1].revents & POLLIN)) continue;
      uint32_t ran = 0;
      r = wps_client_dispatch(gw.slots[i].client, 64, 0, &ran);
      if (r != WPS_OK) {
        fprintf(stderr, "gateway: client %zu: dispatch: %s\n", i, wps_result_name(r));
        status = 1;
      }
    }
    if (ready > 0 && (fds[0].revents & POLLIN)) {
      uint64_t ticks;
      if (read(timer, &ticks, sizeof ticks) == (ssize_t)sizeof ticks) {
        fprintf(stderr, "gateway: [%s] connected %zu joined %zu acked %zu received %zu\n", phase_name[gw.phase],
                gw.connected, gw.joined, gw.sends_acked, gw.received);
        seconds += ticks;
        if (seconds % 3 == 0) print_stats(&gw, created);
      }
    }
    advance(&gw);
  }
  if (gw.failures > 0) {
    fprintf(stderr, "gateway: %zu clients failed\n", gw.failures);
    status = 1;
  }
  if (status != 0) {
    printf("gateway: FAILED in phase %s: connected %zu joined %zu acked %zu received %zu/%zu\n",
           phase_name[gw.phase], gw.connected, gw.joined, gw.sends_acked, gw.received,
           clients * clients * messages);
  } else {
    printf("gateway: ok\n");
  }

  print_stats(&gw, created);
  /* Free stops clients that are still running; their pending completions are cancelled. */
  for (size_t i = 0; i < created; i++) wps_client_free(gw.slots[i].client);
  if (timer >= 0) close(timer);
  free(fds);
  free(gw.slots);
  return status;
}
