// Tests of the C++ wrapper's group streams (Stream, StreamReaders) and group state
// (GroupStateCache merge rules with a fake clock, GroupStateView against the emulator).
// Environment: as wrapper_tests (WPS_TEST_URL, WPS_TEST_URL_NOROLES, and WPS_TEST_TOOL /
// WPS_TEST_CONNSTR for the fault API).
// Usage: stream_tests [TEST_NAME]
#include <webpubsub_client.hpp>

#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace std::chrono_literals;
using harness::Signal;

namespace {

constexpr auto kWait = 15s;

std::string url() { return harness::env("WPS_TEST_URL"); }
std::string url_without_roles() { return harness::env("WPS_TEST_URL_NOROLES"); }

bool emulator_fault(const std::string& connection_id, const char* action) {
  const char* tool = std::getenv("WPS_TEST_TOOL");
  if (!tool || !std::getenv("WPS_TEST_CONNSTR")) return false;
  std::string cmd = std::string("python3 ") + tool + " fault cpptests " + connection_id + " " + action + " >/dev/null";
  return std::system(cmd.c_str()) == 0;
}

/// New readers handed from the event thread to the test thread.
class ReaderInbox {
 public:
  void add(std::shared_ptr<wps::StreamReader> r) {
    std::lock_guard<std::mutex> lock(mu_);
    readers_.push_back(std::move(r));
    cv_.notify_all();
  }
  std::shared_ptr<wps::StreamReader> next(std::chrono::milliseconds timeout = kWait) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return taken_ < readers_.size(); })) return nullptr;
    return readers_[taken_++];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<wps::StreamReader>> readers_;
  std::size_t taken_ = 0;
};

/// A started client whose stream frames go to per-stream readers.
struct Receiver {
  ReaderInbox inbox;
  wps::StreamReaders readers{[this](std::shared_ptr<wps::StreamReader> r) { inbox.add(std::move(r)); }};
  wps::Client client;
  explicit Receiver(const wps::Options& o = wps::Options()) : client(url(), o) {
    client.on_stream([this](const wps::EventView& e) { readers.handle(e); });
    client.start();
  }
};

/// Reads to the end: the fragments' data, and the final status.
wps::StreamReader::Status drain(wps::StreamReader& r, std::vector<wps::StreamFragment>& out) {
  for (;;) {
    wps::StreamFragment f;
    auto st = r.next(f, kWait);
    if (st != wps::StreamReader::Status::fragment) return st;
    out.push_back(std::move(f));
  }
}

wps::GroupStateRecord rec(const std::string& id, std::int64_t at,
                          std::optional<std::map<std::string, std::string>> state = std::nullopt) {
  wps::GroupStateRecord r;
  r.connection_id = id;
  r.updated_at = at;
  r.state = std::move(state);
  return r;
}

std::map<std::string, std::string> st(const std::string& v) { return {{"s", v}}; }

}  // namespace

// --- merge rules (no service) ---------------------------------------------------------------

TEST(cache_keeps_only_newer_records) {
  std::int64_t now = 0;
  wps::GroupStateCache cache([&] { return now; });
  CHECK(cache.apply({rec("a", 10, st("1"))}, true));
  CHECK(!cache.apply({rec("a", 10, st("equal"))}, false));
  CHECK(!cache.apply({rec("a", 9, st("older"))}, false));
  CHECK(cache.apply({rec("a", 11, st("2"))}, false));
  auto list = cache.list();
  REQUIRE(list.size() == 1);
  CHECK(list[0].state == st("2") && list[0].updated_at == 11);
}

TEST(cache_protects_updates_from_a_snapshot_for_300_s) {
  std::int64_t now = 0;
  wps::GroupStateCache cache([&] { return now; });
  cache.apply({rec("a", 1, st("x"))}, false);
  now = 299999;
  cache.apply({}, true);
  CHECK(cache.list().size() == 1);
  now = 300000;
  CHECK(cache.apply({}, true));
  CHECK(cache.list().empty());
}

TEST(cache_snapshot_deletes_unlisted_and_empty_snapshot_is_authoritative) {
  std::int64_t now = 0;
  wps::GroupStateCache cache([&] { return now; });
  cache.apply({rec("a", 1, st("x")), rec("b", 1, st("y"))}, true);
  CHECK(cache.apply({rec("b", 1, st("y"))}, true));
  auto list = cache.list();
  REQUIRE(list.size() == 1);
  CHECK(list[0].connection_id == "b");
  CHECK(cache.apply({}, true));
  CHECK(cache.list().empty());
}

TEST(cache_tombstones_hide_stale_state_then_expire) {
  std::int64_t now = 0;
  wps::GroupStateCache cache([&] { return now; });
  cache.apply({rec("a", 10, st("x"))}, true);
  CHECK(cache.apply({rec("a", 11)}, false));
  CHECK(cache.list().empty());
  CHECK(cache.tombstone_count() == 1);
  CHECK(!cache.apply({rec("a", 10, st("x"))}, true));  // an older snapshot cannot resurrect it
  CHECK(cache.list().empty());
  now = 300000;
  CHECK(cache.tombstone_count() == 0);
  CHECK(cache.apply({rec("a", 10, st("back"))}, true));  // after expiry it can
  CHECK(cache.list().size() == 1);
}

TEST(cache_keeps_at_most_200_tombstones_oldest_first) {
  std::int64_t now = 0;
  wps::GroupStateCache cache([&] { return now; });
  for (int i = 0; i < 201; i++) {
    now++;
    cache.apply({rec("c" + std::to_string(i), 100)}, false);
  }
  CHECK(cache.tombstone_count() == 200);
  cache.apply({rec("c0", 50, st("0")), rec("c1", 50, st("1"))}, true);
  auto list = cache.list();
  REQUIRE(list.size() == 1);
  CHECK(list[0].connection_id == "c0");
}

TEST(group_state_records_parse_from_event_json) {
  std::vector<wps::GroupStateRecord> out;
  REQUIRE(wps::parse_group_state_records(
      R"([{"connectionId":"c1","userId":"u\u00e9","state":{"k":"v\"q"},"updatedAt":1700000000123,"x":[1,{"y":null}]},)"
      R"( {"connectionId":"c2","updatedAt":5}])",
      out));
  REQUIRE(out.size() == 2);
  CHECK(out[0].connection_id == "c1" && out[0].user_id == std::string("u\xc3\xa9"));
  CHECK(out[0].state == (std::map<std::string, std::string>{{"k", "v\"q"}}));
  CHECK(out[0].updated_at == 1700000000123);
  CHECK(!out[1].user_id && !out[1].state && out[1].updated_at == 5);
  std::vector<wps::GroupStateRecord> bad;
  CHECK(!wps::parse_group_state_records("[{\"connectionId\":", bad));
}

// --- streams against the emulator -----------------------------------------------------------

TEST(stream_of_500_fragments_arrives_complete_and_in_order) {
  Receiver rx;
  rx.client.join_group("cpp-s500");
  wps::Client tx(url());
  tx.start();
  wps::Stream s = tx.open_stream("cpp-s500");
  REQUIRE(!s.id().empty());
  const std::string id(s.id());
  for (int i = 0; i < 500; i++) s.write(wps::Payload::text("f" + std::to_string(i)));
  s.end();
  auto reader = rx.inbox.next();
  REQUIRE(reader);
  CHECK(reader->group() == "cpp-s500" && reader->stream_id() == id);
  CHECK(reader->from_user_id() == "cpp-tester");
  std::vector<wps::StreamFragment> got;
  CHECK(drain(*reader, got) == wps::StreamReader::Status::ended);
  REQUIRE(got.size() == 500);
  for (int i = 0; i < 500; i++) {
    CHECK(got[static_cast<std::size_t>(i)].data == "f" + std::to_string(i));
    CHECK(got[static_cast<std::size_t>(i)].sequence_id == static_cast<std::uint64_t>(i + 1));
  }
}

TEST(abort_reaches_the_reader_as_user_error_with_code) {
  Receiver rx;
  rx.client.join_group("cpp-abort");
  wps::Client tx(url());
  tx.start();
  wps::Stream s = tx.open_stream("cpp-abort", {"abort-1"});
  s.write(wps::Payload::json(R"({"n":1})"));
  s.abort("broke", "E9");
  std::error_code ec;
  s.write(wps::Payload::text("late"), 0ms, ec);
  CHECK(ec == wps::make_error_code(WPS_ERR_STREAM_CLOSED));
  CHECK(s.last_failure().error_name == "Ended");
  auto reader = rx.inbox.next();
  REQUIRE(reader);
  std::vector<wps::StreamFragment> got;
  CHECK(drain(*reader, got) == wps::StreamReader::Status::failed);
  REQUIRE(got.size() == 1);
  CHECK(got[0].type == wps::DataType::json && got[0].data == R"({"n":1})");
  auto err = reader->error();
  REQUIRE(err);
  CHECK(err->name == "UserError" && err->message == "broke" && err->user_error_code == "E9");
}

TEST(destroying_an_open_stream_aborts_it) {
  Receiver rx;
  rx.client.join_group("cpp-raii");
  wps::Client tx(url());
  tx.start();
  {
    wps::Stream s = tx.open_stream("cpp-raii");
    s.write(wps::Payload::text("only"));
  }
  auto reader = rx.inbox.next();
  REQUIRE(reader);
  std::vector<wps::StreamFragment> got;
  CHECK(drain(*reader, got) == wps::StreamReader::Status::failed);
  CHECK(got.size() == 1);
  CHECK(reader->error() && reader->error()->name == "UserError");
}

TEST(open_without_send_permission_is_forbidden) {
  wps::Client tx(url_without_roles());
  tx.start();
  std::error_code ec;
  wps::Stream s = tx.open_stream("cpp-forbidden", {}, ec);
  CHECK(ec);
  CHECK(!s);
  try {
    tx.open_stream("cpp-forbidden");
    CHECK(false);
  } catch (const wps::Error& e) {
    CHECK(e.error_name() == "Forbidden");
  }
}

TEST(reading_on_the_event_thread_is_refused) {
  Signal done;
  std::atomic<int> status{-1};
  wps::StreamReaders readers([&](std::shared_ptr<wps::StreamReader> r) {
    wps::StreamFragment f;
    r->next(f, 1s);  // buffered already
    status = static_cast<int>(r->next(f, 1s));
    done.notify();
  });
  wps::Client rx(url());
  rx.on_stream([&](const wps::EventView& e) { readers.handle(e); });
  rx.start();
  rx.join_group("cpp-thread");
  wps::Client tx(url());
  tx.start();
  wps::Stream s = tx.open_stream("cpp-thread");
  s.write(wps::Payload::text("x"));
  REQUIRE(done.wait_for_count(1, kWait));
  CHECK(status == static_cast<int>(wps::StreamReader::Status::wrong_thread));
  s.end();
  rx.close();
}

TEST(stream_across_a_dropped_publisher_connection_arrives_once_in_order) {
  REQUIRE(std::getenv("WPS_TEST_TOOL") != nullptr);
  Receiver rx;
  rx.client.join_group("cpp-drop");
  Signal recovered;
  wps::Client tx(url());
  tx.on_recovered([&](const wps::EventView&) { recovered.notify(); });
  tx.start();
  wps::Stream s = tx.open_stream("cpp-drop");
  for (int i = 0; i < 100; i++) s.write(wps::Payload::text(std::to_string(i)));
  REQUIRE(emulator_fault(tx.connection_id(), "drop"));
  for (int i = 100; i < 200; i++) s.write(wps::Payload::text(std::to_string(i)));
  REQUIRE(recovered.wait_for_count(1, kWait));
  s.end();
  auto reader = rx.inbox.next();
  REQUIRE(reader);
  std::vector<wps::StreamFragment> got;
  CHECK(drain(*reader, got) == wps::StreamReader::Status::ended);
  REQUIRE(got.size() == 200);
  for (int i = 0; i < 200; i++) CHECK(got[static_cast<std::size_t>(i)].data == std::to_string(i));
}

TEST(full_reader_ends_with_reader_overflow) {
  ReaderInbox inbox;
  wps::StreamReaders readers([&](std::shared_ptr<wps::StreamReader> r) { inbox.add(std::move(r)); }, 4, 200ms);
  wps::Client rx(url());
  rx.on_stream([&](const wps::EventView& e) { readers.handle(e); });
  rx.start();
  rx.join_group("cpp-overflow");
  wps::Client tx(url());
  tx.start();
  wps::Stream s = tx.open_stream("cpp-overflow");
  for (int i = 0; i < 20; i++) s.write(wps::Payload::text(std::to_string(i)));
  s.end();
  auto reader = inbox.next();
  REQUIRE(reader);
  // nothing is read until the reader gave up waiting for room (state without an event: polled)
  auto deadline = std::chrono::steady_clock::now() + kWait;
  while (!reader->done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  std::vector<wps::StreamFragment> got;
  CHECK(drain(*reader, got) == wps::StreamReader::Status::failed);
  CHECK(got.size() == 4);
  CHECK(reader->error() && reader->error()->name == "ReaderOverflow");
  rx.close();
}

// --- group state against the emulator -------------------------------------------------------

TEST(group_state_view_follows_snapshot_update_and_clear) {
  wps::GroupStateView view;
  Signal events;
  wps::Client watcher(url());
  watcher.on_group_state([&](const wps::EventView& e) {
    view.handle(e);
    events.notify();
  });
  watcher.on_connected([&](const wps::EventView& e) { view.handle(e); });
  watcher.start();
  wps::Client member(url());
  member.start();
  watcher.join_group("cpp-room");
  member.join_group("cpp-room");
  member.set_group_state("cpp-room", R"({"status":"away"})");
  CHECK(!view.list("cpp-room"));
  view.track("cpp-room");
  watcher.subscribe_group_state("cpp-room");
  REQUIRE(events.wait_for_count(1, kWait));
  auto list = view.list("cpp-room");
  REQUIRE(list && list->size() == 1);
  CHECK((*list)[0].connection_id == member.connection_id());
  CHECK((*list)[0].state == (std::map<std::string, std::string>{{"status", "away"}}));

  member.set_group_state("cpp-room", R"({"status":"typing"})");
  REQUIRE(events.wait_for_count(2, kWait));
  list = view.list("cpp-room");
  REQUIRE(list && list->size() == 1);
  CHECK((*list)[0].state == (std::map<std::string, std::string>{{"status", "typing"}}));

  member.clear_group_state("cpp-room");
  REQUIRE(events.wait_for_count(3, kWait));
  CHECK(view.list("cpp-room")->empty());

  auto fut = watcher.unsubscribe_group_state_async("cpp-room");
  REQUIRE(fut.wait_for(kWait) == std::future_status::ready);
  CHECK(fut.get());
  view.untrack("cpp-room");
  CHECK(!view.list("cpp-room"));
}

TEST(group_state_outside_the_group_is_bad_request) {
  wps::Client c(url());
  c.start();
  std::error_code ec;
  wps::Ack ack = c.set_group_state("cpp-not-joined", R"({"k":"v"})", 0, ec);
  CHECK(ec);
  CHECK(ack.error_name == "BadRequest");
}

int main(int argc, char** argv) { return harness::run_all(argc, argv); }
