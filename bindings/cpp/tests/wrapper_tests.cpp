// Tests of the C++ wrapper against a running wps-emulator.
// Environment: WPS_TEST_URL (a client access URL whose token has the roles
// webpubsub.joinLeaveGroup and webpubsub.sendToGroup, user "cpp-tester") and
// WPS_TEST_URL_NOROLES (same hub, user "cpp-noroles", no roles).
// Usage: wrapper_tests [TEST_NAME]
#include <webpubsub_client.hpp>

#include <atomic>
#include <future>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace std::chrono_literals;
using harness::Probe;
using harness::Signal;

namespace {

std::string url() { return harness::env("WPS_TEST_URL"); }
std::string url_without_roles() { return harness::env("WPS_TEST_URL_NOROLES"); }

// No operation retries: a Forbidden ack fails at once instead of after the retry back-off.
wps::Options no_retries() {
  wps::Options o;
  o.message_retry(0, wps::RetryMode::fixed, 100ms, 100ms);
  return o;
}

bool ready(std::future<wps::Ack>& f, std::chrono::milliseconds timeout) {
  return f.wait_for(timeout) == std::future_status::ready;
}

}  // namespace

TEST(version_of_header_matches_library) {
  CHECK(wps::version_matches());
  CHECK(!wps::version_string().empty());
}

TEST(error_codes_use_the_wps_category) {
  std::error_code ec = wps::make_error_code(WPS_ERR_TIMEOUT);
  CHECK(ec.category() == wps::category());
  CHECK(std::string(ec.category().name()) == "wps");
  CHECK(ec == std::errc::timed_out);
  CHECK(!ec.message().empty());
  CHECK(wps::is_retryable(ec));
  CHECK(!wps::make_error_code(WPS_OK));
  CHECK(wps::make_error_code(WPS_ERR_CANCELLED) == std::errc::operation_canceled);
  CHECK(!wps::is_retryable(wps::make_error_code(WPS_ERR_INVALID_ARG)));
}

TEST(options_record_the_first_failing_setter) {
  wps::Options good;
  good.ack_timeout(5s).socket_buffers(16384, 16384).sequence_ack_interval(500ms).fire_and_forget_buffer(64).proxy("");
  good.max_inbound_message_size(4 << 20).user_agent("gateway/2.1");
  CHECK(!good.error());
  wps::Client ok(url(), good);
  CHECK(ok);
  wps::Options bad;
  bad.protocol(static_cast<wps::Protocol>(99)).ack_timeout(5s);
  CHECK(bad.error() == wps::make_error_code(WPS_ERR_INVALID_ARG));
  CHECK(bad.failure().function == "wps_options_set_protocol");
  wps::Options bad_agent;
  bad_agent.user_agent("bad\r\nX-Injected: 1");
  CHECK(bad_agent.error() == wps::make_error_code(WPS_ERR_INVALID_ARG));
  std::error_code ec;
  wps::Client refused(url(), bad, ec);
  CHECK(ec == wps::make_error_code(WPS_ERR_INVALID_ARG));
  CHECK(!refused);
}

TEST(network_options_check_their_values) {
  wps::Options good;
  good.reconnect_retry(WPS_RETRY_UNLIMITED, wps::RetryMode::exponential, 1s, 30s)
      .reconnect_jitter(20)
      .url_provider_timeout(2s)
      .proxy("socks5h://user:pass@127.0.0.1:1080")
      .proxy("");
  CHECK(!good.error());
  wps::Options jitter;
  jitter.reconnect_jitter(101);
  CHECK(jitter.error() == wps::make_error_code(WPS_ERR_INVALID_ARG));
  CHECK(jitter.failure().function == "wps_options_set_reconnect_jitter");
  wps::Options cert;
  cert.client_cert("/nonexistent/client.pem", "/nonexistent/client.key");
  CHECK(cert.error() == wps::make_error_code(WPS_ERR_INVALID_ARG));
  CHECK(cert.failure().message.find("/nonexistent/client.pem") != std::string::npos);
}

TEST(a_hung_url_provider_fails_start_within_its_timeout) {
  wps::Options opts;
  opts.url_provider_timeout(300ms).reconnect_retry(0, wps::RetryMode::fixed, 100ms, 100ms);
  auto release = std::make_shared<std::promise<void>>();
  std::shared_future<void> gate = release->get_future().share();
  auto c = wps::Client::with_url_provider(
      [gate] {
        gate.wait();
        return url();
      },
      opts);
  auto t0 = std::chrono::steady_clock::now();
  std::error_code ec;
  c.start(10s, ec);
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(ec == wps::make_error_code(WPS_ERR_URL_PROVIDER));
  CHECK(took < 2300ms);
  release->set_value();
  c.start(10s, ec);
  CHECK(!ec);
}

TEST(bad_url_throws_and_sets_error_code) {
  std::error_code ec;
  wps::Client c("not a url", ec);
  CHECK(ec);
  CHECK(ec.category() == wps::category());
  CHECK(!c);
  bool threw = false;
  try {
    wps::Client c2("http://127.0.0.1:1/not-ws");
  } catch (const wps::Error& e) {
    threw = true;
    CHECK(e.code().category() == wps::category());
    CHECK(std::string(e.what()).find("wps_client_new") != std::string::npos);
  }
  CHECK(threw);
}

TEST(handlers_are_freed_after_the_client) {
  Signal freed;
  {
    wps::Client c(url());
    auto probe = std::make_shared<Probe>(freed);
    c.on_group_message([probe](const wps::EventView&) {});
    c.on_connected([probe](const wps::EventView&) {});
    probe.reset();
    CHECK(freed.count() == 0);  // the library still owns the handlers
  }
  CHECK(freed.wait_for_count(1, 5s));  // ~Client freed the handle, the library freed the state
}

TEST(replacing_or_removing_a_handler_frees_the_old_one) {
  Signal freed_a, freed_b;
  wps::Client c(url());
  {
    auto a = std::make_shared<Probe>(freed_a);
    c.on_group_message([a](const wps::EventView&) {});
  }
  {
    auto b = std::make_shared<Probe>(freed_b);
    c.on_group_message([b](const wps::EventView&) {});  // replaces a
  }
  CHECK(freed_a.wait_for_count(1, 5s));
  CHECK(freed_b.count() == 0);
  c.on(wps::EventType::group_message, nullptr);  // removes b
  CHECK(freed_b.wait_for_count(1, 5s));
}

TEST(move_transfers_ownership) {
  Signal freed;
  wps::Client a(url());
  {
    auto probe = std::make_shared<Probe>(freed);
    a.on_connected([probe](const wps::EventView&) {});
  }
  wps::Client b(std::move(a));
  CHECK(!a);  // NOLINT(bugprone-use-after-move): moved-from state is specified
  CHECK(b);
  std::error_code ec;
  a.start(1s, ec);  // NOLINT(bugprone-use-after-move)
  CHECK(ec == wps::make_error_code(WPS_ERR_NULL_ARG));
  wps::Client c;
  c = std::move(b);
  CHECK(!b);  // NOLINT(bugprone-use-after-move)
  CHECK(freed.count() == 0);
  c = wps::Client();  // move-assigning over a live client frees it
  CHECK(freed.wait_for_count(1, 5s));
}

TEST(group_message_round_trip) {
  Signal got;
  std::mutex mu;
  std::string text, from, group;
  wps::Client c(url());
  c.on_group_message([&](const wps::EventView& ev) {
    {
      std::lock_guard<std::mutex> lock(mu);
      text = std::string(ev.text());
      from = std::string(ev.from_user_id().value_or(""));
      group = std::string(ev.group().value_or(""));
    }
    got.notify();
  });
  c.start(10s);
  CHECK(c.is_connected());
  CHECK(!c.connection_id().empty());
  wps::Ack joined = c.join_group("roundtrip");
  CHECK(joined.ack_id != 0);
  wps::Ack sent = c.send_to_group("roundtrip", wps::Payload::text("hello c++"));
  CHECK(sent.ack_id > joined.ack_id);
  REQUIRE(got.wait_for_count(1, 10s));
  {
    std::lock_guard<std::mutex> lock(mu);
    CHECK(text == "hello c++");
    CHECK(from == "cpp-tester");
    CHECK(group == "roundtrip");
  }
  c.stop(5s);
  CHECK(!c.is_connected());
  std::error_code ec;
  CHECK(c.connection_id(ec).empty());
  CHECK(ec == wps::make_error_code(WPS_ERR_NOT_CONNECTED));
}

TEST(binary_payload_with_nul_bytes_round_trips) {
  Signal got;
  std::mutex mu;
  std::string data;
  wps::DataType type = wps::DataType::text;
  wps::Client c(url());
  c.on_group_message([&](const wps::EventView& ev) {
    {
      std::lock_guard<std::mutex> lock(mu);
      data.assign(reinterpret_cast<const char*>(ev.data()), ev.size());
      type = ev.data_type();
    }
    got.notify();
  });
  c.start(10s);
  c.join_group("binary");
  const std::vector<std::uint8_t> bytes{0x00, 0x01, 0xff, 0x00, 0x7f, 0x80};
  c.send_to_group("binary", wps::Payload::binary(bytes));
  REQUIRE(got.wait_for_count(1, 10s));
  std::lock_guard<std::mutex> lock(mu);
  CHECK(type == wps::DataType::binary);
  CHECK(data == std::string("\x00\x01\xff\x00\x7f\x80", 6));
}

TEST(every_subprotocol_round_trips_text_and_binary) {
  for (wps::Protocol protocol : {wps::Protocol::json_reliable, wps::Protocol::json, wps::Protocol::protobuf_reliable,
                                 wps::Protocol::protobuf}) {
    Signal got;
    std::mutex mu;
    std::vector<std::pair<wps::DataType, std::string>> received;
    wps::Options opts;
    opts.protocol(protocol);
    std::error_code ec;
    wps::Client c(url(), opts, ec);
    REQUIRE(!ec);
    c.on_group_message([&](const wps::EventView& ev) {
      {
        std::lock_guard<std::mutex> lock(mu);
        received.emplace_back(ev.data_type(), std::string(ev.text()));
      }
      got.notify();
    });
    c.start(10s);
    const std::string group = "protocol-" + std::to_string(static_cast<unsigned>(protocol));
    c.join_group(group);
    c.send_to_group(group, wps::Payload::text("text \xc3\xa9"));
    const std::vector<std::uint8_t> bytes{0x00, 0xfe, 0x01};
    c.send_to_group(group, wps::Payload::binary(bytes));
    c.send_to_group(group, wps::Payload::json("{\"k\":[1,2]}"));
    CHECK(got.wait_for_count(3, 10s));
    c.stop(5s);
    std::lock_guard<std::mutex> lock(mu);
    REQUIRE(received.size() == 3);
    CHECK(received[0] == std::make_pair(wps::DataType::text, std::string("text \xc3\xa9")));
    CHECK(received[1] == std::make_pair(wps::DataType::binary, std::string("\x00\xfe\x01", 3)));
    // JSON through the protobuf subprotocols may arrive as text_data (PROTOCOL.md: JSON payloads
    // to protobuf clients), so there either type is accepted.
    const bool protobuf = protocol == wps::Protocol::protobuf_reliable || protocol == wps::Protocol::protobuf;
    CHECK(received[2].first == wps::DataType::json || (protobuf && received[2].first == wps::DataType::text));
    CHECK(received[2].second == "{\"k\":[1,2]}");
  }
}

TEST(leave_group_stops_delivery_and_no_echo_is_honoured) {
  Signal got;
  std::mutex mu;
  std::vector<std::string> texts;
  wps::Client c(url());
  c.on_group_message([&](const wps::EventView& ev) {
    {
      std::lock_guard<std::mutex> lock(mu);
      texts.emplace_back(ev.text());
    }
    got.notify();
  });
  c.start(10s);
  c.join_group("leaving");
  wps::SendOptions no_echo;
  no_echo.no_echo = true;
  c.send_to_group("leaving", wps::Payload::text("not for me"), no_echo);
  c.send_to_group("leaving", wps::Payload::text("first"));
  REQUIRE(got.wait_for_count(1, 10s));
  c.leave_group("leaving");
  c.join_group("marker");
  c.send_to_group("leaving", wps::Payload::text("after leave"));
  c.send_to_group("marker", wps::Payload::text("marker"));
  REQUIRE(got.wait_for_count(2, 10s));  // messages of one client arrive in order
  std::lock_guard<std::mutex> lock(mu);
  CHECK(texts == (std::vector<std::string>{"first", "marker"}));
}

TEST(url_provider_is_called_for_every_connection) {
  std::atomic<int> calls{0};
  auto c = wps::Client::with_url_provider([&] {
    calls++;
    return url();
  });
  c.start(10s);
  CHECK(calls == 1);
  c.join_group("provided");
  c.stop(5s);
  c.start(10s);  // a new connection asks again
  CHECK(calls == 2);
  c.stop(5s);
}

TEST(url_provider_is_freed_after_the_client_even_from_inside_a_handler) {
  Signal freed, handled;
  auto holder = std::make_shared<std::unique_ptr<wps::Client>>();
  {
    auto probe = std::make_shared<Probe>(freed);
    *holder = std::make_unique<wps::Client>(wps::Client::with_url_provider([probe] { return url(); }));
  }
  wps::Client& c = **holder;
  c.on_connected([holder, &handled](const wps::EventView&) {
    holder->reset();  // deferred free from inside a handler: the provider must go with it
    handled.notify();
  });
  // Async, and `c` is not touched afterwards: the handler may destroy it at any moment now.
  auto started = c.start_async(10s);
  CHECK(handled.wait_for_count(1, 10s));
  CHECK(ready(started, 10s));
  holder.reset();
  CHECK(freed.wait_for_count(1, 10s));
}

TEST(url_provider_failure_fails_start) {
  wps::Options opts;
  opts.reconnect_retry(0, wps::RetryMode::fixed, 100ms, 100ms);
  auto thrower = wps::Client::with_url_provider([]() -> std::string { throw std::runtime_error("no token"); }, opts);
  std::error_code ec;
  thrower.start(5s, ec);
  CHECK(ec);
  CHECK(thrower.handler_error_count() >= 1);  // the provider's exception was contained
  auto empty = wps::Client::with_url_provider([] { return std::string(); }, opts);
  empty.start(5s, ec);
  CHECK(ec);
}

TEST(log_handler_receives_redacted_lines) {
  // Shared state: a log call already in flight on a library thread may finish after the test.
  struct Lines {
    std::mutex mu;
    std::vector<std::string> all;
  };
  auto lines = std::make_shared<Lines>();
  CHECK(!wps::set_log_handler(wps::LogLevel::verbose, [lines](wps::LogLevel, std::string_view line) {
    std::lock_guard<std::mutex> lock(lines->mu);
    lines->all.emplace_back(line);
  }));
  {
    wps::Client c(url());
    c.start(10s);
    c.join_group("logged");
    c.stop(5s);
  }
  CHECK(!wps::set_log_handler(wps::LogLevel::off, nullptr));
  const std::string full = url();
  const std::string token = full.substr(full.find("access_token=") + 13);
  std::lock_guard<std::mutex> lock(lines->mu);
  CHECK(!lines->all.empty());
  for (const auto& line : lines->all) CHECK(line.find(token) == std::string::npos);  // tokens never logged
}

TEST(handler_replaces_itself_while_running) {
  Signal first_freed, second_ran;
  wps::Client c(url());
  {
    auto probe = std::make_shared<Probe>(first_freed);
    c.on_group_message([&c, &second_ran, probe](const wps::EventView&) {
      // Replacing the running handler: the library frees this one after it returns, so its
      // captures (probe) must still be alive here.
      c.on_group_message([&second_ran](const wps::EventView&) { second_ran.notify(); });
      CHECK(probe.use_count() >= 1);
    });
  }
  c.start(10s);
  c.join_group("replace-self");
  c.send_to_group("replace-self", wps::Payload::text("one"));
  c.send_to_group("replace-self", wps::Payload::text("two"));
  CHECK(first_freed.wait_for_count(1, 10s));
  CHECK(second_ran.wait_for_count(1, 10s));
  c.stop(5s);
}

TEST(blocking_call_inside_a_handler) {
  Signal pong;
  wps::Client c(url());
  c.on_group_message([&c, &pong](const wps::EventView& ev) {
    if (ev.text() == "ping") {
      wps::Ack a = c.send_to_group("ping-pong", wps::Payload::text("pong"));  // waits for its ack
      CHECK(a.ack_id != 0);
    } else if (ev.text() == "pong") {
      pong.notify();
    }
  });
  c.start(10s);
  c.join_group("ping-pong");
  c.send_to_group("ping-pong", wps::Payload::text("ping"));
  CHECK(pong.wait_for_count(1, 10s));
  c.stop(5s);
}

TEST(concurrent_senders_share_one_client) {
  constexpr int threads = 4, per_thread = 50;
  Signal got;
  wps::Client c(url());
  c.on_group_message([&got](const wps::EventView&) { got.notify(); });
  c.start(10s);
  c.join_group("concurrent");
  std::vector<std::thread> senders;
  std::atomic<int> failures{0};
  for (int t = 0; t < threads; t++) {
    senders.emplace_back([&c, &failures, t] {
      for (int i = 0; i < per_thread; i++) {
        std::error_code ec;
        c.send_to_group("concurrent", wps::Payload::text(std::to_string(t) + ":" + std::to_string(i)), {}, ec);
        if (ec) failures++;
      }
    });
  }
  for (auto& th : senders) th.join();
  CHECK(failures == 0);
  CHECK(got.wait_for_count(threads * per_thread, 10s));
  c.stop(5s);
}

TEST(no_handler_runs_after_the_client_is_destroyed) {
  wps::Client sender(url());
  sender.start(10s);
  for (int round = 0; round < 5; round++) {
    auto counter = std::make_unique<std::atomic<int>>(0);
    auto first = std::make_unique<Signal>();
    {
      wps::Client receiver(url());
      std::atomic<int>* count = counter.get();
      Signal* arrived = first.get();
      receiver.on_group_message([count, arrived](const wps::EventView&) {
        count->fetch_add(1);
        arrived->notify();
      });
      receiver.start(10s);
      receiver.join_group("flood");
      for (int i = 0; i < 200; i++) sender.send_to_group_async("flood", wps::Payload::text("m" + std::to_string(i)));
      CHECK(first->wait_for_count(1, 10s));
    }  // ~Client while messages are still arriving
    if (round == 0) std::printf("     (%d of 200 delivered before the client was destroyed)\n", counter->load());
    // Any handler call from now on would touch freed memory (AddressSanitizer reports it).
    counter.reset();
    first.reset();
  }
  sender.stop(5s);
}

TEST(handler_exceptions_are_contained) {
  Signal got, hooked;
  wps::Client c(url());
  c.on_group_message([&](const wps::EventView& ev) {
    got.notify();
    if (ev.text() == "boom") throw std::runtime_error("handler failure");
  });
  c.set_handler_error_hook([&](std::exception_ptr) { hooked.notify(); });
  c.start(10s);
  c.join_group("exceptions");
  c.send_to_group("exceptions", wps::Payload::text("boom"));
  c.send_to_group("exceptions", wps::Payload::text("boom"));
  c.send_to_group("exceptions", wps::Payload::text("fine"));
  CHECK(got.wait_for_count(3, 10s));  // delivery went on after the throws
  CHECK(hooked.wait_for_count(2, 5s));
  CHECK(c.handler_error_count() == 2);
  std::exception_ptr e = c.take_handler_error();
  REQUIRE(e != nullptr);
  try {
    std::rethrow_exception(e);
  } catch (const std::runtime_error& re) {
    CHECK(std::string(re.what()) == "handler failure");
  }
  CHECK(c.take_handler_error() == nullptr);
  c.stop(5s);
}

TEST(service_error_carries_name_and_ack_id) {
  wps::Client c(url_without_roles(), no_retries());
  c.start(10s);
  bool threw = false;
  try {
    c.join_group("forbidden-room");
  } catch (const wps::Error& e) {
    threw = true;
    CHECK(e.error_name() == "Forbidden");
    CHECK(e.ack_id() != 0);
    const std::string what = e.what();
    CHECK(what.find("wps_join_group") != std::string::npos);
    CHECK(what.find("Forbidden") != std::string::npos);
    CHECK(e.code().category() == wps::category());
    CHECK(e.code().value() >= WPS_ERR_ACK && e.code().value() < WPS_ERR_ACK + 100);
  }
  CHECK(threw);
  std::error_code ec;
  wps::Ack ack = c.send_to_group("forbidden-room", wps::Payload::text("x"), {}, ec);
  CHECK(ec);
  CHECK(ack.ack_id != 0);
  CHECK(ack.error_name == "Forbidden");
  c.stop(5s);
}

TEST(futures_complete_with_results) {
  wps::Client c(url());
  auto started = c.start_async(10s);
  REQUIRE(ready(started, 15s));
  started.get();
  auto joined = c.join_group_async("futures");
  REQUIRE(ready(joined, 10s));
  wps::Ack j = joined.get();
  CHECK(j.ack_id != 0);
  auto sent = c.send_to_group_async("futures", wps::Payload::json("{\"n\":1}"));
  REQUIRE(ready(sent, 10s));
  wps::Ack s = sent.get();
  CHECK(s.ack_id > j.ack_id);
  CHECK(!s.duplicated);
  // A retry with the same ack id is answered as a duplicate: still a success.
  // A failed future names the operation in what().
  auto refused = c.join_group_async("");
  REQUIRE(ready(refused, 10s));
  try {
    refused.get();
  } catch (const wps::Error& e) {
    CHECK(std::string(e.what()).find("join_group") != std::string::npos);
  }
  auto again = c.send_to_group_async("futures", wps::Payload::json("{\"n\":1}"), wps::SendOptions{s.ack_id});
  REQUIRE(ready(again, 10s));
  wps::Ack dup = again.get();
  CHECK(dup.ack_id == s.ack_id);
  CHECK(dup.duplicated);
  auto stopped = c.stop_async();
  REQUIRE(ready(stopped, 10s));
  stopped.get();
}

TEST(futures_complete_when_stopped) {
  wps::Client c(url());
  c.start(10s);
  c.join_group("stopping");
  std::vector<std::future<wps::Ack>> futures;
  for (int i = 0; i < 200; i++) {
    futures.push_back(c.send_to_group_async("stopping", wps::Payload::text("m" + std::to_string(i))));
  }
  c.stop(5s);
  int completed = 0, cancelled = 0;
  for (auto& f : futures) {
    REQUIRE(ready(f, 10s));
    try {
      f.get();
      completed++;
    } catch (const wps::Error& e) {
      CHECK(e.code().category() == wps::category());
      cancelled++;
    }
  }
  CHECK(completed + cancelled == 200);
  std::printf("     (%d completed, %d failed or cancelled by stop)\n", completed, cancelled);
  // After stop, new operations are refused at once: the future is ready with the failure.
  auto late = c.send_to_group_async("stopping", wps::Payload::text("late"));
  REQUIRE(ready(late, 1s));
  bool threw = false;
  try {
    late.get();
  } catch (const wps::Error&) {
    threw = true;
  }
  CHECK(threw);
}

TEST(futures_complete_when_the_client_is_destroyed) {
  std::vector<std::future<wps::Ack>> futures;
  {
    wps::Client c(url());
    c.start(10s);
    for (int i = 0; i < 50; i++) futures.push_back(c.join_group_async("destroyed-" + std::to_string(i)));
  }  // ~Client: pending operations are cancelled
  int cancelled = 0;
  for (auto& f : futures) {
    REQUIRE(ready(f, 10s));
    try {
      f.get();
    } catch (const wps::Error& e) {
      CHECK(e.code() == std::errc::operation_canceled);
      cancelled++;
    }
  }
  std::printf("     (%d of 50 cancelled by destruction)\n", cancelled);
}

TEST(poll_mode_runs_handlers_on_the_dispatching_thread) {
  wps::Options opts;
  opts.dispatch_mode(wps::DispatchMode::poll);
  wps::Client c(url(), opts);
  REQUIRE(c.fd() >= 0);
  const auto self = std::this_thread::get_id();
  bool on_this_thread = true;
  int messages = 0;
  c.on_group_message([&](const wps::EventView&) {
    on_this_thread = on_this_thread && std::this_thread::get_id() == self;
    messages++;
  });
  c.start(10s);
  auto joined = c.join_group_async("polled");
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!ready(joined, 0ms) && std::chrono::steady_clock::now() < deadline) c.dispatch(64, 100ms);
  REQUIRE(ready(joined, 0ms));
  joined.get();
  c.send_to_group("polled", wps::Payload::text("to myself"));
  while (messages == 0 && std::chrono::steady_clock::now() < deadline) c.dispatch(64, 100ms);
  CHECK(messages == 1);
  CHECK(on_this_thread);
  c.stop(5s);
}

// Runs tests/c/wps_tool.py's fault command against the emulator (WPS_TEST_TOOL and
// WPS_TEST_CONNSTR, set by scripts/cpp-tests.sh).
bool emulator_fault(const std::string& connection_id, const char* action) {
  const char* tool = std::getenv("WPS_TEST_TOOL");
  if (!tool || !std::getenv("WPS_TEST_CONNSTR")) return false;
  std::string cmd = std::string("python3 ") + tool + " fault cpptests " + connection_id + " " + action + " >/dev/null";
  return std::system(cmd.c_str()) == 0;
}

TEST(recovery_and_session_lost_handlers_see_the_lifecycle_in_order) {
  REQUIRE(std::getenv("WPS_TEST_TOOL") != nullptr);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> seen;
  std::uint64_t lost_seq = 1;
  std::string lost_id;
  auto record = [&](const char* name) {
    return [&, name](const wps::EventView& e) {
      std::lock_guard<std::mutex> lock(mu);
      seen.push_back(std::string(name) + ":" + std::string(e.connection_id().value_or("")));
      if (e.type() == wps::EventType::session_lost) {
        lost_seq = e.sequence_id();
        lost_id = std::string(e.connection_id().value_or(""));
      }
      cv.notify_all();
    };
  };
  wps::Client c(url());
  c.on_recovering(record("recovering"));
  c.on_recovered(record("recovered"));
  c.on_session_lost(record("session_lost"));
  c.on_disconnected(record("disconnected"));
  c.on_connected(record("connected"));
  c.start(10s);
  auto wait_for = [&](std::size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, 15s, [&] { return seen.size() >= n; });
  };
  REQUIRE(wait_for(1));
  const std::string id = std::string(c.connection_id());
  // A dropped socket: one recovering/recovered pair, same id, no second connected.
  REQUIRE(emulator_fault(id, "drop"));
  REQUIRE(wait_for(3));
  // A forgotten session: the recovery is refused; session lost (no message had arrived, so
  // sequence id 0) before disconnected, then a new connection.
  REQUIRE(emulator_fault(id, "expire"));
  REQUIRE(wait_for(7));
  std::lock_guard<std::mutex> lock(mu);
  const std::vector<std::string> expected = {"connected:" + id,    "recovering:" + id,   "recovered:" + id,
                                             "recovering:" + id,   "session_lost:" + id, "disconnected:" + id};
  CHECK(std::vector<std::string>(seen.begin(), seen.begin() + 6) == expected);
  CHECK(seen[6].rfind("connected:", 0) == 0 && seen[6] != "connected:" + id);
  CHECK(lost_id == id);
  CHECK(lost_seq == 0);
}

TEST(stats_count_sends_receives_and_connects) {
  wps::Client c(url());
  CHECK(c.stats().state == wps::State::stopped);
  Signal got;
  c.on_group_message([&](const wps::EventView&) { got.notify(); });
  c.start(10s);
  c.join_group("stats");
  for (int i = 0; i < 3; i++) c.send_to_group("stats", wps::Payload::text("m"));
  REQUIRE(got.wait_for_count(3, 10s));
  const wps::Stats s = c.stats();
  CHECK(s.state == wps::State::connected);
  CHECK(s.connects == 1);
  CHECK(s.messages_sent == 4);
  CHECK(s.acks_ok == 4);
  CHECK(s.acks_failed == 0);
  CHECK(s.messages_received == 3);
  CHECK(s.bytes_sent > 0 && s.bytes_received > 0);
  CHECK(s.inflight_acks == 0);
  c.stop(5s);
  CHECK(c.stats().state == wps::State::stopped);
  wps::Client empty;
  CHECK(empty.stats().state == wps::State::unknown);
}

TEST(offline_queue_accepts_sends_before_start_and_refuses_when_full) {
  wps::Options opts;
  opts.offline_queue(2).event_queue_limit(1000, 1 << 20);
  wps::Client c(url(), opts);
  auto first = c.send_to_group_async("offline-cpp", wps::Payload::text("a"));
  auto second = c.send_to_group_async("offline-cpp", wps::Payload::text("b"));
  // Full: refused at once (a future that is already failed).
  auto third = c.send_to_group_async("offline-cpp", wps::Payload::text("c"));
  CHECK(ready(third, 0ms));
  std::error_code ec;
  try {
    third.get();
  } catch (const wps::Error& e) {
    ec = e.code();
  }
  CHECK(ec == wps::make_error_code(WPS_ERR_QUEUE_FULL));
  CHECK(ec == std::errc::no_buffer_space);
  c.start(10s);
  CHECK(first.get().ack_id != 0);
  CHECK(second.get().ack_id != 0);
  c.stop(5s);
}

TEST(client_destroyed_inside_its_own_handler) {
  Signal freed, handled;
  auto holder = std::make_shared<std::unique_ptr<wps::Client>>(std::make_unique<wps::Client>(url()));
  wps::Client& c = **holder;
  {
    auto probe = std::make_shared<Probe>(freed);
    c.on_group_message([probe, holder, &handled](const wps::EventView&) {
      holder->reset();  // frees the client from its own handler: deferred by the library
      handled.notify();
    });
  }
  c.start(10s);
  c.join_group("self-destruct");
  // Async, and `c` is not touched afterwards: the handler may destroy it at any moment now.
  auto sent = c.send_to_group_async("self-destruct", wps::Payload::text("bye"));
  CHECK(handled.wait_for_count(1, 10s));
  CHECK(ready(sent, 10s));
  holder.reset();  // the handler's copy keeps the holder alive until the library frees it
  CHECK(freed.wait_for_count(1, 10s));
}
int main(int argc, char** argv) { return harness::run_all(argc, argv); }
