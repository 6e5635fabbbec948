#include "pg_connection.h"

#include <spdlog/spdlog.h>

#include <utility>

namespace mn {
namespace {

std::string trimmed(const char* s) {
  std::string out = s ? s : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

bool PgResult::ok() const {
  if (!res_) return false;
  auto st = PQresultStatus(res_.get());
  return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

std::string PgResult::error() const {
  if (!res_) return "no result";
  return ok() ? std::string() : trimmed(PQresultErrorMessage(res_.get()));
}

std::optional<std::string> PgResult::get_opt(int row, int col) const {
  if (is_null(row, col)) return std::nullopt;
  return std::string(get(row, col));
}

PgConnection::PgConnection(asio::io_context& io) : io_(io), sock_(io), deadline_(io) {}

PgConnection::~PgConnection() { close(); }

void PgConnection::connect(const std::string& conninfo, const std::string& application_name,
                           std::chrono::milliseconds timeout, ConnectHandler done) {
  on_connect_ = std::move(done);
  // Defaults first: the user's conninfo (expanded from "dbname") overrides any of them.
  // Keepalives and tcp_user_timeout make the kernel give up on a dead peer within seconds.
  const char* keys[] = {"application_name", "keepalives", "keepalives_idle", "keepalives_interval",
                        "keepalives_count", "tcp_user_timeout", "dbname", nullptr};
  const char* values[] = {application_name.c_str(), "1", "5", "2", "3", "10000",
                          conninfo.c_str(), nullptr};
  conn_ = PQconnectStartParams(keys, values, 1);
  if (conn_) PQsetNoticeReceiver(conn_, &PgConnection::on_notice, nullptr);
  if (!conn_ || PQstatus(conn_) == CONNECTION_BAD) {
    std::string err = conn_ ? trimmed(PQerrorMessage(conn_)) : "out of memory";
    asio::post(io_, [self = shared_from_this(), err] { self->fail(err); });
    return;
  }
  state_ = State::connecting;
  arm_deadline(timeout);
  watch_socket();
  poll_connect();
}

// The server's notices, and an error it sends while no query runs (a connection terminated by
// an administrator or a shutdown), which libpq passes here too: into the process's one log, at
// the level of their severity, instead of libpq's raw lines on stderr.
void PgConnection::on_notice(void*, const PGresult* r) {
  const char* severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
  const std::string sev = severity ? severity : "";
  const std::string text = trimmed(PQresultErrorMessage(r));
  if (sev == "WARNING" || sev == "ERROR" || sev == "FATAL" || sev == "PANIC") spdlog::warn("database says: {}", text);
  else if (sev == "DEBUG") spdlog::debug("database says: {}", text);
  else spdlog::info("database says: {}", text);
}

void PgConnection::arm_deadline(std::chrono::milliseconds d) {
  deadline_.expires_after(d);
  deadline_.async_wait([self = shared_from_this(), d](const asio::error_code& ec) {
    if (ec) return;
    self->fail(self->state_ == State::connecting
                   ? "connect timed out after " + std::to_string(d.count()) + " ms"
                   : "no answer from server within " + std::to_string(d.count()) + " ms");
  });
}

void PgConnection::watch_socket(bool always) {
  int fd = PQsocket(conn_);
  if (fd == bound_fd_ && !always) return;
  // libpq owns the fd (and may switch to another one while trying several hosts): the
  // descriptor only borrows it, and gives it back with release(), never close().
  if (bound_fd_ >= 0) {
    reading_ = false;
    sock_.release();
  }
  bound_fd_ = -1;
  if (fd >= 0) {
    sock_.assign(fd);
    bound_fd_ = fd;
  }
}

void PgConnection::poll_connect() {
  if (state_ != State::connecting) return;
  auto status = PQconnectPoll(conn_);
  // While connecting, libpq may close its socket and open another (next host, or a host
  // refused for target_session_attrs), which can get the same fd number: the old one's
  // epoll registration is gone with it, so register whatever is there after every step.
  watch_socket(true);
  switch (status) {
    case PGRES_POLLING_READING:
      sock_.async_wait(asio::posix::descriptor_base::wait_read,
                       [self = shared_from_this()](const asio::error_code& ec) {
                         if (!ec) self->poll_connect();
                       });
      return;
    case PGRES_POLLING_WRITING:
      sock_.async_wait(asio::posix::descriptor_base::wait_write,
                       [self = shared_from_this()](const asio::error_code& ec) {
                         if (!ec) self->poll_connect();
                       });
      return;
    case PGRES_POLLING_OK: {
      deadline_.cancel();
      if (PQsetnonblocking(conn_, 1) != 0) return fail(trimmed(PQerrorMessage(conn_)));
      state_ = State::ready;
      wait_readable();
      if (auto done = std::exchange(on_connect_, nullptr)) done("");
      start_next();
      return;
    }
    default:
      return fail(trimmed(PQerrorMessage(conn_)));
  }
}

void PgConnection::query(std::string sql, Params params, ResultHandler handler,
                         std::chrono::milliseconds deadline) {
  if (state_ == State::dead) return;
  queue_.push_back(Pending{Kind::query, std::move(sql), {}, std::move(params), std::move(handler), deadline});
  if (state_ == State::ready) start_next();
}

void PgConnection::prepare(std::string name, std::string sql, ResultHandler handler) {
  if (state_ == State::dead) return;
  queue_.push_back(Pending{Kind::prepare, std::move(sql), std::move(name), {}, std::move(handler),
                           std::chrono::seconds(10)});
  if (state_ == State::ready) start_next();
}

void PgConnection::query_prepared(std::string name, Params params, ResultHandler handler,
                                  std::chrono::milliseconds deadline) {
  if (state_ == State::dead) return;
  queue_.push_back(Pending{Kind::prepared, std::move(name), {}, std::move(params), std::move(handler), deadline});
  if (state_ == State::ready) start_next();
}

void PgConnection::start_next() {
  if (state_ != State::ready || busy_ || queue_.empty()) return;
  Pending p = std::move(queue_.front());
  queue_.pop_front();
  std::vector<const char*> values;
  values.reserve(p.params.size());
  for (const auto& v : p.params) values.push_back(v ? v->c_str() : nullptr);
  const int n = static_cast<int>(values.size());
  int sent = 0;
  switch (p.kind) {
    case Kind::query:
      sent = PQsendQueryParams(conn_, p.sql.c_str(), n, nullptr, values.data(), nullptr, nullptr, 0);
      break;
    case Kind::prepare:
      sent = PQsendPrepare(conn_, p.name.c_str(), p.sql.c_str(), 0, nullptr);
      break;
    case Kind::prepared:
      sent = PQsendQueryPrepared(conn_, p.sql.c_str(), n, values.data(), nullptr, nullptr, 0);
      break;
  }
  if (!sent) {
    return fail(trimmed(PQerrorMessage(conn_)));
  }
  busy_ = true;
  current_ = std::move(p.handler);
  current_result_ = PgResult();
  current_failed_ = false;
  arm_deadline(p.deadline);
  flush();
}

void PgConnection::flush() {
  int r = PQflush(conn_);
  if (r < 0) return fail(trimmed(PQerrorMessage(conn_)));
  if (r == 1) wait_writable();
}

void PgConnection::wait_writable() {
  sock_.async_wait(asio::posix::descriptor_base::wait_write,
                   [self = shared_from_this()](const asio::error_code& ec) {
                     if (!ec && self->state_ == State::ready) self->flush();
                   });
}

void PgConnection::wait_readable() {
  if (reading_ || state_ != State::ready) return;
  reading_ = true;
  sock_.async_wait(asio::posix::descriptor_base::wait_read,
                   [self = shared_from_this()](const asio::error_code& ec) {
                     self->reading_ = false;
                     if (ec || self->state_ != State::ready) return;
                     self->on_readable();
                   });
}

void PgConnection::on_readable() {
  if (!PQconsumeInput(conn_)) return fail(trimmed(PQerrorMessage(conn_)));
  auto self = shared_from_this();  // a handler below may drop the owner's reference
  while (busy_ && !PQisBusy(conn_)) {
    PGresult* r = PQgetResult(conn_);
    if (r) {
      // Keep the first error of a multi-statement string, else the last result.
      if (!current_failed_) {
        current_result_ = PgResult(r);
        current_failed_ = !current_result_.ok();
      } else {
        PQclear(r);
      }
      continue;
    }
    busy_ = false;
    deadline_.cancel();
    auto handler = std::exchange(current_, nullptr);
    auto result = std::exchange(current_result_, PgResult());
    if (handler) handler(std::move(result));
    if (state_ != State::ready) return;
  }
  drain_notifications();
  if (state_ != State::ready) return;
  if (PQstatus(conn_) == CONNECTION_BAD) return fail(trimmed(PQerrorMessage(conn_)));
  wait_readable();
  start_next();
}

void PgConnection::drain_notifications() {
  while (state_ == State::ready) {
    PGnotify* n = PQnotifies(conn_);
    if (!n) return;
    std::string channel = n->relname ? n->relname : "";
    std::string payload = n->extra ? n->extra : "";
    PQfreemem(n);
    // A copy: the handler may close this connection, which drops on_notify_.
    if (auto h = on_notify_) h(channel, payload);
  }
}

void PgConnection::fail(const std::string& reason) {
  if (state_ == State::dead) return;
  auto self = shared_from_this();
  const std::string why = reason.empty() ? "connection lost" : reason;
  auto done = std::exchange(on_connect_, nullptr);
  auto failed = std::exchange(on_failure_, nullptr);
  close();
  // A connection that never came up reports through its connect handler only.
  if (done) return done(why);
  if (failed) failed(why);
}

void PgConnection::close() {
  state_ = State::dead;
  deadline_.cancel();
  if (bound_fd_ >= 0) {
    asio::error_code ignored;
    sock_.cancel(ignored);
    sock_.release();
    bound_fd_ = -1;
  }
  if (conn_) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  queue_.clear();
  current_ = nullptr;
  busy_ = false;
  // Owners' handlers often hold the connection itself (to tell it from its successor): keeping
  // them would keep every closed connection alive.
  on_connect_ = nullptr;
  on_failure_ = nullptr;
  on_notify_ = nullptr;
}

std::string PgConnection::server_address() const {
  if (!conn_) return "";
  const char* host = PQhost(conn_);
  const char* port = PQport(conn_);
  return std::string(host ? host : "?") + ":" + (port ? port : "?");
}

std::string text_array(const std::vector<std::string>& items) {
  std::string out = "{";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char c : items[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

}  // namespace mn
