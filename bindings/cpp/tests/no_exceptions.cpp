// Built with -fno-exceptions: only the std::error_code overloads exist, and failed futures
// hold an Ack whose `error` is set. Environment as for wrapper_tests.
#include <webpubsub_client.hpp>

#if WPS_CPP_EXCEPTIONS
#error "this file must be compiled with -fno-exceptions"
#endif

#include "harness.hpp"

using namespace std::chrono_literals;

TEST(error_code_overloads_work_without_exceptions) {
  std::error_code ec;
  wps::Options opts(ec);
  REQUIRE(!ec);
  wps::Client c(harness::env("WPS_TEST_URL"), opts, ec);
  REQUIRE(!ec);
  harness::Signal got;
  c.on(wps::EventType::group_message, [&](const wps::EventView& ev) {
    if (ev.text() == "no exceptions") got.notify();
  }, ec);
  REQUIRE(!ec);
  c.start(10s, ec);
  REQUIRE(!ec);
  wps::Ack joined = c.join_group("noexcept", 0, ec);
  REQUIRE(!ec);
  CHECK(joined.ack_id != 0);
  c.send_to_group("noexcept", wps::Payload::text("no exceptions"), {}, ec);
  CHECK(!ec);
  CHECK(got.wait_for_count(1, 10s));
  c.stop(5s, ec);
  CHECK(!ec);
}

TEST(failed_future_holds_the_error_without_exceptions) {
  std::error_code ec;
  wps::Options opts(ec);
  REQUIRE(!ec);
  opts.message_retry(0, wps::RetryMode::fixed, 100ms, 100ms);  // fail at once on Forbidden
  wps::Client c(harness::env("WPS_TEST_URL_NOROLES"), opts, ec);
  REQUIRE(!ec);
  c.start(10s, ec);
  REQUIRE(!ec);
  auto f = c.join_group_async("forbidden-room");
  REQUIRE(f.wait_for(30s) == std::future_status::ready);
  wps::Ack ack = f.get();
  CHECK(!ack);
  CHECK(ack.error.category() == wps::category());
  CHECK(ack.error_name == "Forbidden");
  CHECK(ack.ack_id != 0);
  // An operation on an empty client is refused at once, also through a ready future.
  wps::Client empty;
  auto g = empty.join_group_async("x");
  REQUIRE(g.wait_for(0s) == std::future_status::ready);
  CHECK(g.get().error == wps::make_error_code(WPS_ERR_NULL_ARG));
  c.stop(5s, ec);
}

int main(int argc, char** argv) { return harness::run_all(argc, argv); }
