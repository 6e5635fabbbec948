// DeadlineQueue: when each of many sessions next needs a look (a ping due, a pong overdue, a
// token expiring), in time order, so that a periodic tick visits only the sessions that are
// due instead of walking every socket in one handler.
//
// Entries are never removed early. Each carries the generation its session had when it was
// scheduled; rescheduling bumps the session's generation, so an entry whose session moved on
// (or closed) is recognised as stale and dropped when it comes up.
//
// Pure: no clock of its own, no I/O; the caller passes `now`.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <queue>
#include <utility>
#include <vector>

namespace mn {

template <class Key>
class DeadlineQueue {
 public:
  using Clock = std::chrono::steady_clock;

  void schedule(Clock::time_point at, Key key, uint64_t generation) {
    heap_.push(Entry{at, seq_++, std::move(key), generation});
  }

  // Calls f(key, generation) for entries due at `now`, earliest first, at most `limit` of
  // them, so that one turn of the loop stays short however many fell due together (after a
  // stall, say). Returns how many were handed over; more may be due.
  template <class F>
  size_t pop_due(Clock::time_point now, size_t limit, F&& f) {
    size_t n = 0;
    while (n < limit && !heap_.empty() && heap_.top().at <= now) {
      Entry e = heap_.top();
      heap_.pop();
      ++n;
      f(e.key, e.generation);
    }
    return n;
  }

  std::optional<Clock::time_point> next() const {
    if (heap_.empty()) return std::nullopt;
    return heap_.top().at;
  }
  size_t size() const { return heap_.size(); }
  bool empty() const { return heap_.empty(); }

  // Drops every entry (shutdown): the memory of stale entries goes with them.
  void clear() { heap_ = decltype(heap_)(); }

 private:
  struct Entry {
    Clock::time_point at;
    uint64_t seq;  // ties break in scheduling order
    Key key;
    uint64_t generation;
  };
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const {
      return a.at != b.at ? a.at > b.at : a.seq > b.seq;
    }
  };
  std::priority_queue<Entry, std::vector<Entry>, Later> heap_;
  uint64_t seq_ = 0;
};

}  // namespace mn
