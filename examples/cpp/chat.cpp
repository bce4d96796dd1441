// chat.cpp - join a group, print what arrives, send lines from stdin (C++ wrapper).
//
//   chat_cpp URL GROUP      (URL "-" = $WPS_CLIENT_URL)
//
// Group messages are printed as "[GROUP] FROM: TEXT". At end of input the program waits up
// to 10 s for its own lines to come back through the group, then stops. Exit status: 0 when
// every line came back, 1 otherwise, 2 for bad arguments, 3 when connecting or joining fails.
#include <webpubsub_client.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

namespace {

struct Echoes {
  std::mutex mu;
  std::condition_variable changed;
  std::string user_id;
  std::vector<std::string> pending;  // lines sent whose echo has not arrived yet
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " URL GROUP   (URL \"-\" = $WPS_CLIENT_URL)\n";
    return 2;
  }
  const char* env_url = std::getenv("WPS_CLIENT_URL");
  const std::string url = std::string(argv[1]) == "-" ? (env_url ? env_url : "") : argv[1];
  const std::string group = argv[2];
  if (url.empty()) {
    std::cerr << "chat: no client access URL\n";
    return 2;
  }

  // Handlers only capture `echoes` through a shared_ptr: the library frees them after their
  // last run, which may be after main's locals are gone if the client is freed in a handler.
  auto echoes = std::make_shared<Echoes>();
  try {
    wps::Client client(url);
    client.on_connected([echoes](const wps::EventView& ev) {
      {
        std::lock_guard<std::mutex> lock(echoes->mu);
        echoes->user_id = std::string(ev.user_id().value_or(""));
      }
      std::cout << "connected: connection " << ev.connection_id().value_or("?") << ", user "
                << ev.user_id().value_or("(none)") << std::endl;
    });
    client.on_disconnected([](const wps::EventView& ev) {
      std::cerr << "chat: disconnected: " << ev.message().value_or("") << "\n";
    });
    client.on_group_message([echoes](const wps::EventView& ev) {
      std::cout << "[" << ev.group().value_or("?") << "] " << ev.from_user_id().value_or("(anonymous)") << ": "
                << ev.text() << std::endl;
      std::lock_guard<std::mutex> lock(echoes->mu);
      if (ev.from_user_id().value_or("") != echoes->user_id) return;
      for (auto it = echoes->pending.begin(); it != echoes->pending.end(); ++it) {
        if (*it == ev.text()) {
          echoes->pending.erase(it);
          echoes->changed.notify_all();
          break;
        }
      }
    });
    client.set_handler_error_hook([](std::exception_ptr) { std::cerr << "chat: a handler threw\n"; });

    try {
      client.start(std::chrono::seconds(30));
      auto joined = client.join_group(group);
      std::cerr << "chat: joined " << group << " (ack " << joined.ack_id << "); type lines to send\n";
    } catch (const wps::Error& e) {
      std::cerr << "chat: " << e.what() << "\n";
      return 3;
    }

    int status = 0;
    std::string line;
    while (std::getline(std::cin, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      {
        std::lock_guard<std::mutex> lock(echoes->mu);
        echoes->pending.push_back(line);
      }
      std::error_code ec;
      client.send_to_group(group, wps::Payload::text(line), {}, ec);
      if (ec) {
        std::cerr << "chat: send failed: " << ec.message() << "\n";
        status = 1;
      }
    }

    std::unique_lock<std::mutex> lock(echoes->mu);
    if (!echoes->changed.wait_for(lock, std::chrono::seconds(10), [&] { return echoes->pending.empty(); })) {
      std::cerr << "chat: " << echoes->pending.size() << " of my messages did not come back\n";
      status = 1;
    }
    lock.unlock();
    client.stop(std::chrono::seconds(5));
    return status;  // ~Client frees the handle; the library then frees the handlers
  } catch (const wps::Error& e) {
    std::cerr << "chat: " << e.what() << "\n";
    return 3;
  }
}
