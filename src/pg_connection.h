// PgConnection: one libpq connection driven by the process's io_context.
//
// libpqxx (used by `migrate` and the tests) only blocks; a blocked query on the loop thread
// would stall every WebSocket, and a half-open TCP connection would stall it for minutes.
// So the sidecar's own connections use libpq's non-blocking API here: the socket is watched
// by an asio::posix::stream_descriptor, nothing ever waits on it, nothing polls.
//
// Threading: every call, and every callback, runs on the io_context's single thread.
// Errors come in two kinds, kept apart as the rest of the program expects:
//  - a query that fails on a healthy connection: its handler gets a result with ok() false;
//  - a broken connection (socket error, server gone, a query over its deadline): the failure
//    handler is called once, every pending query's handler is dropped, and the object is dead.
//    The owner decides to reconnect with a new object.
#pragma once

#include <asio.hpp>
#include <libpq-fe.h>

#include <charconv>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mn {

// A PGresult owned; cheap to move. Field access is by row and column number.
class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(PGresult* r) : res_(r, &PQclear) {}
  bool ok() const;
  std::string error() const;  // the server's message, for logs; empty when ok()
  int rows() const { return res_ ? PQntuples(res_.get()) : 0; }
  bool is_null(int row, int col) const { return PQgetisnull(res_.get(), row, col) != 0; }
  std::string_view get(int row, int col) const {
    return {PQgetvalue(res_.get(), row, col), static_cast<size_t>(PQgetlength(res_.get(), row, col))};
  }
  std::optional<std::string> get_opt(int row, int col) const;

 private:
  std::shared_ptr<PGresult> res_;
};

class PgConnection : public std::enable_shared_from_this<PgConnection> {
 public:
  using Params = std::vector<std::optional<std::string>>;
  using ResultHandler = std::function<void(PgResult)>;
  using FailureHandler = std::function<void(const std::string& reason)>;
  using NotifyHandler = std::function<void(const std::string& channel, const std::string& payload)>;
  using ConnectHandler = std::function<void(const std::string& error)>;  // empty: connected

  static std::shared_ptr<PgConnection> create(asio::io_context& io) {
    return std::shared_ptr<PgConnection>(new PgConnection(io));
  }
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Starts connecting. `conninfo` is a libpq URI or key=value string (PG* variables apply);
  // TCP keepalives are turned on unless it says otherwise. `done` runs once.
  void connect(const std::string& conninfo, const std::string& application_name,
               std::chrono::milliseconds timeout, ConnectHandler done);

  // Queues a query (one statement, $1.. parameters as text). Queries run one at a time in
  // order. A query still unanswered after `deadline` breaks the connection: that is how a
  // half-open connection is noticed.
  void query(std::string sql, Params params, ResultHandler handler,
             std::chrono::milliseconds deadline = std::chrono::seconds(10));

  // Prepared statements, for what runs on every wake-up: parsing and planning the event log
  // read cost more than running it. prepare() queues like a query; its handler gets the
  // result of the PREPARE (a failure there is the owner's to report). Statements belong to
  // this connection: prepare again after reconnecting.
  void prepare(std::string name, std::string sql, ResultHandler handler);
  void query_prepared(std::string name, Params params, ResultHandler handler,
                      std::chrono::milliseconds deadline = std::chrono::seconds(10));

  void on_failure(FailureHandler h) { on_failure_ = std::move(h); }
  void on_notification(NotifyHandler h) { on_notify_ = std::move(h); }

  // Closes without calling the failure handler. Safe to call twice.
  void close();

  bool connected() const { return state_ == State::ready; }
  int backend_pid() const { return conn_ ? PQbackendPID(conn_) : 0; }
  std::string server_address() const;  // host:port of the server reached, for logs

 private:
  explicit PgConnection(asio::io_context& io);
  enum class State { idle, connecting, ready, dead };
  enum class Kind { query, prepare, prepared };
  struct Pending {
    Kind kind;
    std::string sql;   // the statement name for Kind::prepared
    std::string name;  // Kind::prepare
    Params params;
    ResultHandler handler;
    std::chrono::milliseconds deadline;
  };

  void poll_connect();
  void watch_socket(bool always = false);  // (re)binds the descriptor to PQsocket after it changes
  void wait_readable();
  void wait_writable();
  void on_readable();
  void start_next();
  void flush();
  void fail(const std::string& reason);
  void arm_deadline(std::chrono::milliseconds d);
  void drain_notifications();
  static void on_notice(void* arg, const PGresult* r);

  asio::io_context& io_;
  asio::posix::stream_descriptor sock_;
  asio::steady_timer deadline_;
  PGconn* conn_ = nullptr;
  int bound_fd_ = -1;
  State state_ = State::idle;
  bool reading_ = false;
  bool busy_ = false;
  bool current_failed_ = false;
  std::deque<Pending> queue_;
  ResultHandler current_;
  PgResult current_result_;
  ConnectHandler on_connect_;
  FailureHandler on_failure_;
  NotifyHandler on_notify_;
};

// A PostgreSQL array literal of these strings, every element quoted, for a $n::text[] parameter.
std::string text_array(const std::vector<std::string>& items);

// A column's text as an integer, all of it (no sign or spaces a T cannot take, nothing after).
template <typename T>
bool parse_int(std::string_view text, T& out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && p == text.data() + text.size();
}

}  // namespace mn
