#include "connection_limits.h"

#include <algorithm>
#include <iterator>

namespace mn {

ConnectionLimits::ConnectionLimits(const Config& cfg)
    : max_connections_(cfg.max_connections),
      max_per_user_(cfg.max_connections_per_user),
      max_unauthenticated_(cfg.max_unauthenticated),
      max_unauthenticated_per_address_(cfg.max_unauthenticated_per_address) {}

std::optional<ConnectionLimits::Unauthenticated> ConnectionLimits::take(std::list<Unauthenticated>::iterator it) {
  // Forgotten by its address first: moved from, the node would name none, and its address's
  // count would stay one too high (every later connection from there would cut another).
  Unauthenticated victim{it->key, it->address, std::move(it->cut)};
  forget_unauthenticated(victim.key);
  return victim;
}

std::optional<ConnectionLimits::Unauthenticated> ConnectionLimits::add_unauthenticated(const void* key,
                                                                                       const std::string& address,
                                                                                       std::function<void()> cut) {
  std::optional<Unauthenticated> victim;
  auto mine = unauthenticated_per_address_.find(address);
  const size_t held = mine == unauthenticated_per_address_.end() ? 0 : mine->second;
  if (held >= max_unauthenticated_per_address_) {
    auto it = std::find_if(unauthenticated_.begin(), unauthenticated_.end(),
                           [&](const Unauthenticated& u) { return u.address == address; });
    if (it != unauthenticated_.end()) victim = take(it);
  } else if (unauthenticated_.size() >= max_unauthenticated_ && !unauthenticated_.empty()) {
    size_t most = 0;
    for (const auto& [addr, n] : unauthenticated_per_address_) most = std::max(most, n);
    auto it = std::find_if(unauthenticated_.begin(), unauthenticated_.end(),
                           [&](const Unauthenticated& u) { return unauthenticated_per_address_[u.address] == most; });
    if (it != unauthenticated_.end()) victim = take(it);
  }
  unauthenticated_.push_back({key, address, std::move(cut)});
  unauthenticated_of_[key] = std::prev(unauthenticated_.end());
  ++unauthenticated_per_address_[address];
  return victim;
}

void ConnectionLimits::forget_unauthenticated(const void* key) {
  auto it = unauthenticated_of_.find(key);
  if (it == unauthenticated_of_.end()) return;
  auto per = unauthenticated_per_address_.find(it->second->address);
  if (per != unauthenticated_per_address_.end() && --per->second == 0) unauthenticated_per_address_.erase(per);
  unauthenticated_.erase(it->second);
  unauthenticated_of_.erase(it);
}

ConnectionLimits::Admission ConnectionLimits::check(const std::string& user) const {
  if (at_capacity()) return Admission::over_capacity;
  if (sessions_of(user) >= max_per_user_) return Admission::too_many_connections;
  return Admission::admitted;
}

ConnectionLimits::Admission ConnectionLimits::admit(const void* key, const std::string& user) {
  if (auto refused = check(user); refused != Admission::admitted) return refused;
  ++sessions_per_user_[user];
  ++authenticated_;
  forget_unauthenticated(key);
  return Admission::admitted;
}

void ConnectionLimits::release(const std::string& user) {
  if (authenticated_ > 0) --authenticated_;
  auto it = sessions_per_user_.find(user);
  if (it != sessions_per_user_.end() && --it->second == 0) sessions_per_user_.erase(it);
}

size_t ConnectionLimits::sessions_of(const std::string& user) const {
  auto it = sessions_per_user_.find(user);
  return it == sessions_per_user_.end() ? 0 : it->second;
}

}  // namespace mn
