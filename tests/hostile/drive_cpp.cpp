// Hostile-service driver for the C++ wrapper: the standard script of tests/hostile/drive_c.c
// written with the wrapper's idioms (wps::Options chaining, wps::Client handlers, throwing
// calls caught as wps::Error), printing the same JSON lines.
//
//   drive_cpp URL [--ca-file PEM] [--wait-ms N]
#include <webpubsub_client.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

const Clock::time_point t0 = Clock::now();
std::mutex mu;
std::condition_variable cv;
bool got_end = false;
bool got_stopped = false;

double elapsed_ms() { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

std::string json_str(std::string_view s, std::size_t max = 4096) {
  std::ostringstream out;
  out << '"';
  for (std::size_t i = 0; i < s.size() && i < max; i++) {
    auto ch = static_cast<unsigned char>(s[i]);
    if (ch == '"' || ch == '\\') {
      out << '\\' << static_cast<char>(ch);
    } else if (ch < 0x20 || ch >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", ch);
      out << buf;
    } else {
      out << static_cast<char>(ch);
    }
  }
  out << '"';
  return out.str();
}

std::string json_opt(std::optional<std::string_view> s) { return s ? json_str(*s) : "null"; }

const char* event_name(wps::EventType t) {
  switch (t) {
    case wps::EventType::connected: return "connected";
    case wps::EventType::disconnected: return "disconnected";
    case wps::EventType::stopped: return "stopped";
    case wps::EventType::server_message: return "server_message";
    case wps::EventType::group_message: return "group_message";
    case wps::EventType::rejoin_group_failed: return "rejoin_group_failed";
    case wps::EventType::ack: return "ack";
    case wps::EventType::recovering: return "recovering";
    case wps::EventType::recovered: return "recovered";
    case wps::EventType::session_lost: return "session_lost";
    case wps::EventType::stream: return "stream";
    case wps::EventType::group_state: return "group_state";
  }
  return "unknown";
}

void print_line(const std::string& line) {
  std::cout << line << '\n';
  std::cout.flush();
}

void on_event(const wps::EventView& e) {
  std::ostringstream line;
  line << "{\"t\":" << elapsed_ms() << ",\"event\":\"" << event_name(e.type()) << '"'
       << ",\"connection_id\":" << json_opt(e.connection_id()) << ",\"message\":" << json_opt(e.message())
       << ",\"group\":" << json_opt(e.group()) << ",\"error_name\":" << json_opt(e.error_name());
  if (e.type() == wps::EventType::rejoin_group_failed || e.type() == wps::EventType::ack)
    line << ",\"result\":\"" << wps_result_name(e.result()) << '"';
  if (e.data() != nullptr)
    line << ",\"data_type\":" << static_cast<std::uint32_t>(e.data_type()) << ",\"data_len\":" << e.size()
         << ",\"sequence_id\":" << e.sequence_id() << ",\"data\":" << json_str(e.text(), 200);
  line << '}';
  std::lock_guard<std::mutex> lock(mu);
  print_line(line.str());
  if (e.type() == wps::EventType::server_message && e.text() == "END") got_end = true;
  if (e.type() == wps::EventType::stopped) got_stopped = true;
  cv.notify_all();
}

// Runs one throwing wrapper call and prints its outcome.
template <typename F>
void run(const char* op, F&& call) {
  double started = elapsed_ms();
  std::ostringstream line;
  try {
    call();
    line << "{\"t\":" << elapsed_ms() << ",\"op\":\"" << op << "\",\"result\":\"WPS_OK\",\"ms\":"
         << elapsed_ms() - started << '}';
  } catch (const wps::Error& e) {
    line << "{\"t\":" << elapsed_ms() << ",\"op\":\"" << op << "\",\"result\":\"" << wps_result_name(e.result())
         << "\",\"ms\":" << elapsed_ms() - started << ",\"message\":" << json_str(e.detail())
         << ",\"error_name\":" << (e.error_name().empty() ? "null" : json_str(e.error_name()))
         << ",\"what\":" << json_str(e.what()) << '}';
  }
  std::lock_guard<std::mutex> lock(mu);
  print_line(line.str());
}

}  // namespace

int main(int argc, char** argv) {
  std::string url, ca_file;
  long wait_ms = 8000;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--ca-file" && i + 1 < argc) ca_file = argv[++i];
    else if (a == "--wait-ms" && i + 1 < argc) wait_ms = std::stol(argv[++i]);
    else url = a;
  }
  if (url.empty()) {
    std::cerr << "usage: drive_cpp URL [--ca-file PEM] [--wait-ms N]\n";
    return 2;
  }

  wps::Options opts;
  opts.protocol(wps::Protocol::json_reliable)
      .reconnect_retry(2, wps::RetryMode::fixed, 100ms, 100ms)
      .recovery_timeout(2s);
  if (!ca_file.empty()) opts.ca_file(ca_file);
  if (opts.error()) {
    std::cerr << "options: " << opts.failure().function << ": " << opts.error().message() << '\n';
    return 2;
  }
  {
    wps::Client client;
    run("new", [&] { client = wps::Client(url, opts); });
    if (!client) return 0;
    for (auto t : {wps::EventType::connected, wps::EventType::disconnected, wps::EventType::stopped,
                   wps::EventType::server_message, wps::EventType::group_message,
                   wps::EventType::rejoin_group_failed, wps::EventType::ack})
      client.on(t, on_event);

    bool started = false;
    run("start", [&] {
      client.start(3s);
      started = true;
    });
    if (started) {
      run("join", [&] { client.join_group("g"); });
      run("send", [&] { client.send_to_group("g", wps::Payload::text("hi")); });
      std::unique_lock<std::mutex> lock(mu);
      cv.wait_for(lock, std::chrono::milliseconds(wait_ms), [] { return got_end || got_stopped; });
      const char* why = got_end ? "END" : got_stopped ? "STOPPED" : "deadline";
      print_line("{\"t\":" + std::to_string(elapsed_ms()) + ",\"op\":\"wait\",\"until\":\"" + why + "\"}");
    }
    run("stop", [&] { client.stop(3s); });
    run("free", [&] { client.close(); });
  }
  return 0;
}
