// PollingSessions: Socket.IO sessions on Engine.IO's long-polling transport, and their upgrade
// to a WebSocket. Each is a Session of the SessionHost like any other (the same limits,
// authentication by CONNECT, message bucket, budget of unsent bytes, keepalive and close
// reasons), carried by a PollingLink: what the host sends is queued in the session's
// PollingTransport (polling_transport.h) and goes out as the answer to the client's next GET;
// what the client POSTs goes to the host packet by packet, as WebSocket messages do.
//
// The listener hands over every HTTP request to /socket.io/ and every WebSocket request that
// names a sid (a probe), reports those connections' data frames and ends, and writes the
// replies it is given (at once, or later for a held GET). A session counts as one connection
// of the host (accepted from its open to its end); its requests' own connections do not count
// as unauthenticated ones, so an authenticated polling client is never cut for them.
//
// Once upgraded, the session stays keyed by its PollingLink, which from then on forwards to the
// WebSocket's link; the WebSocket's frames and end come here and go to the host as the
// session's.
//
// Single-threaded: every call on the io_context's thread.
#pragma once

#include "config.h"
#include "polling_codec.h"
#include "polling_transport.h"
#include "session.h"
#include "session_host.h"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>

namespace mn {

class PollingSessions {
 public:
  struct Response {
    int status = 200;
    std::string content_type;
    std::string body;
  };
  // Writes the reply to one request; called once, now or later (a held GET).
  using Reply = std::function<void(const Response&)>;

  struct Request {
    const void* key = nullptr;  // its connection, accepted by the host
    std::string method;
    std::string resource;       // path and query
    std::string content_type;
    std::string origin;
    std::string authorization;
    std::string peer;           // for logs
    std::string address;        // remote address, for the per-address caps
    std::string body;
  };

  PollingSessions(asio::io_context& io, const Config& cfg, SessionHost& host);
  ~PollingSessions();
  PollingSessions(const PollingSessions&) = delete;
  PollingSessions& operator=(const PollingSessions&) = delete;

  // An HTTP request to /socket.io/ (not an upgrade).
  void http(const Request& request, Reply reply);

  // A WebSocket request with a sid, accepted by the host's rules (upgrade.h): whether it may
  // become that session's probe (then `link` carries it from now on). For a session that is
  // being upgraded or was, the WebSocket is accepted and closed once open, as the reference
  // server does; for none, refused (Session ID unknown).
  enum class Probe { accepted, refused, close_when_open };
  Probe probe(const std::string& sid, std::unique_ptr<SessionLink> link);
  // A WebSocket the host has no session for is open.
  void opened(const void* key);
  // A data frame on a connection the host has no session for. False: not one of ours.
  bool message(const void* key, bool text, const std::string& payload);
  // A connection ended (a held GET's, a probe's, an upgraded session's WebSocket, or any other).
  void ended(const void* key);

  // The sweep: expired probes, and closed sessions whose last packets were never fetched.
  void start();
  void stop();
  size_t sessions() const { return by_sid_.size(); }

 private:
  struct Entry;
  class Link;

  void open(const Request& request, Reply reply);
  void poll(Entry& e, const Request& request, Reply reply);
  void post(Entry& e, const Request& request, Reply reply);
  void probe_message(Entry& e, bool text, const std::string& payload);
  void drop_probe(Entry& e, const std::string& why);
  // Answers the held GET if it should be, now.
  void flush(Entry& e);
  // After this turn: one answer to the held GET for all that was queued meanwhile.
  void flush_soon(Entry& e);
  // Ends the session in the host and forgets it (if its transport says so, or `now`).
  void finish_if_done(Entry& e, bool now = false);
  Session* session_of(Entry& e);
  Entry* find(const std::string& sid);
  void sweep();
  std::string new_sid();

  asio::io_context& io_;
  const Config& cfg_;
  SessionHost& host_;
  polling::Limits limits_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> by_sid_;
  std::unordered_map<const void*, Entry*> by_connection_;  // held GETs, probes, upgraded WebSockets
  std::unordered_map<const void*, std::unique_ptr<SessionLink>> to_close_;  // close_when_open
  asio::steady_timer sweep_;
  bool stopped_ = false;
  std::mt19937_64 random_{std::random_device{}()};
};

}  // namespace mn
