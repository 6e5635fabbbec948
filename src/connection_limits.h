// ConnectionLimits: who may hold a connection. Authenticated sessions count against
// --max-connections and their user's --max-connections-per-user; connections not yet
// authenticated (in the HTTP handshake, or Socket.IO before CONNECT) against
// --max-unauthenticated overall and --max-unauthenticated-per-address.
//
// Unauthenticated connections are newest-wins: past its address's cap, that address's oldest
// makes room; past the overall cap, the oldest of the address holding the most. Idle sockets
// cannot keep out a client that is authenticating now, and those from one address (or a few)
// cut their own, not a client's from elsewhere, however fast they churn.
//
// Pure bookkeeping, no sockets: a connection is an opaque key, and the caller ends the one
// this returns.
#pragma once

#include "config.h"

#include <cstddef>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>

namespace mn {

class ConnectionLimits {
 public:
  enum class Admission { admitted, over_capacity, too_many_connections };
  // A connection not yet authenticated: `cut` ends it at once (no close handshake).
  struct Unauthenticated {
    const void* key = nullptr;
    std::string address;
    std::function<void()> cut;
  };

  explicit ConnectionLimits(const Config& cfg);

  // A new connection joins the unauthenticated. Returns the one that must make room for it, if
  // any: already forgotten here, for the caller to cut.
  std::optional<Unauthenticated> add_unauthenticated(const void* key, const std::string& address,
                                                     std::function<void()> cut);
  // It authenticated or went away. Safe for keys that are not (or no longer) here.
  void forget_unauthenticated(const void* key);

  bool at_capacity() const { return authenticated_ >= max_connections_; }
  // Whether `user` may have one more session now; changes nothing.
  Admission check(const std::string& user) const;
  // Counts a session of `user` in (and its connection `key` out of the unauthenticated), or
  // says why not.
  Admission admit(const void* key, const std::string& user);
  // A session admitted for `user` has ended.
  void release(const std::string& user);

  size_t unauthenticated() const { return unauthenticated_.size(); }
  size_t authenticated() const { return authenticated_; }
  size_t sessions_of(const std::string& user) const;

 private:
  std::optional<Unauthenticated> take(std::list<Unauthenticated>::iterator it);

  size_t max_connections_, max_per_user_, max_unauthenticated_, max_unauthenticated_per_address_;
  // Oldest first, with an index by key and a count per remote address.
  std::list<Unauthenticated> unauthenticated_;
  std::unordered_map<const void*, std::list<Unauthenticated>::iterator> unauthenticated_of_;
  std::unordered_map<std::string, size_t> unauthenticated_per_address_;
  size_t authenticated_ = 0;
  std::unordered_map<std::string, size_t> sessions_per_user_;
};

}  // namespace mn
