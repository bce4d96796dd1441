// gateway.cpp - many clients in one process, driven by the application's poll() loop (C++).
//
//   gateway_cpp URL GROUP CLIENTS MESSAGES [TIMEOUT_SECONDS]     (URL "-" = $WPS_CLIENT_URL)
//
// Every wps::Client runs in POLL dispatch mode: Client::fd() is readable while the client has
// events pending and Client::dispatch() runs them (handlers and the completions behind the
// std::futures) on this thread. The loop polls those descriptors together with its own
// timerfd. Phases: start all -> join GROUP -> each sends MESSAGES texts -> every client must
// receive CLIENTS * MESSAGES group messages -> stop all. Futures are checked without
// blocking (wait_for(0)) after each dispatch round; blocking on one would starve dispatch.
// Exit status 0 when everything arrived, 1 otherwise, 2 for bad arguments.
#include <webpubsub_client.hpp>

#include <poll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <iostream>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// A field of /proc/self/status ("Threads", "VmRSS" in KiB), or -1.
long process_status(const std::string& key) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::atol(line.c_str() + key.size() + 1);
  }
  return -1;
}

bool parse_count(const char* s, unsigned long max, std::size_t& out) {
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(s, &end, 10);
  if (errno != 0 || *end != '\0' || v == 0 || v > max) return false;
  out = v;
  return true;
}

struct Node {
  wps::Client client;
  std::size_t received = 0;  // touched only by handlers, which run on the main thread
};

}  // namespace

int main(int argc, char** argv) {
  std::size_t clients = 0, messages = 0, timeout_s = 60;
  if (argc < 5 || argc > 6 || !parse_count(argv[3], 10000, clients) || !parse_count(argv[4], 100000, messages) ||
      (argc == 6 && !parse_count(argv[5], 3600, timeout_s))) {
    std::cerr << "usage: " << argv[0] << " URL GROUP CLIENTS MESSAGES [TIMEOUT_SECONDS]   (URL \"-\" = $WPS_CLIENT_URL)\n";
    return 2;
  }
  const char* env_url = std::getenv("WPS_CLIENT_URL");
  const std::string url = std::string(argv[1]) == "-" ? (env_url ? env_url : "") : argv[1];
  const std::string group = argv[2];
  if (url.empty()) {
    std::cerr << "gateway: no client access URL\n";
    return 2;
  }
  std::cout << "gateway: " << clients << " clients, group " << group << ", " << messages << " messages each"
            << std::endl;

  try {
    wps::Options options;
    options.dispatch_mode(wps::DispatchMode::poll);

    std::vector<std::unique_ptr<Node>> nodes;
    std::size_t total_received = 0;
    for (std::size_t i = 0; i < clients; i++) {
      auto node = std::make_unique<Node>();
      node->client = wps::Client(url, options);
      Node* raw = node.get();
      node->client.on_group_message([raw, &total_received](const wps::EventView&) {
        raw->received++;
        total_received++;
      });
      nodes.push_back(std::move(node));
    }

    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    itimerspec every_second{{1, 0}, {1, 0}};
    if (timer < 0 || timerfd_settime(timer, 0, &every_second, nullptr) != 0) {
      std::perror("gateway: timerfd");
      return 1;
    }

    const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
    std::vector<pollfd> fds(clients + 1);
    std::vector<std::future<wps::Ack>> pending;
    std::size_t failures = 0;

    // Runs the poll loop until every future in `pending` is ready (or the deadline) and
    // `extra` holds; collects the results. Returns false on timeout.
    auto drive = [&](const char* phase, auto extra) {
      for (;;) {
        bool all_ready = true;
        for (auto& f : pending) {
          if (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
            all_ready = false;
            break;
          }
        }
        if (all_ready && extra()) break;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
          std::cerr << "gateway: timed out in phase " << phase << "\n";
          return false;
        }
        fds[0] = pollfd{timer, POLLIN, 0};
        for (std::size_t i = 0; i < clients; i++) fds[i + 1] = pollfd{nodes[i]->client.fd(), POLLIN, 0};
        int ready = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()) + 1);
        if (ready < 0 && errno != EINTR) {
          std::perror("gateway: poll");
          return false;
        }
        for (std::size_t i = 0; ready > 0 && i < clients; i++) {
          if (fds[i + 1].revents & POLLIN) nodes[i]->client.dispatch(64, std::chrono::milliseconds(0));
        }
        if (ready > 0 && (fds[0].revents & POLLIN)) {
          uint64_t ticks = 0;
          if (::read(timer, &ticks, sizeof ticks) == static_cast<ssize_t>(sizeof ticks)) {
            std::cerr << "gateway: [" << phase << "] received " << total_received << "\n";
          }
        }
      }
      for (auto& f : pending) {
        try {
          f.get();
        } catch (const wps::Error& e) {
          std::cerr << "gateway: " << e.what() << "\n";
          failures++;
        }
      }
      pending.clear();
      return failures == 0;
    };
    auto nothing_else = [] { return true; };

    bool ok = true;
    for (auto& n : nodes) pending.push_back(n->client.start_async(std::chrono::seconds(30)));
    ok = drive("start", nothing_else);
    if (ok) {
      std::cout << "gateway: connected " << clients << "/" << clients << " (process threads: "
                << process_status("Threads") << ", RSS " << process_status("VmRSS") << " KiB)" << std::endl;
      for (auto& n : nodes) pending.push_back(n->client.join_group_async(group));
      ok = drive("join", nothing_else);
    }
    if (ok) {
      std::cout << "gateway: joined " << clients << "/" << clients << std::endl;
      for (std::size_t i = 0; i < clients; i++) {
        for (std::size_t m = 0; m < messages; m++) {
          std::string text = "client " + std::to_string(i) + " message " + std::to_string(m);
          pending.push_back(nodes[i]->client.send_to_group_async(group, wps::Payload::text(text)));
        }
      }
      const std::size_t expected = clients * clients * messages;
      ok = drive("send", [&] { return total_received >= expected; });
      if (ok) {
        std::cout << "gateway: sends acked " << clients * messages << "/" << clients * messages << std::endl;
        std::cout << "gateway: received " << total_received << "/" << expected << " group messages" << std::endl;
      }
    }
    if (ok) {
      for (auto& n : nodes) pending.push_back(n->client.stop_async());
      ok = drive("stop", nothing_else);
      if (ok) std::cout << "gateway: stopped " << clients << "/" << clients << std::endl;
    }
    ::close(timer);
    std::cout << (ok ? "gateway: ok" : "gateway: FAILED") << std::endl;
    nodes.clear();  // frees every client; pending completions are cancelled
    return ok ? 0 : 1;
  } catch (const wps::Error& e) {
    std::cerr << "gateway: " << e.what() << "\n";
    return 1;
  }
}
