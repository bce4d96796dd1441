/*
 * webpubsub_client.hpp - header-only C++17 wrapper over the webpubsub_client C API.
 *
 * Ownership:   wps::Client is move-only and owns one wps_client handle; its destructor
 *              calls wps_client_free (deferred by the library when run inside one of the
 *              client's own callbacks).
 * Handlers:    std::function handlers live in heap state the *library* frees (through the
 *              wps_free_fn destructor) after their last invocation, so a Client may be
 *              destroyed on any thread, even inside its own handler.
 * Errors:      throwing methods raise wps::Error (a std::system_error over wps_result codes,
 *              carrying the service error name such as "Forbidden" and the ack id); every
 *              throwing method has a non-throwing overload taking std::error_code&. Built with
 *              -fno-exceptions only the non-throwing overloads exist.
 * Async:       *_async methods return std::future<wps::Ack>. The library completes every
 *              accepted operation exactly once (success, service error, timeout, or
 *              WPS_ERR_CANCELLED on stop/free), so every future becomes ready. In POLL
 *              dispatch mode completions run inside dispatch(): do not block on a future on
 *              the thread that is supposed to call dispatch().
 * Exceptions thrown by handlers are caught before they reach the C library; they are counted
 * and handed to the client's handler-error hook (set_handler_error_hook).
 * The wrapper holds no lock while it calls into the library or into user code.
 */
#ifndef WEBPUBSUB_CLIENT_HPP
#define WEBPUBSUB_CLIENT_HPP

#include "webpubsub_client.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <deque>
#include <vector>

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#define WPS_CPP_EXCEPTIONS 1
#else
#define WPS_CPP_EXCEPTIONS 0
#endif

namespace wps {

// ---------------------------------------------------------------------------------------
// Error codes

/// std::error_category over wps_result codes (the category's name is "wps").
class ErrorCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "wps"; }
  std::string message(int ev) const override { return wps_result_str(static_cast<int32_t>(ev)); }
  std::error_condition default_error_condition(int ev) const noexcept override {
    switch (ev) {
      case WPS_ERR_TIMEOUT: return std::errc::timed_out;
      case WPS_ERR_NULL_ARG:
      case WPS_ERR_INVALID_ARG: return std::errc::invalid_argument;
      case WPS_ERR_INVALID_UTF8: return std::errc::illegal_byte_sequence;
      case WPS_ERR_PAYLOAD_TOO_LARGE: return std::errc::message_size;
      case WPS_ERR_NOT_CONNECTED: return std::errc::not_connected;
      case WPS_ERR_QUEUE_FULL: return std::errc::no_buffer_space;
      case WPS_ERR_UNSUPPORTED: return std::errc::not_supported;
      case WPS_ERR_CANCELLED: return std::errc::operation_canceled;
      default: return std::error_condition(ev, *this);
    }
  }
};

/// The one ErrorCategory instance.
inline const std::error_category& category() noexcept {
  static const ErrorCategory instance;
  return instance;
}

/// A std::error_code for a wps_result (WPS_OK gives an empty code).
inline std::error_code make_error_code(int32_t result) noexcept {
  return result == WPS_OK ? std::error_code() : std::error_code(static_cast<int>(result), category());
}

/// Whether retrying the failed operation (with the same ack id) may succeed.
inline bool is_retryable(const std::error_code& ec) noexcept {
  return ec && ec.category() == category() && wps_result_is_retryable(static_cast<int32_t>(ec.value()));
}

/// What a failed call left behind, copied out of the library's thread-local detail.
struct Failure {
  int32_t result = WPS_OK;
  std::uint64_t ack_id = 0;   ///< the ack id the operation used (0 if none), for a retry
  std::string error_name;     ///< the service's error name ("Forbidden", ...), empty otherwise
  std::string message;        ///< detail text, empty if the library gave none
  std::string function;       ///< the C function that failed
};

#if WPS_CPP_EXCEPTIONS
/// Thrown by the throwing overloads: a std::system_error in wps::category().
class Error : public std::system_error {
 public:
  explicit Error(Failure f)
      : std::system_error(make_error_code(f.result), describe(f)), failure_(std::move(f)) {}

  /// The service's error name for an ack error ("Forbidden", "InternalServerError", ...);
  /// empty when the failure did not come from a service ack.
  const std::string& error_name() const noexcept { return failure_.error_name; }
  /// The ack id the failed operation used; pass it back to retry without duplicates.
  std::uint64_t ack_id() const noexcept { return failure_.ack_id; }
  /// The library's detail message (may be empty).
  const std::string& detail() const noexcept { return failure_.message; }
  int32_t result() const noexcept { return failure_.result; }
  bool retryable() const noexcept { return wps_result_is_retryable(failure_.result); }

 private:
  static std::string describe(const Failure& f) {
    std::string s = f.function.empty() ? std::string("wps") : f.function;
    if (!f.error_name.empty()) s += ": " + f.error_name;
    if (!f.message.empty()) s += ": " + f.message;
    // The library's message names the ack id already for most failures; add it only if not.
    const std::string id = "(ack id " + std::to_string(f.ack_id) + ")";
    if (f.ack_id != 0 && f.message.find(id) == std::string::npos) s += " " + id;
    return s;
  }
  Failure failure_;
};
#endif

// ---------------------------------------------------------------------------------------
// Enumerations mirrored from the C header

enum class EventType : std::uint32_t {
  connected = WPS_EVENT_CONNECTED,
  disconnected = WPS_EVENT_DISCONNECTED,
  stopped = WPS_EVENT_STOPPED,
  server_message = WPS_EVENT_SERVER_MESSAGE,
  group_message = WPS_EVENT_GROUP_MESSAGE,
  rejoin_group_failed = WPS_EVENT_REJOIN_GROUP_FAILED,
  ack = WPS_EVENT_ACK,
  recovering = WPS_EVENT_RECOVERING,      ///< recovery of a reliable connection starts
  recovered = WPS_EVENT_RECOVERED,        ///< the service accepted the session again
  session_lost = WPS_EVENT_SESSION_LOST,  ///< a reliable session ended without recovery
  stream = WPS_EVENT_STREAM,              ///< one frame of a received group stream
  group_state = WPS_EVENT_GROUP_STATE,    ///< a group-state snapshot or update
};

/// Connection state reported in Stats (WPS_STATE_*).
enum class State : std::uint32_t {
  unknown = 0,
  stopped = WPS_STATE_STOPPED,
  connecting = WPS_STATE_CONNECTING,
  connected = WPS_STATE_CONNECTED,
  recovering = WPS_STATE_RECOVERING,
  reconnecting = WPS_STATE_RECONNECTING,
  stopping = WPS_STATE_STOPPING,
};

/// A snapshot of a client's counters (Client::stats()); see wps_stats in the C header.
struct Stats {
  State state = State::unknown;
  std::uint64_t messages_sent = 0, messages_received = 0, bytes_sent = 0, bytes_received = 0;
  std::uint64_t acks_ok = 0, acks_failed = 0, retries = 0, duplicates = 0;
  std::uint64_t connects = 0, recoveries = 0, session_losses = 0;
  std::uint64_t queued_messages = 0, queued_bytes = 0, inflight_acks = 0;
  std::uint64_t last_ping_rtt_us = 0;  ///< 0 when unknown
};

enum class DataType : std::uint32_t {
  text = WPS_DATA_TEXT,
  json = WPS_DATA_JSON,
  binary = WPS_DATA_BINARY,
  protobuf = WPS_DATA_PROTOBUF,
};

enum class Protocol : std::uint32_t {
  json_reliable = WPS_PROTOCOL_JSON_RELIABLE,  ///< default
  json = WPS_PROTOCOL_JSON,
  protobuf_reliable = WPS_PROTOCOL_PROTOBUF_RELIABLE,
  protobuf = WPS_PROTOCOL_PROTOBUF,
};

enum class RetryMode : std::uint32_t {
  fixed = WPS_RETRY_FIXED,
  exponential = WPS_RETRY_EXPONENTIAL,
};

enum class DispatchMode : std::uint32_t {
  thread = WPS_DISPATCH_THREAD,  ///< handlers run on the library's dispatcher threads
  poll = WPS_DISPATCH_POLL,      ///< handlers run inside Client::dispatch() on the caller's thread
};

// ---------------------------------------------------------------------------------------
// Payloads and results

/// A borrowed payload: the bytes must stay valid for the duration of the call only.
struct Payload {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
  DataType type = DataType::text;

  static Payload text(std::string_view s) noexcept { return {bytes_of(s), s.size(), DataType::text}; }
  static Payload json(std::string_view s) noexcept { return {bytes_of(s), s.size(), DataType::json}; }
  static Payload binary(const void* p, std::size_t n) noexcept {
    return {static_cast<const std::uint8_t*>(p), n, DataType::binary};
  }
  static Payload binary(const std::vector<std::uint8_t>& v) noexcept {
    return {v.data(), v.size(), DataType::binary};
  }

 private:
  static const std::uint8_t* bytes_of(std::string_view s) noexcept {
    return reinterpret_cast<const std::uint8_t*>(s.data());
  }
};

/// Options of one send.
struct SendOptions {
  std::uint64_t ack_id = 0;      ///< 0 = allocate a new id; non-zero = retry an earlier one
  bool no_echo = false;          ///< do not deliver a group message back to this connection
  bool fire_and_forget = false;  ///< no ack on the wire; completes once queued for writing
  std::uint32_t flags() const noexcept {
    return (no_echo ? WPS_SEND_NO_ECHO : 0u) | (fire_and_forget ? WPS_SEND_FIRE_AND_FORGET : 0u);
  }
};

/// The outcome of an operation. Blocking calls return it on success; futures carry it.
/// With exceptions enabled a failed future throws wps::Error from get(); without them the
/// future holds an Ack whose `error` is set (and `error_name`/`message` describe it).
struct Ack {
  std::uint64_t ack_id = 0;    ///< the ack id used (0 for fire-and-forget, start, stop, invoke)
  bool duplicated = false;     ///< the service had already seen this ack id (still a success)
  std::error_code error;       ///< empty on success
  std::string error_name;      ///< service error name on an ack error
  std::string message;         ///< detail text on failure
  DataType data_type = DataType::text;  ///< invoke_event: type of the response
  std::string data;                     ///< invoke_event: the response payload
  explicit operator bool() const noexcept { return !error; }
};

// ---------------------------------------------------------------------------------------
// Events

struct Event;

/// A borrowed view of a wps_event: valid only until the handler returns.
class EventView {
 public:
  explicit EventView(const wps_event& e) noexcept : e_(&e) {}

  EventType type() const noexcept { return static_cast<EventType>(e_->type); }
  std::optional<std::string_view> connection_id() const noexcept { return opt(e_->connection_id); }
  std::optional<std::string_view> user_id() const noexcept { return opt(e_->user_id); }
  std::optional<std::string_view> group() const noexcept { return opt(e_->group); }
  std::optional<std::string_view> from_user_id() const noexcept { return opt(e_->from_user_id); }
  std::optional<std::string_view> message() const noexcept { return opt(e_->message); }
  std::optional<std::string_view> error_name() const noexcept { return opt(e_->error_name); }
  DataType data_type() const noexcept { return static_cast<DataType>(e_->data_type); }
  const std::uint8_t* data() const noexcept { return e_->data; }
  std::size_t size() const noexcept { return e_->data ? e_->data_len : 0; }
  /// The payload as characters (text and JSON payloads are UTF-8).
  std::string_view text() const noexcept {
    return e_->data ? std::string_view(reinterpret_cast<const char*>(e_->data), e_->data_len)
                    : std::string_view();
  }
  std::uint64_t sequence_id() const noexcept { return e_->sequence_id; }

  // Fields appended after error_name: read only when the library's struct has them.
  std::uint64_t ack_id() const noexcept { return has(offsetof(wps_event, ack_id), sizeof e_->ack_id) ? e_->ack_id : 0; }
  void* op_context() const noexcept {
    return has(offsetof(wps_event, op_context), sizeof e_->op_context) ? e_->op_context : nullptr;
  }
  int32_t result() const noexcept { return has(offsetof(wps_event, result), sizeof e_->result) ? e_->result : WPS_OK; }
  bool is_duplicate() const noexcept {
    return has(offsetof(wps_event, is_duplicate), sizeof e_->is_duplicate) && e_->is_duplicate != 0;
  }
  /// ACK: which operation completed (WPS_OP_*), 0 otherwise.
  std::uint32_t op() const noexcept { return has(offsetof(wps_event, op), sizeof e_->op) ? e_->op : 0; }
  /// STREAM: the stream id.
  std::optional<std::string_view> stream_id() const noexcept {
    return has(offsetof(wps_event, stream_id), sizeof e_->stream_id) ? opt(e_->stream_id) : std::nullopt;
  }
  /// STREAM: the fragment's id in the stream (1, 2, ...); on the last frame, the next id.
  std::uint64_t stream_sequence_id() const noexcept {
    return has(offsetof(wps_event, stream_sequence_id), sizeof e_->stream_sequence_id) ? e_->stream_sequence_id : 0;
  }
  /// STREAM: true on the stream's last frame (error_name() set when the stream failed).
  bool end_of_stream() const noexcept {
    return has(offsetof(wps_event, end_of_stream), sizeof e_->end_of_stream) && e_->end_of_stream != 0;
  }
  /// STREAM: the publisher's own error code of a UserError last frame.
  std::optional<std::string_view> user_error_code() const noexcept {
    return has(offsetof(wps_event, user_error_code), sizeof e_->user_error_code) ? opt(e_->user_error_code)
                                                                                    : std::nullopt;
  }
  /// GROUP_STATE: true for a snapshot, false for an update.
  bool is_snapshot() const noexcept {
    return has(offsetof(wps_event, is_snapshot), sizeof e_->is_snapshot) && e_->is_snapshot != 0;
  }

  const wps_event& raw() const noexcept { return *e_; }
  inline Event to_owned() const;

 private:
  static std::optional<std::string_view> opt(const char* s) noexcept {
    return s ? std::optional<std::string_view>(s) : std::nullopt;
  }
  bool has(std::size_t offset, std::size_t size) const noexcept { return e_->struct_size >= offset + size; }
  const wps_event* e_;
};

/// An owning copy of an event, for queues and other threads.
struct Event {
  EventType type = EventType::connected;
  std::optional<std::string> connection_id, user_id, group, from_user_id, message, error_name;
  DataType data_type = DataType::text;
  std::string data;
  std::uint64_t sequence_id = 0;
  std::uint64_t ack_id = 0;
  int32_t result = WPS_OK;
  bool is_duplicate = false;
  std::optional<std::string> stream_id, user_error_code;
  std::uint64_t stream_sequence_id = 0;
  bool end_of_stream = false;
  bool is_snapshot = false;
};

inline Event EventView::to_owned() const {
  auto own = [](std::optional<std::string_view> v) {
    return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
  };
  Event ev;
  ev.type = type();
  ev.connection_id = own(connection_id());
  ev.user_id = own(user_id());
  ev.group = own(group());
  ev.from_user_id = own(from_user_id());
  ev.message = own(message());
  ev.error_name = own(error_name());
  ev.data_type = data_type();
  ev.data.assign(text());
  ev.sequence_id = sequence_id();
  ev.ack_id = ack_id();
  ev.result = result();
  ev.is_duplicate = is_duplicate();
  ev.stream_id = own(stream_id());
  ev.user_error_code = own(user_error_code());
  ev.stream_sequence_id = stream_sequence_id();
  ev.end_of_stream = end_of_stream();
  ev.is_snapshot = is_snapshot();
  return ev;
}

using Handler = std::function<void(const EventView&)>;
using HandlerErrorHook = std::function<void(std::exception_ptr)>;
/// Returns a fresh client access URL; called for every new connection (start, reconnect) on a
/// library thread that may block, never concurrently for one client. An empty string or an
/// exception fails that connection attempt (the exception goes to the handler-error hook).
using UrlProvider = std::function<std::string()>;

// ---------------------------------------------------------------------------------------
// Internals

namespace detail {

/// Copies the thread-local detail of the failed call that returned `r` (call right away).
inline Failure capture(int32_t r, const char* function, std::uint64_t ack_id = 0) {
  Failure f;
  f.result = r;
  f.ack_id = ack_id;
  f.function = function;
  if (const char* m = wps_last_error_message()) f.message = m;
  if (const char* n = wps_last_error_name()) f.error_name = n;
  return f;
}

inline void set_error(std::error_code* ec, const Failure& f) noexcept {
  if (ec) *ec = make_error_code(f.result);
}

/// State shared by a Client and every handler it registered.
class Shared {
 public:
  void set_hook(HandlerErrorHook hook) {
    auto next = std::make_shared<const HandlerErrorHook>(std::move(hook));
    std::lock_guard<std::mutex> lock(mu_);
    hook_ = std::move(next);
  }
  std::size_t errors() const noexcept { return errors_.load(std::memory_order_relaxed); }
  std::exception_ptr take_last() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(last_, nullptr);
  }
  /// Records an exception from a handler and runs the hook with no lock held.
  void report(std::exception_ptr e) noexcept {
    errors_.fetch_add(1, std::memory_order_relaxed);
    std::shared_ptr<const HandlerErrorHook> hook;
    {
      std::lock_guard<std::mutex> lock(mu_);
      last_ = e;
      hook = hook_;
    }
    if (hook && *hook) {
#if WPS_CPP_EXCEPTIONS
      try {
        (*hook)(e);
      } catch (...) {
        // The hook itself threw: nothing may unwind into the C library.
      }
#else
      (*hook)(e);
#endif
    }
  }

 private:
  std::mutex mu_;
  std::shared_ptr<const HandlerErrorHook> hook_;
  std::exception_ptr last_;
  std::atomic<std::size_t> errors_{0};
};

struct HandlerState {
  Handler fn;
  std::shared_ptr<Shared> shared;
};

inline void handler_trampoline(void* user_data, const wps_event* ev) noexcept {
  auto* st = static_cast<HandlerState*>(user_data);
  if (st == nullptr || ev == nullptr || !st->fn) return;
#if WPS_CPP_EXCEPTIONS
  try {
    st->fn(EventView(*ev));
  } catch (...) {
    st->shared->report(std::current_exception());
  }
#else
  st->fn(EventView(*ev));
#endif
}

inline void handler_free(void* user_data) noexcept { delete static_cast<HandlerState*>(user_data); }

struct ProviderState {
  UrlProvider fn;
  std::string pending;  // a URL that did not fit the library's buffer, handed out on the retry
  std::shared_ptr<Shared> shared;
};

inline wps_result provider_trampoline(void* user_data, char* buf, std::size_t cap, std::size_t* out_len) noexcept {
  auto* st = static_cast<ProviderState*>(user_data);
  if (st == nullptr || !st->fn) return WPS_ERR_URL_PROVIDER;
#if WPS_CPP_EXCEPTIONS
  try {
#endif
    if (st->pending.empty()) st->pending = st->fn();
#if WPS_CPP_EXCEPTIONS
  } catch (...) {
    st->shared->report(std::current_exception());
    return WPS_ERR_URL_PROVIDER;
  }
#endif
  if (st->pending.empty()) return WPS_ERR_URL_PROVIDER;
  const std::size_t needed = st->pending.size() + 1;
  if (out_len != nullptr) *out_len = needed;
  if (buf == nullptr || cap < needed) return WPS_ERR_BUFFER_TOO_SMALL;
  std::memcpy(buf, st->pending.data(), st->pending.size());
  buf[st->pending.size()] = '\0';
  st->pending.clear();
  return WPS_OK;
}

inline void provider_free(void* user_data) noexcept { delete static_cast<ProviderState*>(user_data); }

struct OpState {
  std::promise<Ack> promise;
};

inline void fulfil(std::promise<Ack>& p, Ack ack, const char* function) noexcept {
#if WPS_CPP_EXCEPTIONS
  try {
    if (!ack.error) {
      p.set_value(std::move(ack));
    } else {
      Failure f;
      f.result = static_cast<int32_t>(ack.error.value());
      f.ack_id = ack.ack_id;
      f.error_name = std::move(ack.error_name);
      f.message = std::move(ack.message);
      f.function = function;
      p.set_exception(std::make_exception_ptr(Error(std::move(f))));
    }
  } catch (...) {
    // Allocation failure or an already satisfied promise: nothing may reach the C library.
  }
#else
  (void)function;
  p.set_value(std::move(ack));
#endif
}

/// The name an asynchronous operation reports failures under.
inline const char* op_name(uint32_t op) noexcept {
  switch (op) {
    case WPS_OP_START: return "start";
    case WPS_OP_STOP: return "stop";
    case WPS_OP_JOIN_GROUP: return "join_group";
    case WPS_OP_LEAVE_GROUP: return "leave_group";
    case WPS_OP_SEND_TO_GROUP: return "send_to_group";
    case WPS_OP_SEND_EVENT: return "send_event";
    case WPS_OP_INVOKE_EVENT: return "invoke_event";
    default: return "operation";
  }
}

inline void completion_trampoline(void* op_context, const wps_event* ev) noexcept {
  std::unique_ptr<OpState> st(static_cast<OpState*>(op_context));
  if (!st) return;
  const char* function = "operation";
  Ack ack;
  if (ev != nullptr) {
    EventView v(*ev);
    function = op_name(v.op());
    ack.ack_id = v.ack_id();
    ack.duplicated = v.is_duplicate();
    ack.error = make_error_code(v.result());
    if (!ack.error && v.data() != nullptr) {
#if WPS_CPP_EXCEPTIONS
      try {
#endif
        ack.data_type = v.data_type();
        ack.data.assign(v.text());
#if WPS_CPP_EXCEPTIONS
      } catch (...) {
        ack.error = make_error_code(WPS_ERR_INTERNAL);
      }
#endif
    }
    if (ack.error) {
#if WPS_CPP_EXCEPTIONS
      try {
#endif
        if (auto n = v.error_name()) ack.error_name.assign(n->data(), n->size());
        if (auto m = v.message()) ack.message.assign(m->data(), m->size());
#if WPS_CPP_EXCEPTIONS
      } catch (...) {
      }
#endif
    }
  } else {
    ack.error = make_error_code(WPS_ERR_INTERNAL);
  }
  fulfil(st->promise, std::move(ack), function);
}

/// A future that is already complete with a synchronous failure.
inline std::future<Ack> failed_future(const Failure& f) {
  std::promise<Ack> p;
  Ack ack;
  ack.ack_id = f.ack_id;
  ack.error = make_error_code(f.result);
  ack.error_name = f.error_name;
  ack.message = f.message;
  auto fut = p.get_future();
  fulfil(p, std::move(ack), f.function.c_str());
  return fut;
}

inline uint32_t to_ms(std::chrono::milliseconds t) noexcept {
  if (t.count() <= 0) return 0;
  if (t.count() >= static_cast<long long>(UINT32_MAX)) return UINT32_MAX;
  return static_cast<uint32_t>(t.count());
}

}  // namespace detail

// ---------------------------------------------------------------------------------------
// Options

/// Owning wrapper over the wps_options builder. Setters chain and never throw: the first
/// failing setter is remembered in error() and makes Client construction fail with it.
class Options {
 public:
#if WPS_CPP_EXCEPTIONS
  Options() {
    std::error_code ec;
    init(ec);
    if (ec) throw Error(failure_);
  }
#endif
  explicit Options(std::error_code& ec) { init(ec); }

  Options& protocol(Protocol p) { return apply(wps_options_set_protocol(get(), static_cast<uint32_t>(p)), "wps_options_set_protocol"); }
  Options& auto_reconnect(bool on) { return apply(wps_options_set_auto_reconnect(get(), on ? 1u : 0u), "wps_options_set_auto_reconnect"); }
  Options& auto_rejoin_groups(bool on) {
    return apply(wps_options_set_auto_rejoin_groups(get(), on ? 1u : 0u), "wps_options_set_auto_rejoin_groups");
  }
  Options& ack_timeout(std::chrono::milliseconds t) {
    return apply(wps_options_set_ack_timeout_ms(get(), detail::to_ms(t)), "wps_options_set_ack_timeout_ms");
  }
  Options& dispatch_mode(DispatchMode m) {
    return apply(wps_options_set_dispatch_mode(get(), static_cast<uint32_t>(m)), "wps_options_set_dispatch_mode");
  }
  /// Retries of join/leave/send with the same ack id (default 3, exponential, 800 ms, 120 s).
  Options& message_retry(std::uint32_t max_retries, RetryMode mode, std::chrono::milliseconds delay,
                         std::chrono::milliseconds max_delay) {
    return apply(wps_options_set_message_retry(get(), max_retries, static_cast<uint32_t>(mode), detail::to_ms(delay),
                                               detail::to_ms(max_delay)),
                 "wps_options_set_message_retry");
  }
  /// Retries of new connections after a loss (default unlimited, exponential, 1 s, 30 s);
  /// `max_retries` = WPS_RETRY_UNLIMITED never gives up.
  Options& reconnect_retry(std::uint32_t max_retries, RetryMode mode, std::chrono::milliseconds delay,
                           std::chrono::milliseconds max_delay) {
    return apply(wps_options_set_reconnect_retry(get(), max_retries, static_cast<uint32_t>(mode),
                                                 detail::to_ms(delay), detail::to_ms(max_delay)),
                 "wps_options_set_reconnect_retry");
  }
  Options& recovery_timeout(std::chrono::milliseconds t) {
    return apply(wps_options_set_recovery_timeout_ms(get(), detail::to_ms(t)), "wps_options_set_recovery_timeout_ms");
  }
  /// Published streams: unacknowledged bytes per stream before a write waits (default 1 MiB).
  Options& stream_buffer(std::size_t max_unacked_bytes) {
    return apply(wps_options_set_stream_buffer(get(), max_unacked_bytes), "wps_options_set_stream_buffer");
  }
  /// Received streams: from_start_only ignores a stream first seen mid-way; idle_timeout
  /// (0 = 300 s) ends a silent stream with IdleTimeout; max_streams (0 = 4096) received at once.
  Options& stream_receive(bool from_start_only, std::chrono::milliseconds idle_timeout = std::chrono::milliseconds(0),
                          std::size_t max_streams = 0) {
    return apply(wps_options_set_stream_receive(get(), from_start_only ? WPS_STREAM_FROM_START_ONLY : 0u,
                                                detail::to_ms(idle_timeout), max_streams),
                 "wps_options_set_stream_receive");
  }
  Options& keep_alive(std::chrono::milliseconds interval, std::chrono::milliseconds timeout) {
    return apply(wps_options_set_keep_alive(get(), detail::to_ms(interval), detail::to_ms(timeout)),
                 "wps_options_set_keep_alive");
  }
  Options& connect_timeout(std::chrono::milliseconds t) {
    return apply(wps_options_set_connect_timeout_ms(get(), detail::to_ms(t)), "wps_options_set_connect_timeout_ms");
  }
  Options& shutdown_timeout(std::chrono::milliseconds t) {
    return apply(wps_options_set_shutdown_timeout_ms(get(), detail::to_ms(t)), "wps_options_set_shutdown_timeout_ms");
  }
  /// Largest message this client sends (default 1 MiB, the service's limit).
  Options& max_message_size(std::size_t bytes) {
    return apply(wps_options_set_max_message_size(get(), bytes), "wps_options_set_max_message_size");
  }
  /// Largest message accepted from the service (default 2 MiB); a larger one ends the session.
  Options& max_inbound_message_size(std::size_t bytes) {
    return apply(wps_options_set_max_inbound_message_size(get(), bytes),
                 "wps_options_set_max_inbound_message_size");
  }
  /// Application name and version sent in front of the library's own User-Agent.
  Options& user_agent(const std::string& app) {
    return apply(wps_options_set_user_agent(get(), app.c_str()), "wps_options_set_user_agent");
  }
  /// WebSocket read and write buffer sizes per connection (smaller saves memory per client).
  Options& socket_buffers(std::size_t read_bytes, std::size_t write_bytes) {
    return apply(wps_options_set_socket_buffers(get(), read_bytes, write_bytes), "wps_options_set_socket_buffers");
  }
  Options& sequence_ack_interval(std::chrono::milliseconds t) {
    return apply(wps_options_set_sequence_ack_interval_ms(get(), detail::to_ms(t)),
                 "wps_options_set_sequence_ack_interval_ms");
  }
  /// Up to `frames` fire-and-forget sends may wait to be written (0 = each send waits).
  Options& fire_and_forget_buffer(std::uint32_t frames) {
    return apply(wps_options_set_fire_and_forget_buffer(get(), frames), "wps_options_set_fire_and_forget_buffer");
  }
  /// Offline queue: acked operations made while not connected (before start, while
  /// recovering or reconnecting) wait in order, at most `max_messages` of them and `max_bytes`
  /// payload bytes (0: no byte limit), and go out once connected. Full: *_async calls fail at
  /// once with WPS_ERR_QUEUE_FULL, blocking calls wait for room up to the ack timeout.
  /// max_messages 0 (default) turns it off.
  /// Bound on received messages not yet handled (default 10,000 messages, 32 MiB); at the
  /// bound the client stops reading its socket until handlers catch up (never drops, never
  /// grows without bound).
  Options& event_queue_limit(std::size_t max_messages, std::size_t max_bytes) {
    return apply(wps_options_set_event_queue_limit(get(), max_messages, max_bytes),
                 "wps_options_set_event_queue_limit");
  }
  Options& offline_queue(std::size_t max_messages, std::size_t max_bytes = 0) {
    return apply(wps_options_set_offline_queue(get(), max_messages, max_bytes), "wps_options_set_offline_queue");
  }
  /// Proxy "SCHEME://[user:password@]host[:port]": http:// (CONNECT), https:// (CONNECT over
  /// TLS to the proxy), socks5:// (names resolved here) or socks5h:// (names resolved by the
  /// proxy); "" connects directly. Without this call the proxy comes from HTTPS_PROXY /
  /// HTTP_PROXY / ALL_PROXY and NO_PROXY (upper or lower case).
  Options& proxy(const std::string& url) {
    return apply(wps_options_set_proxy(get(), url.c_str()), "wps_options_set_proxy");
  }
  /// TLS client certificate (PEM chain) and key for mutual TLS; the files are read and
  /// checked now (a missing or malformed file records WPS_ERR_INVALID_ARG).
  Options& client_cert(const std::string& cert_pem_file, const std::string& key_pem_file) {
    return apply(wps_options_set_client_cert(get(), cert_pem_file.c_str(), key_pem_file.c_str()),
                 "wps_options_set_client_cert");
  }
  /// Reconnect jitter in percent (0..100, default 0): each reconnect delay d becomes a random
  /// value in [d * (1 - percent/100), d].
  Options& reconnect_jitter(std::uint32_t percent) {
    return apply(wps_options_set_reconnect_jitter(get(), percent), "wps_options_set_reconnect_jitter");
  }
  /// How long one URL provider call may take (default 10 s); a late call fails that attempt
  /// with WPS_ERR_URL_PROVIDER.
  Options& url_provider_timeout(std::chrono::milliseconds t) {
    return apply(wps_options_set_url_provider_timeout_ms(get(), detail::to_ms(t)),
                 "wps_options_set_url_provider_timeout_ms");
  }
  /// Extra PEM trust roots for wss://, added to the system store.
  Options& ca_file(const std::string& path) {
    return apply(wps_options_set_ca_file(get(), path.c_str()), "wps_options_set_ca_file");
  }

  /// The first failure of construction or of a setter (empty if none).
  std::error_code error() const noexcept { return make_error_code(failure_.result); }
  const Failure& failure() const noexcept { return failure_; }
  wps_options* get() const noexcept { return h_.get(); }

 private:
  struct Deleter {
    void operator()(wps_options* o) const noexcept { wps_options_free(o); }
  };
  void init(std::error_code& ec) {
    wps_options* raw = nullptr;
    int32_t r = wps_options_new(&raw);
    if (r != WPS_OK) {
      failure_ = detail::capture(r, "wps_options_new");
    } else {
      h_.reset(raw);
    }
    ec = make_error_code(r);
  }
  Options& apply(int32_t r, const char* function) {
    if (r != WPS_OK && failure_.result == WPS_OK) failure_ = detail::capture(r, function);
    return *this;
  }
  std::unique_ptr<wps_options, Deleter> h_;
  Failure failure_;
};

// ---------------------------------------------------------------------------------------
// Group streams: publisher

/// How to open a published group stream (Client::open_stream).
struct StreamOpenOptions {
  std::string stream_id;                    ///< empty = a new UUID
  bool no_echo = false;                     ///< do not deliver the stream back to this connection
  std::chrono::milliseconds idle_timeout{0};  ///< asked of the service; 0 = its default (300 s)
  std::chrono::milliseconds timeout{0};     ///< wait for the service's answer; 0 = the ack timeout
};

/// A group stream this client publishes (RAII over wps_stream). Move-only. write() sends
/// fragments in call order and waits only while the stream's unacknowledged bytes exceed the
/// stream buffer; end() and abort() return once the service confirmed. Destroying (or close())
/// an open stream aborts it: subscribers get UserError. Failures after the stream is over
/// carry WPS_ERR_STREAM_CLOSED and the reason as error_name ("Ended", "IdleTimeout",
/// "ConnectionLost", "Stopped", ...).
class Stream {
 public:
  Stream() noexcept = default;

  explicit operator bool() const noexcept { return h_ != nullptr; }
  wps_stream* handle() const noexcept { return h_.get(); }
  /// The stream id ("" for an empty Stream).
  std::string_view id() const noexcept {
    const char* s = h_ ? wps_stream_get_id(h_.get()) : nullptr;
    return s ? std::string_view(s) : std::string_view();
  }

#if WPS_CPP_EXCEPTIONS
  void write(const Payload& p, std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
    throw_if(write_impl(p, timeout));
  }
  void end(std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) { throw_if(end_impl(timeout)); }
  /// Ends the stream with UserError, `message` and `user_error_code` (empty = none).
  void abort(const std::string& message = {}, const std::string& user_error_code = {},
             std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
    throw_if(abort_impl(message, user_error_code, timeout));
  }
#endif
  void write(const Payload& p, std::chrono::milliseconds timeout, std::error_code& ec) {
    ec = to_ec(write_impl(p, timeout));
  }
  void end(std::chrono::milliseconds timeout, std::error_code& ec) { ec = to_ec(end_impl(timeout)); }
  void abort(const std::string& message, const std::string& user_error_code, std::chrono::milliseconds timeout,
             std::error_code& ec) {
    ec = to_ec(abort_impl(message, user_error_code, timeout));
  }
  /// The reason of the last failure of this object's calls on this thread (error_name etc.).
  const Failure& last_failure() const noexcept { return last_; }

  /// Releases the handle now (aborting the stream if it is still open).
  void close() noexcept { h_.reset(); }

 private:
  friend class Client;
  struct Deleter {
    void operator()(wps_stream* s) const noexcept { wps_stream_free(s); }
  };
  explicit Stream(wps_stream* raw) noexcept : h_(raw) {}

  std::optional<Failure> done(int32_t r, const char* function) {
    if (r == WPS_OK) return std::nullopt;
    last_ = detail::capture(r, function);
    return last_;
  }
  std::optional<Failure> write_impl(const Payload& p, std::chrono::milliseconds timeout) {
    return done(wps_stream_write(h_.get(), p.data, p.size, static_cast<uint32_t>(p.type), detail::to_ms(timeout)),
                "wps_stream_write");
  }
  std::optional<Failure> end_impl(std::chrono::milliseconds timeout) {
    return done(wps_stream_end(h_.get(), detail::to_ms(timeout)), "wps_stream_end");
  }
  std::optional<Failure> abort_impl(const std::string& message, const std::string& code,
                                    std::chrono::milliseconds timeout) {
    return done(wps_stream_abort(h_.get(), message.empty() ? nullptr : message.c_str(),
                                 code.empty() ? nullptr : code.c_str(), detail::to_ms(timeout)),
                "wps_stream_abort");
  }
  static std::error_code to_ec(const std::optional<Failure>& f) noexcept {
    return f ? make_error_code(f->result) : std::error_code();
  }
#if WPS_CPP_EXCEPTIONS
  static void throw_if(std::optional<Failure> f) {
    if (f) throw Error(std::move(*f));
  }
#endif

  std::unique_ptr<wps_stream, Deleter> h_;
  Failure last_;
};

// ---------------------------------------------------------------------------------------
// Client

class Client {
 public:
  /// An empty client (no handle); every operation on it fails with WPS_ERR_NULL_ARG.
  Client() noexcept = default;

#if WPS_CPP_EXCEPTIONS
  /// Creates a client for a client access URL (ws:// or wss://). Does not connect.
  explicit Client(const std::string& url) { throw_if(create(url, nullptr)); }
  Client(const std::string& url, const Options& opts) { throw_if(create(url, &opts)); }
#endif
  Client(const std::string& url, std::error_code& ec) { ec = to_ec(create(url, nullptr)); }
  Client(const std::string& url, const Options& opts, std::error_code& ec) { ec = to_ec(create(url, &opts)); }

  /// A client whose URL comes from `provider` for every new connection (start, reconnect),
  /// e.g. to fetch a fresh access token. The library frees the provider after its last call.
#if WPS_CPP_EXCEPTIONS
  static Client with_url_provider(UrlProvider provider) {
    Client c;
    throw_if(c.create_with_provider(std::move(provider), nullptr));
    return c;
  }
  static Client with_url_provider(UrlProvider provider, const Options& opts) {
    Client c;
    throw_if(c.create_with_provider(std::move(provider), &opts));
    return c;
  }
#endif
  static Client with_url_provider(UrlProvider provider, const Options& opts, std::error_code& ec) {
    Client c;
    ec = to_ec(c.create_with_provider(std::move(provider), &opts));
    return c;
  }
  static Client with_url_provider(UrlProvider provider, std::error_code& ec) {
    Client c;
    ec = to_ec(c.create_with_provider(std::move(provider), nullptr));
    return c;
  }

  Client(Client&&) noexcept = default;
  /// Frees the client this object owned (as destruction does), then takes over `other`'s.
  Client& operator=(Client&& other) noexcept {
    if (this != &other) {
      h_.reset();
      shared_ = std::move(other.shared_);
      h_ = std::move(other.h_);
    }
    return *this;
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  /// Frees the handle: stops the client if needed, waits for a running handler (unless
  /// called from inside one of this client's handlers, where freeing is deferred).
  ~Client() = default;

  /// True when this object owns a handle.
  explicit operator bool() const noexcept { return h_ != nullptr; }
  wps_client* handle() const noexcept { return h_.get(); }
  /// Frees the handle now (same as destruction); the object becomes empty.
  void close() noexcept {
    h_.reset();
    shared_.reset();
  }

  // -- handlers ------------------------------------------------------------------------

#if WPS_CPP_EXCEPTIONS
  /// Sets (or replaces) the handler of one event type; an empty handler removes it.
  /// Registrations survive reconnects and stop/start.
  void on(EventType type, Handler h) { throw_if(set_handler(type, std::move(h))); }
  void on_connected(Handler h) { on(EventType::connected, std::move(h)); }
  void on_disconnected(Handler h) { on(EventType::disconnected, std::move(h)); }
  void on_stopped(Handler h) { on(EventType::stopped, std::move(h)); }
  void on_server_message(Handler h) { on(EventType::server_message, std::move(h)); }
  void on_group_message(Handler h) { on(EventType::group_message, std::move(h)); }
  void on_rejoin_group_failed(Handler h) { on(EventType::rejoin_group_failed, std::move(h)); }
  /// A reliable connection dropped and recovery starts (once per episode); connection_id().
  void on_recovering(Handler h) { on(EventType::recovering, std::move(h)); }
  /// Recovery succeeded (no second connected event follows); connection_id().
  void on_recovered(Handler h) { on(EventType::recovered, std::move(h)); }
  /// A reliable session ended without recovery, before its disconnected event:
  /// connection_id(), sequence_id() (the last one received), message() (why).
  void on_session_lost(Handler h) { on(EventType::session_lost, std::move(h)); }
  /// One frame of a received group stream (see StreamReaders for a per-stream reader).
  void on_stream(Handler h) { on(EventType::stream, std::move(h)); }
  /// A group-state snapshot or update (see GroupStateView for the merged view).
  void on_group_state(Handler h) { on(EventType::group_state, std::move(h)); }
#endif
  void on(EventType type, Handler h, std::error_code& ec) { ec = to_ec(set_handler(type, std::move(h))); }

  /// Called (on the handler's thread, no lock held) with every exception a handler throws.
  void set_handler_error_hook(HandlerErrorHook hook) {
    if (shared_) shared_->set_hook(std::move(hook));
  }
  /// How many exceptions handlers of this client have thrown (and the wrapper contained).
  std::size_t handler_error_count() const noexcept { return shared_ ? shared_->errors() : 0; }
  /// The most recent handler exception (then cleared), or nullptr.
  std::exception_ptr take_handler_error() { return shared_ ? shared_->take_last() : nullptr; }

  // -- lifecycle -----------------------------------------------------------------------

#if WPS_CPP_EXCEPTIONS
  /// Connects; blocks until connected, failed, or the timeout (0 = library default).
  void start(std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
    throw_if(check(wps_client_start(h_.get(), detail::to_ms(timeout)), "wps_client_start"));
  }
  /// Stops: pending operations complete with WPS_ERR_CANCELLED; the stopped event follows.
  void stop(std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
    throw_if(check(wps_client_stop(h_.get(), detail::to_ms(timeout)), "wps_client_stop"));
  }
#endif
  void start(std::chrono::milliseconds timeout, std::error_code& ec) {
    ec = to_ec(check(wps_client_start(h_.get(), detail::to_ms(timeout)), "wps_client_start"));
  }
  void stop(std::chrono::milliseconds timeout, std::error_code& ec) {
    ec = to_ec(check(wps_client_stop(h_.get(), detail::to_ms(timeout)), "wps_client_stop"));
  }
  std::future<Ack> start_async(std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
    return launch("wps_client_start_async", [&](wps_event_fn fn, void* ctx, std::uint64_t*) {
      return wps_client_start_async(h_.get(), detail::to_ms(timeout), fn, ctx);
    });
  }
  std::future<Ack> stop_async() {
    return launch("wps_client_stop_async", [&](wps_event_fn fn, void* ctx, std::uint64_t*) {
      return wps_client_stop_async(h_.get(), fn, ctx);
    });
  }

  // -- operations (blocking: wait for the service's ack or the ack timeout) ---------------

#if WPS_CPP_EXCEPTIONS
  Ack join_group(const std::string& group, std::uint64_t ack_id = 0) { return value_or_throw(join_group_impl(group, ack_id)); }
  Ack leave_group(const std::string& group, std::uint64_t ack_id = 0) { return value_or_throw(leave_group_impl(group, ack_id)); }
  Ack send_to_group(const std::string& group, const Payload& p, const SendOptions& o = {}) {
    return value_or_throw(send_to_group_impl(group, p, o));
  }
  Ack send_event(const std::string& event_name, const Payload& p, const SendOptions& o = {}) {
    return value_or_throw(send_event_impl(event_name, p, o));
  }
#endif
  Ack join_group(const std::string& group, std::uint64_t ack_id, std::error_code& ec) {
    return value_or_code(join_group_impl(group, ack_id), ec);
  }
  Ack leave_group(const std::string& group, std::uint64_t ack_id, std::error_code& ec) {
    return value_or_code(leave_group_impl(group, ack_id), ec);
  }
  Ack send_to_group(const std::string& group, const Payload& p, const SendOptions& o, std::error_code& ec) {
    return value_or_code(send_to_group_impl(group, p, o), ec);
  }
  Ack send_event(const std::string& event_name, const Payload& p, const SendOptions& o, std::error_code& ec) {
    return value_or_code(send_event_impl(event_name, p, o), ec);
  }

  // -- operations (async: the future completes exactly once) --------------------------------

  std::future<Ack> join_group_async(const std::string& group, std::uint64_t ack_id = 0) {
    return launch("wps_join_group_async", [&](wps_event_fn fn, void* ctx, std::uint64_t* out) {
      return wps_join_group_async(h_.get(), group.c_str(), ack_id, fn, ctx, out);
    });
  }
  std::future<Ack> leave_group_async(const std::string& group, std::uint64_t ack_id = 0) {
    return launch("wps_leave_group_async", [&](wps_event_fn fn, void* ctx, std::uint64_t* out) {
      return wps_leave_group_async(h_.get(), group.c_str(), ack_id, fn, ctx, out);
    });
  }
  std::future<Ack> send_to_group_async(const std::string& group, const Payload& p, const SendOptions& o = {}) {
    return launch("wps_send_to_group_async", [&](wps_event_fn fn, void* ctx, std::uint64_t* out) {
      return wps_send_to_group_async(h_.get(), group.c_str(), p.data, p.size, static_cast<uint32_t>(p.type),
                                     o.flags(), o.ack_id, fn, ctx, out);
    });
  }
  std::future<Ack> send_event_async(const std::string& event_name, const Payload& p, const SendOptions& o = {}) {
    return launch("wps_send_event_async", [&](wps_event_fn fn, void* ctx, std::uint64_t* out) {
      return wps_send_event_async(h_.get(), event_name.c_str(), p.data, p.size, static_cast<uint32_t>(p.type),
                                  o.flags(), o.ack_id, fn, ctx, out);
    });
  }

  /// Invokes an upstream event and waits for its response (timeout 0 = the ack timeout).
  /// The response is in the returned Ack's data_type and data.
#if WPS_CPP_EXCEPTIONS
  Ack invoke_event(const std::string& event_name, const Payload& p,
                   std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
    return value_or_throw(invoke_event_impl(event_name, p, timeout));
  }
#endif
  Ack invoke_event(const std::string& event_name, const Payload& p, std::chrono::milliseconds timeout,
                   std::error_code& ec) {
    return value_or_code(invoke_event_impl(event_name, p, timeout), ec);
  }
  std::future<Ack> invoke_event_async(const std::string& event_name, const Payload& p,
                                      std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
    return launch("wps_invoke_event_async", [&](wps_event_fn fn, void* ctx, std::uint64_t*) {
      return wps_invoke_event_async(h_.get(), event_name.c_str(), p.data, p.size, static_cast<uint32_t>(p.type),
                                    detail::to_ms(timeout), fn, ctx);
    });
  }

  // -- group streams and group state --------------------------------------------------------

#if WPS_CPP_EXCEPTIONS
  /// Opens a group stream; returns once the service accepted it (wps_stream_open).
  Stream open_stream(const std::string& group, const StreamOpenOptions& o = {}) {
    Stream s;
    throw_if(open_stream_impl(group, o, s));
    return s;
  }
  /// Sets this connection's state in `group` (joined before) to `state_json`, a JSON object
  /// of strings; blocks until the service acks.
  Ack set_group_state(const std::string& group, const std::string& state_json, std::uint64_t ack_id = 0) {
    return value_or_throw(group_state_impl(group, &state_json, ack_id));
  }
  Ack clear_group_state(const std::string& group, std::uint64_t ack_id = 0) {
    return value_or_throw(group_state_impl(group, nullptr, ack_id));
  }
  /// Subscribes to `group`'s state: a snapshot event follows, then updates; renewed on every
  /// new connection.
  Ack subscribe_group_state(const std::string& group, std::uint64_t ack_id = 0) {
    return value_or_throw(subscription_impl(group, ack_id, true));
  }
  Ack unsubscribe_group_state(const std::string& group, std::uint64_t ack_id = 0) {
    return value_or_throw(subscription_impl(group, ack_id, false));
  }
#endif
  Stream open_stream(const std::string& group, const StreamOpenOptions& o, std::error_code& ec) {
    Stream s;
    ec = to_ec(open_stream_impl(group, o, s));
    return s;
  }
  Ack set_group_state(const std::string& group, const std::string& state_json, std::uint64_t ack_id,
                      std::error_code& ec) {
    return value_or_code(group_state_impl(group, &state_json, ack_id), ec);
  }
  Ack clear_group_state(const std::string& group, std::uint64_t ack_id, std::error_code& ec) {
    return value_or_code(group_state_impl(group, nullptr, ack_id), ec);
  }
  Ack subscribe_group_state(const std::string& group, std::uint64_t ack_id, std::error_code& ec) {
    return value_or_code(subscription_impl(group, ack_id, true), ec);
  }
  Ack unsubscribe_group_state(const std::string& group, std::uint64_t ack_id, std::error_code& ec) {
    return value_or_code(subscription_impl(group, ack_id, false), ec);
  }
  /// `state_json` empty clears the state.
  std::future<Ack> set_group_state_async(const std::string& group, const std::string& state_json,
                                         std::uint64_t ack_id = 0) {
    return launch("wps_set_group_state_async", [&](wps_event_fn fn, void* ctx, std::uint64_t* out) {
      return wps_set_group_state_async(h_.get(), group.c_str(), state_json.empty() ? nullptr : state_json.c_str(),
                                       ack_id, fn, ctx, out);
    });
  }
  std::future<Ack> subscribe_group_state_async(const std::string& group, std::uint64_t ack_id = 0) {
    return launch("wps_subscribe_group_state_async", [&](wps_event_fn fn, void* ctx, std::uint64_t* out) {
      return wps_subscribe_group_state_async(h_.get(), group.c_str(), ack_id, fn, ctx, out);
    });
  }
  std::future<Ack> unsubscribe_group_state_async(const std::string& group, std::uint64_t ack_id = 0) {
    return launch("wps_unsubscribe_group_state_async", [&](wps_event_fn fn, void* ctx, std::uint64_t* out) {
      return wps_unsubscribe_group_state_async(h_.get(), group.c_str(), ack_id, fn, ctx, out);
    });
  }

  // -- state -------------------------------------------------------------------------------

  /// Whether the client has an established connection right now.
  bool is_connected() const noexcept { return wps_client_is_connected(h_.get()); }
  /// The client's counters and state (atomics in the library: no lock is taken). An empty
  /// client gives a Stats whose state is State::unknown.
  Stats stats() const noexcept {
    wps_stats raw{};
    raw.struct_size = static_cast<std::uint32_t>(sizeof raw);
    Stats out;
    if (wps_client_get_stats(h_.get(), &raw) != WPS_OK) return out;
    out.state = static_cast<State>(raw.state);
    out.messages_sent = raw.messages_sent;
    out.messages_received = raw.messages_received;
    out.bytes_sent = raw.bytes_sent;
    out.bytes_received = raw.bytes_received;
    out.acks_ok = raw.acks_ok;
    out.acks_failed = raw.acks_failed;
    out.retries = raw.retries;
    out.duplicates = raw.duplicates;
    out.connects = raw.connects;
    out.recoveries = raw.recoveries;
    out.session_losses = raw.session_losses;
    out.queued_messages = raw.queued_messages;
    out.queued_bytes = raw.queued_bytes;
    out.inflight_acks = raw.inflight_acks;
    out.last_ping_rtt_us = raw.last_ping_rtt_us;
    return out;
  }
#if WPS_CPP_EXCEPTIONS
  /// The current connection id (throws with WPS_ERR_NOT_CONNECTED when there is none).
  std::string connection_id() const {
    std::optional<Failure> f;
    std::string id = connection_id_impl(f);
    throw_if(std::move(f));
    return id;
  }
#endif
  std::string connection_id(std::error_code& ec) const {
    std::optional<Failure> f;
    std::string id = connection_id_impl(f);
    ec = to_ec(f);
    return id;
  }

  // -- POLL dispatch mode --------------------------------------------------------------------

  /// A descriptor that is readable while events are pending (POLL mode), else -1.
  int fd() const noexcept { return wps_client_get_fd(h_.get()); }
#if WPS_CPP_EXCEPTIONS
  /// Runs up to max_events pending handlers on this thread, waiting up to timeout for the
  /// first (0 = do not wait). Returns how many ran.
  std::uint32_t dispatch(std::uint32_t max_events = 64, std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) {
    std::uint32_t n = 0;
    throw_if(check(wps_client_dispatch(h_.get(), max_events, detail::to_ms(timeout), &n), "wps_client_dispatch"));
    return n;
  }
#endif
  std::uint32_t dispatch(std::uint32_t max_events, std::chrono::milliseconds timeout, std::error_code& ec) {
    std::uint32_t n = 0;
    ec = to_ec(check(wps_client_dispatch(h_.get(), max_events, detail::to_ms(timeout), &n), "wps_client_dispatch"));
    return n;
  }

 private:
  struct Deleter {
    void operator()(wps_client* c) const noexcept { wps_client_free(c); }
  };
  using Outcome = std::pair<Ack, std::optional<Failure>>;

  std::optional<Failure> create(const std::string& url, const Options* opts) {
    if (opts != nullptr && opts->error()) return opts->failure();
    wps_client* raw = nullptr;
    int32_t r = wps_client_new(url.c_str(), opts ? opts->get() : nullptr, &raw);
    if (r != WPS_OK) return detail::capture(r, "wps_client_new");
    h_.reset(raw);
    shared_ = std::make_shared<detail::Shared>();
    return std::nullopt;
  }

  std::optional<Failure> create_with_provider(UrlProvider provider, const Options* opts) {
    if (opts != nullptr && opts->error()) return opts->failure();
    auto shared = std::make_shared<detail::Shared>();
    auto st = std::make_unique<detail::ProviderState>();
    st->fn = std::move(provider);
    st->shared = shared;
    wps_client* raw = nullptr;
    int32_t r = wps_client_new_with_provider_ex(&detail::provider_trampoline, st.get(), &detail::provider_free,
                                                opts ? opts->get() : nullptr, &raw);
    if (r != WPS_OK) return detail::capture(r, "wps_client_new_with_provider_ex");  // st is still ours
    st.release();  // the library frees it through provider_free after the provider's last call
    shared_ = std::move(shared);
    h_.reset(raw);
    return std::nullopt;
  }

  std::optional<Failure> set_handler(EventType type, Handler h) {
    const auto t = static_cast<uint32_t>(type);
    if (!h) return check(wps_set_callback_ex(h_.get(), t, nullptr, nullptr, nullptr), "wps_set_callback_ex");
    auto st = std::make_unique<detail::HandlerState>();
    st->fn = std::move(h);
    st->shared = shared_ ? shared_ : std::make_shared<detail::Shared>();
    int32_t r = wps_set_callback_ex(h_.get(), t, &detail::handler_trampoline, st.get(), &detail::handler_free);
    if (r != WPS_OK) return detail::capture(r, "wps_set_callback_ex");  // st is still ours: freed here
    st.release();  // the library frees it through handler_free after its last invocation
    return std::nullopt;
  }

  static std::optional<Failure> check(int32_t r, const char* function) {
    if (r == WPS_OK) return std::nullopt;
    return detail::capture(r, function);
  }

  std::optional<Failure> open_stream_impl(const std::string& group, const StreamOpenOptions& o, Stream& out) {
    wps_stream* raw = nullptr;
    int32_t r = wps_stream_open(h_.get(), group.c_str(), o.stream_id.empty() ? nullptr : o.stream_id.c_str(),
                                o.no_echo ? WPS_SEND_NO_ECHO : 0u, detail::to_ms(o.idle_timeout),
                                detail::to_ms(o.timeout), &raw);
    if (r != WPS_OK) return detail::capture(r, "wps_stream_open");
    out = Stream(raw);
    return std::nullopt;
  }
  Outcome group_state_impl(const std::string& group, const std::string* state_json, std::uint64_t ack_id) {
    std::uint64_t out = 0;
    int32_t r = wps_set_group_state(h_.get(), group.c_str(), state_json ? state_json->c_str() : nullptr, ack_id, &out);
    return outcome(r, out, "wps_set_group_state");
  }
  Outcome subscription_impl(const std::string& group, std::uint64_t ack_id, bool subscribe) {
    std::uint64_t out = 0;
    int32_t r = subscribe ? wps_subscribe_group_state(h_.get(), group.c_str(), ack_id, &out)
                          : wps_unsubscribe_group_state(h_.get(), group.c_str(), ack_id, &out);
    return outcome(r, out, subscribe ? "wps_subscribe_group_state" : "wps_unsubscribe_group_state");
  }
  Outcome join_group_impl(const std::string& group, std::uint64_t ack_id) {
    std::uint64_t out = 0;
    int32_t r = wps_join_group(h_.get(), group.c_str(), ack_id, &out);
    return outcome(r, out, "wps_join_group");
  }
  Outcome leave_group_impl(const std::string& group, std::uint64_t ack_id) {
    std::uint64_t out = 0;
    int32_t r = wps_leave_group(h_.get(), group.c_str(), ack_id, &out);
    return outcome(r, out, "wps_leave_group");
  }
  Outcome send_to_group_impl(const std::string& group, const Payload& p, const SendOptions& o) {
    std::uint64_t out = 0;
    int32_t r = wps_send_to_group(h_.get(), group.c_str(), p.data, p.size, static_cast<uint32_t>(p.type), o.flags(),
                                  o.ack_id, &out);
    return outcome(r, out, "wps_send_to_group");
  }
  Outcome send_event_impl(const std::string& name, const Payload& p, const SendOptions& o) {
    std::uint64_t out = 0;
    int32_t r = wps_send_event(h_.get(), name.c_str(), p.data, p.size, static_cast<uint32_t>(p.type), o.flags(),
                               o.ack_id, &out);
    return outcome(r, out, "wps_send_event");
  }
  std::string connection_id_impl(std::optional<Failure>& f) const {
    std::string id(64, '\0');
    for (int attempt = 0; attempt < 4; attempt++) {
      std::size_t needed = 0;
      int32_t r = wps_client_get_connection_id(h_.get(), &id[0], id.size(), &needed);
      if (r == WPS_OK) {
        id.resize(needed > 0 ? needed - 1 : 0);
        return id;
      }
      if (r != WPS_ERR_BUFFER_TOO_SMALL || needed <= id.size()) {
        f = detail::capture(r, "wps_client_get_connection_id");
        return std::string();
      }
      id.assign(needed, '\0');  // the id grew in between (a reconnect): try again
    }
    f = detail::capture(WPS_ERR_BUFFER_TOO_SMALL, "wps_client_get_connection_id");
    return std::string();
  }
  Outcome invoke_event_impl(const std::string& name, const Payload& p, std::chrono::milliseconds timeout) {
    wps_buffer* response = nullptr;
    int32_t r = wps_invoke_event(h_.get(), name.c_str(), p.data, p.size, static_cast<uint32_t>(p.type),
                                 detail::to_ms(timeout), &response);
    Outcome o = outcome(r, 0, "wps_invoke_event");
    if (response != nullptr) {
      std::unique_ptr<wps_buffer, void (*)(wps_buffer*)> owned(response, &wps_buffer_free);
      const auto* bytes = wps_buffer_data(response);
      o.first.data.assign(reinterpret_cast<const char*>(bytes), bytes ? wps_buffer_len(response) : 0);
      o.first.data_type = static_cast<DataType>(wps_buffer_data_type(response));
    }
    return o;
  }
  static Outcome outcome(int32_t r, std::uint64_t ack_id, const char* function) {
    Ack ack;
    ack.ack_id = ack_id;
    if (r == WPS_OK) return {std::move(ack), std::nullopt};
    Failure f = detail::capture(r, function, ack_id);
    ack.error = make_error_code(r);
    ack.error_name = f.error_name;
    ack.message = f.message;
    return {std::move(ack), std::move(f)};
  }

  /// Starts an async C call with a fresh promise as its op_context. If the call is rejected
  /// the library never completes it, so the promise is completed (with the failure) here.
  template <typename Call>
  std::future<Ack> launch(const char* function, Call&& call) {
    auto st = std::make_unique<detail::OpState>();
    std::future<Ack> fut = st->promise.get_future();
    std::uint64_t out = 0;
    int32_t r = call(&detail::completion_trampoline, st.get(), &out);
    if (r != WPS_OK) return detail::failed_future(detail::capture(r, function, out));
    st.release();  // owned by the library until completion_trampoline runs (exactly once)
    return fut;
  }

  static std::error_code to_ec(const std::optional<Failure>& f) noexcept {
    return f ? make_error_code(f->result) : std::error_code();
  }
  static Ack value_or_code(Outcome o, std::error_code& ec) {
    ec = o.first.error;
    return std::move(o.first);
  }
#if WPS_CPP_EXCEPTIONS
  static void throw_if(std::optional<Failure> f) {
    if (f) throw Error(std::move(*f));
  }
  static Ack value_or_throw(Outcome o) {
    if (o.second) throw Error(std::move(*o.second));
    return std::move(o.first);
  }
#endif

  std::shared_ptr<detail::Shared> shared_;
  std::unique_ptr<wps_client, Deleter> h_;
};

// ---------------------------------------------------------------------------------------
// Group streams: per-stream readers

/// One fragment of a received stream (an owning copy).
struct StreamFragment {
  DataType type = DataType::text;
  std::string data;
  std::uint64_t sequence_id = 0;  ///< its position in the stream (1, 2, ...)
};

/// How a received stream failed: the service's error (UserError with the publisher's
/// user_error_code, IdleTimeout, Cancelled, ...), the client's own (SequenceGap, Duplicate,
/// IdleTimeout, SessionLost, Stopped, TooManyStreams) or the reader's ReaderOverflow.
struct StreamError {
  std::string name, message, user_error_code;
};

/// The fragments of one received group stream, in order, handed from the client's event
/// thread to a thread of the application. At most `max_fragments` wait in it: when it is full
/// the event thread waits for room (back-pressure: the library's event queue fills and the
/// client stops reading its socket), at most `wait`; then the reader ends with
/// ReaderOverflow after the fragments it holds and the rest of the stream is discarded.
class StreamReader {
 public:
  enum class Status {
    fragment,     ///< `out` holds the next fragment
    ended,        ///< the stream ended cleanly; nothing follows
    failed,       ///< the stream failed; see error()
    timeout,      ///< nothing arrived within the timeout
    wrong_thread  ///< called on the thread delivering this client's events with nothing buffered
  };

  StreamReader(std::string group, std::string stream_id, std::string from_user_id, std::size_t max_fragments,
               std::chrono::milliseconds wait, std::shared_ptr<std::atomic<std::thread::id>> delivering)
      : group_(std::move(group)),
        stream_id_(std::move(stream_id)),
        from_user_id_(std::move(from_user_id)),
        max_(max_fragments == 0 ? 1 : max_fragments),
        wait_(wait),
        delivering_(std::move(delivering)) {}

  const std::string& group() const noexcept { return group_; }
  const std::string& stream_id() const noexcept { return stream_id_; }
  /// The publisher's user id ("" when it has none).
  const std::string& from_user_id() const noexcept { return from_user_id_; }

  /// Waits at most `timeout` for the next fragment (buffered fragments come before the end).
  Status next(StreamFragment& out, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (items_.empty() && !ended_ && !closed_ && delivering_ && delivering_->load() == std::this_thread::get_id()) {
      return Status::wrong_thread;
    }
    if (!cv_.wait_for(lock, timeout, [&] { return !items_.empty() || ended_ || closed_; })) return Status::timeout;
    if (!items_.empty()) {
      out = std::move(items_.front());
      items_.pop_front();
      cv_.notify_all();
      return Status::fragment;
    }
    return error_ && !closed_ ? Status::failed : Status::ended;
  }
  /// Whether the stream's last frame arrived (fragments may still be buffered).
  bool done() const {
    std::lock_guard<std::mutex> lock(mu_);
    return ended_;
  }
  /// The stream's error once it failed.
  std::optional<StreamError> error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }
  /// Stops reading: buffered fragments are dropped and later ones discarded.
  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    items_.clear();
    cv_.notify_all();
  }

  // The event thread's side (called by StreamReaders).
  void push(StreamFragment f) {
    std::unique_lock<std::mutex> lock(mu_);
    if (ended_ || closed_) return;
    if (items_.size() >= max_) {
      bool room = cv_.wait_for(lock, wait_, [&] { return closed_ || ended_ || items_.size() < max_; });
      if (closed_ || ended_) return;
      if (!room) {
        ended_ = true;
        error_ = StreamError{"ReaderOverflow", "the reader did not make room for the next fragment in time", ""};
        cv_.notify_all();
        return;
      }
    }
    items_.push_back(std::move(f));
    cv_.notify_all();
  }
  void finish(std::optional<StreamError> error) {
    std::lock_guard<std::mutex> lock(mu_);
    if (ended_) return;
    ended_ = true;
    error_ = std::move(error);
    cv_.notify_all();
  }

 private:
  const std::string group_, stream_id_, from_user_id_;
  const std::size_t max_;
  const std::chrono::milliseconds wait_;
  std::shared_ptr<std::atomic<std::thread::id>> delivering_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<StreamFragment> items_;
  bool ended_ = false, closed_ = false;
  std::optional<StreamError> error_;
};

/// Turns a client's stream frames into one StreamReader per (group, stream id). Feed it every
/// stream event: `client.on_stream([&](const wps::EventView& e) { readers.handle(e); });`.
/// `on_new_stream` runs on the event thread with each new reader: hand it to a thread of your
/// own (reading it there returns Status::wrong_thread rather than waiting for itself).
/// Keep the StreamReaders alive until the client is destroyed (or remove the handler first).
class StreamReaders {
 public:
  using NewStream = std::function<void(std::shared_ptr<StreamReader>)>;

  explicit StreamReaders(NewStream on_new_stream, std::size_t max_fragments = 10000,
                         std::chrono::milliseconds wait = std::chrono::milliseconds(30000))
      : on_new_(std::move(on_new_stream)),
        max_(max_fragments),
        wait_(wait),
        delivering_(std::make_shared<std::atomic<std::thread::id>>()) {}

  void handle(const EventView& e) {
    if (e.type() != EventType::stream) return;
    delivering_->store(std::this_thread::get_id());
    struct Reset {
      std::atomic<std::thread::id>& t;
      ~Reset() { t.store(std::thread::id()); }
    } reset{*delivering_};
    const std::string group(e.group().value_or(""));
    const std::string id(e.stream_id().value_or(""));
    const bool end = e.end_of_stream();
    std::shared_ptr<StreamReader> reader;
    bool is_new = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto key = std::make_pair(group, id);
      auto it = open_.find(key);
      if (it == open_.end()) {
        reader = std::make_shared<StreamReader>(group, id, std::string(e.from_user_id().value_or("")), max_, wait_,
                                                delivering_);
        is_new = true;
        if (!end) open_.emplace(std::move(key), reader);
      } else {
        reader = it->second;
        if (end) open_.erase(it);
      }
    }
    if (e.size() > 0 || !end) reader->push(StreamFragment{e.data_type(), std::string(e.text()), e.stream_sequence_id()});
    if (end) {
      std::optional<StreamError> error;
      if (auto name = e.error_name()) {
        error = StreamError{std::string(*name), std::string(e.message().value_or("")),
                            std::string(e.user_error_code().value_or(""))};
      }
      reader->finish(std::move(error));
    }
    if (is_new && on_new_) on_new_(reader);
  }

  /// Ends every open reader with `name` (e.g. "Stopped" after the client was destroyed).
  void finish_all(const std::string& name, const std::string& message = {}) {
    std::map<std::pair<std::string, std::string>, std::shared_ptr<StreamReader>> open;
    {
      std::lock_guard<std::mutex> lock(mu_);
      open.swap(open_);
    }
    for (auto& entry : open) entry.second->finish(StreamError{name, message, ""});
  }

 private:
  NewStream on_new_;
  const std::size_t max_;
  const std::chrono::milliseconds wait_;
  std::shared_ptr<std::atomic<std::thread::id>> delivering_;
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<StreamReader>> open_;
};

// ---------------------------------------------------------------------------------------
// Group state: the cached view

/// One connection's state in a group. `state` is empty (nullopt) when it was cleared.
struct GroupStateRecord {
  std::string connection_id;
  std::optional<std::string> user_id;
  std::optional<std::map<std::string, std::string>> state;
  std::int64_t updated_at = 0;  ///< Unix epoch milliseconds, from the service
  bool operator==(const GroupStateRecord& o) const {
    return connection_id == o.connection_id && user_id == o.user_id && state == o.state && updated_at == o.updated_at;
  }
};

namespace detail {

/// A minimal JSON reader for the group-state event's records array.
class JsonReader {
 public:
  explicit JsonReader(std::string_view s) noexcept : s_(s) {}

  bool records(std::vector<GroupStateRecord>& out) {
    if (!eat('[')) return false;
    if (eat(']')) return true;
    do {
      GroupStateRecord r;
      bool has_id = false;
      if (!eat('{')) return false;
      if (!eat('}')) {
        do {
          std::string key;
          if (!string(key) || !eat(':')) return false;
          if (key == "connectionId") {
            if (!string(r.connection_id)) return false;
            has_id = true;
          } else if (key == "userId" && peek() == '"') {
            std::string u;
            if (!string(u)) return false;
            r.user_id = std::move(u);
          } else if (key == "state" && peek() == '{') {
            std::map<std::string, std::string> state;
            if (!string_map(state)) return false;
            r.state = std::move(state);
          } else if (key == "updatedAt") {
            double v = 0;
            if (!number(v)) return false;
            r.updated_at = static_cast<std::int64_t>(v);
          } else if (!skip()) {
            return false;
          }
        } while (eat(','));
        if (!eat('}')) return false;
      }
      if (has_id) out.push_back(std::move(r));
    } while (eat(','));
    return eat(']');
  }

 private:
  void ws() noexcept {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) i_++;
  }
  char peek() noexcept {
    ws();
    return i_ < s_.size() ? s_[i_] : '\0';
  }
  bool eat(char c) noexcept {
    if (peek() != c) return false;
    i_++;
    return true;
  }
  static void utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  bool hex4(std::uint32_t& v) noexcept {
    if (i_ + 4 > s_.size()) return false;
    v = 0;
    for (int k = 0; k < 4; k++) {
      const char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else return false;
    }
    return true;
  }
  bool string(std::string& out) {
    if (!eat('"')) return false;
    out.clear();
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return true;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) return false;
      const char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00 && i_ + 6 <= s_.size() && s_[i_] == '\\' && s_[i_ + 1] == 'u') {
            i_ += 2;
            std::uint32_t lo = 0;
            if (!hex4(lo)) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(out, cp);
          break;
        }
        default: return false;
      }
    }
    return false;
  }
  bool number(double& v) {
    ws();
    const std::size_t start = i_;
    while (i_ < s_.size() && (std::strchr("+-0123456789.eE", s_[i_]) != nullptr) && s_[i_] != '\0') i_++;
    if (i_ == start) return false;
    const std::string text(s_.substr(start, i_ - start));
    char* end = nullptr;
    v = std::strtod(text.c_str(), &end);
    return end != nullptr && *end == '\0';
  }
  bool string_map(std::map<std::string, std::string>& out) {
    if (!eat('{')) return false;
    if (eat('}')) return true;
    do {
      std::string k, v;
      if (!string(k) || !eat(':') || !string(v)) return false;
      out[std::move(k)] = std::move(v);
    } while (eat(','));
    return eat('}');
  }
  bool literal(std::string_view word) noexcept {
    ws();
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  bool skip(int depth = 0) {
    if (depth > 64) return false;
    const char c = peek();
    if (c == '"') {
      std::string ignored;
      return string(ignored);
    }
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      i_++;
      if (eat(close)) return true;
      do {
        if (c == '{') {
          std::string ignored;
          if (!string(ignored) || !eat(':')) return false;
        }
        if (!skip(depth + 1)) return false;
      } while (eat(','));
      return eat(close);
    }
    if (literal("true") || literal("false") || literal("null")) return true;
    double ignored = 0;
    return number(ignored);
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

inline std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace detail

/// Parses the records of a group-state event's data (a JSON array of {connectionId, userId,
/// state, updatedAt}); false for malformed JSON.
inline bool parse_group_state_records(std::string_view json, std::vector<GroupStateRecord>& out) {
  return detail::JsonReader(json).records(out);
}

/// The merged view of one group's state records. Per connection: a record replaces the stored
/// one only if its updated_at is newer; a record from an update is protected for 300 s
/// against a snapshot that omits it; a snapshot deletes the unprotected records it does not
/// list (an empty snapshot is authoritative); a cleared record stays as a hidden tombstone so
/// an older snapshot cannot bring it back; tombstones expire after 300 s, at most 200 are
/// kept (oldest removed first). Times come from `clock` (milliseconds, monotonic). Thread-safe.
class GroupStateCache {
 public:
  using Clock = std::function<std::int64_t()>;
  static constexpr std::int64_t protect_ms = 300000;
  static constexpr std::int64_t tombstone_ttl_ms = 300000;
  static constexpr std::size_t max_tombstones = 200;

  explicit GroupStateCache(Clock clock = &detail::steady_ms) : clock_(std::move(clock)) {}

  /// Folds a snapshot or an update in; returns whether the visible records changed.
  bool apply(const std::vector<GroupStateRecord>& records, bool is_snapshot) {
    std::lock_guard<std::mutex> lock(mu_);
    const std::int64_t now = clock_();
    expire(now);
    const auto before = visible();
    std::vector<std::string> listed;
    for (const auto& r : records) {
      listed.push_back(r.connection_id);
      store(r, now, !is_snapshot);
    }
    if (is_snapshot) {
      for (auto it = entries_.begin(); it != entries_.end();) {
        const Entry& e = it->second;
        const bool is_listed = std::find(listed.begin(), listed.end(), it->first) != listed.end();
        if (!is_listed && e.record.state && !(e.protected_until && *e.protected_until > now)) {
          it = entries_.erase(it);
        } else {
          ++it;
        }
      }
    }
    return visible() != before;
  }
  /// Copies of the records that have a state, ordered by connection id.
  std::vector<GroupStateRecord> list() {
    std::lock_guard<std::mutex> lock(mu_);
    expire(clock_());
    return visible();
  }
  std::size_t tombstone_count() {
    std::lock_guard<std::mutex> lock(mu_);
    expire(clock_());
    return tombstones_.size();
  }
  /// Forgets everything (a new connection: the renewal's snapshot refills the view).
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.clear();
    tombstones_.clear();
  }

 private:
  struct Entry {
    GroupStateRecord record;
    std::optional<std::int64_t> protected_until;
  };
  void store(const GroupStateRecord& r, std::int64_t now, bool protect) {
    auto it = entries_.find(r.connection_id);
    if (it != entries_.end() && r.updated_at <= it->second.record.updated_at) return;
    entries_[r.connection_id] = Entry{r, protect ? std::optional<std::int64_t>(now + protect_ms) : std::nullopt};
    drop_tombstone(r.connection_id);
    if (!r.state) {
      tombstones_.emplace_back(r.connection_id, now + tombstone_ttl_ms);
      while (tombstones_.size() > max_tombstones) {
        entries_.erase(tombstones_.front().first);
        tombstones_.pop_front();
      }
    }
  }
  void drop_tombstone(const std::string& id) {
    for (auto it = tombstones_.begin(); it != tombstones_.end(); ++it) {
      if (it->first == id) {
        tombstones_.erase(it);
        return;
      }
    }
  }
  void expire(std::int64_t now) {
    while (!tombstones_.empty() && tombstones_.front().second <= now) {
      entries_.erase(tombstones_.front().first);
      tombstones_.pop_front();
    }
  }
  std::vector<GroupStateRecord> visible() const {
    std::vector<GroupStateRecord> out;
    for (const auto& e : entries_) {
      if (e.second.record.state) out.push_back(e.second.record);
    }
    return out;
  }

  Clock clock_;
  std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::deque<std::pair<std::string, std::int64_t>> tombstones_;  // in the order recorded
};

/// A GroupStateCache per subscribed group, fed with the client's events. Wire it up with
/// `client.on_group_state([&](const wps::EventView& e) { view.handle(e); })` and call
/// `view.handle(e)` from the connected handler too (a new connection empties every cache; the
/// renewal's snapshot refills it). track() a group before subscribing, untrack() it after
/// unsubscribing (that drops its cache).
class GroupStateView {
 public:
  explicit GroupStateView(GroupStateCache::Clock clock = &detail::steady_ms) : clock_(std::move(clock)) {}

  void track(const std::string& group) {
    std::lock_guard<std::mutex> lock(mu_);
    if (caches_.find(group) == caches_.end()) caches_.emplace(group, std::make_shared<GroupStateCache>(clock_));
  }
  void untrack(const std::string& group) {
    std::lock_guard<std::mutex> lock(mu_);
    caches_.erase(group);
  }
  /// Returns true when a tracked group's visible records changed.
  bool handle(const EventView& e) {
    if (e.type() == EventType::connected) {
      for (auto& c : all()) c->clear();
      return false;
    }
    if (e.type() != EventType::group_state) return false;
    auto cache = find(std::string(e.group().value_or("")));
    if (!cache) return false;
    std::vector<GroupStateRecord> records;
    if (!parse_group_state_records(e.text(), records)) return false;
    return cache->apply(records, e.is_snapshot());
  }
  /// Copies of the group's records that have a state; nullopt when the group is not tracked.
  std::optional<std::vector<GroupStateRecord>> list(const std::string& group) {
    auto cache = find(group);
    if (!cache) return std::nullopt;
    return cache->list();
  }

 private:
  std::shared_ptr<GroupStateCache> find(const std::string& group) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = caches_.find(group);
    return it == caches_.end() ? nullptr : it->second;
  }
  std::vector<std::shared_ptr<GroupStateCache>> all() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::shared_ptr<GroupStateCache>> out;
    for (auto& c : caches_) out.push_back(c.second);
    return out;
  }
  GroupStateCache::Clock clock_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<GroupStateCache>> caches_;
};

// ---------------------------------------------------------------------------------------
// Logging (process-wide)

enum class LogLevel : std::uint32_t {
  off = WPS_LOG_OFF,
  error = WPS_LOG_ERROR,
  warning = WPS_LOG_WARNING,
  info = WPS_LOG_INFO,
  verbose = WPS_LOG_VERBOSE,
};

/// Receives one log line (access tokens already redacted). Runs on any library thread,
/// possibly concurrently: keep it short, do not block and do not call into the library.
using LogHandler = std::function<void(LogLevel, std::string_view)>;

namespace detail {

/// The installed log handler. Allocated once and never destroyed, so library threads that
/// log during process exit never see a destroyed object.
struct LogSlot {
  std::mutex mu;
  std::shared_ptr<const LogHandler> handler;
};

inline LogSlot& log_slot() {
  static LogSlot* slot = new LogSlot();
  return *slot;
}

inline void log_trampoline(void*, uint32_t level, const char* message) noexcept {
  std::shared_ptr<const LogHandler> h;
  {
    LogSlot& slot = log_slot();
    std::lock_guard<std::mutex> lock(slot.mu);
    h = slot.handler;  // this call's own reference: a replaced handler lives until it returns
  }
  if (!h || !*h || message == nullptr) return;
#if WPS_CPP_EXCEPTIONS
  try {
    (*h)(static_cast<LogLevel>(level), std::string_view(message));
  } catch (...) {
    // A throwing log handler loses that line; nothing may unwind into the library.
  }
#else
  (*h)(static_cast<LogLevel>(level), std::string_view(message));
#endif
}

}  // namespace detail

/// Installs the process-wide log handler for lines at `max_level` and more severe; an empty
/// handler or LogLevel::off turns logging off. Replacing a handler is safe while the old one
/// runs on another thread: it is released after its last call.
inline std::error_code set_log_handler(LogLevel max_level, LogHandler handler) {
  detail::LogSlot& slot = detail::log_slot();
  const bool on = handler && max_level != LogLevel::off;
  auto next = on ? std::make_shared<const LogHandler>(std::move(handler)) : nullptr;
  {
    std::lock_guard<std::mutex> lock(slot.mu);
    slot.handler = std::move(next);
  }
  int32_t r = wps_set_log_callback(on ? &detail::log_trampoline : nullptr, nullptr,
                                   static_cast<uint32_t>(on ? max_level : LogLevel::off));
  return make_error_code(r);
}

// ---------------------------------------------------------------------------------------
// Version

/// The library's version string (e.g. "0.1.0 ...").
inline std::string_view version_string() noexcept { return wps_version_string(); }
/// True when the loaded library has the header's major and minor version.
inline bool version_matches() noexcept { return (wps_version_number() >> 8) == (WPS_VERSION_NUMBER >> 8); }

}  // namespace wps

#endif  // WEBPUBSUB_CLIENT_HPP
