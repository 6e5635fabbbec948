// DeliveryRecord: what the reader delivered lately, so that after a failover it can tell whether
// the new primary has all of it.
//
// The reader marks how far it delivered (membership_notifier.delivered) only now and then, and
// not durably: after a failover the old timeline's mark on the new primary may lag what was
// delivered. The reads delivered past it are kept here, rows and all, to be looked up one by
// one; what has been forgotten (older than kKeepFor, or past kKeepRows) cannot be, and counts as
// lost unless the mark covers it. Pure: no I/O, the clock passed in.
#pragma once

#include "event.h"

#include <chrono>
#include <cstdint>
#include <deque>
#include <vector>

namespace mn {

class DeliveryRecord {
 public:
  using Clock = std::chrono::steady_clock;
  // Past these a failover is judged by the mark alone: asynchronous standbys lag by far less.
  static constexpr std::chrono::seconds kKeepFor{60};
  static constexpr size_t kKeepRows = 100000;

  // A read whose rows (visible in a snapshot with this xmax) were delivered at `at`.
  void add(uint64_t xmax, Clock::time_point at, const std::vector<LogRow>& rows) {
    if (rows.empty()) return;
    reads_.push_back({xmax, at, rows});
    rows_ += rows.size();
    last_xmax_ = std::max(last_xmax_, xmax);
    while (!reads_.empty() && (rows_ > kKeepRows || at - reads_.front().at > kKeepFor)) {
      forgotten_xmax_ = std::max(forgotten_xmax_, reads_.front().xmax);
      rows_ -= reads_.front().rows.size();
      reads_.pop_front();
    }
  }

  void clear() { *this = DeliveryRecord(); }
  bool empty() const { return last_xmax_ == 0; }

  // Given `through`, how far the new server's mark of the old timeline reaches: whether
  // everything delivered is known to be there (nothing to verify), known to be possibly gone
  // (a forgotten read lies past the mark), or to be verified row by row (`verify`).
  enum class Verdict { kept, unknown, verify };
  Verdict judge(uint64_t through, std::vector<LogRow>* verify) const {
    if (through >= last_xmax_) return Verdict::kept;
    if (forgotten_xmax_ > through) return Verdict::unknown;
    for (const auto& read : reads_)
      if (read.xmax > through) verify->insert(verify->end(), read.rows.begin(), read.rows.end());
    return Verdict::verify;
  }

 private:
  struct Read {
    uint64_t xmax;
    Clock::time_point at;
    std::vector<LogRow> rows;
  };
  std::deque<Read> reads_;
  size_t rows_ = 0;
  uint64_t last_xmax_ = 0;
  uint64_t forgotten_xmax_ = 0;
};

}  // namespace mn
