// Rooms: user id -> the sessions that user has open ("user:<id>"). The room a session is in is
// decided by its verified token alone; nothing a client sends can move it to another.
// Emitting to a user with no sessions finds no room and does nothing.
#pragma once

#include "session.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

namespace mn {

class Rooms {
 public:
  void join(Session& s) { rooms_[s.user_id].push_back(&s); ++sessions_; }

  void leave(Session& s) {
    auto it = rooms_.find(s.user_id);
    if (it == rooms_.end()) return;
    auto& v = it->second;
    auto pos = std::find(v.begin(), v.end(), &s);
    if (pos == v.end()) return;
    v.erase(pos);
    --sessions_;
    if (v.empty()) rooms_.erase(it);
  }

  // The sessions of one user; empty when the user has none open.
  const std::vector<Session*>& of(const std::string& user_id) const {
    static const std::vector<Session*> none;
    auto it = rooms_.find(user_id);
    return it == rooms_.end() ? none : it->second;
  }

  template <typename F>
  void for_each_session(F&& f) const {
    for (const auto& [user, sessions] : rooms_)
      for (Session* s : sessions) f(*s);
  }

  size_t users() const { return rooms_.size(); }
  size_t sessions() const { return sessions_; }

 private:
  std::unordered_map<std::string, std::vector<Session*>> rooms_;
  size_t sessions_ = 0;
};

}  // namespace mn
