// CommitRate: how many events per second, lately: each event adds 1/tau to an estimate that
// decays as exp(-dt/tau), so a steady rate R reads R after a few tau, and silence fades it.
// Pure (the caller passes the time), for the adaptive wake-up's choice between being woken
// by every commit and polling.
#pragma once

#include <chrono>
#include <cmath>

namespace mn {

class CommitRate {
 public:
  using Clock = std::chrono::steady_clock;

  explicit CommitRate(std::chrono::milliseconds tau = std::chrono::milliseconds(100))
      : tau_s_(std::chrono::duration<double>(tau).count()) {}

  void add(Clock::time_point now, double events = 1) {
    value_ = per_second(now) + events / tau_s_;
    at_ = now;
  }

  double per_second(Clock::time_point now) const {
    if (value_ == 0) return 0;
    double dt = std::chrono::duration<double>(now - at_).count();
    return dt <= 0 ? value_ : value_ * std::exp(-dt / tau_s_);
  }

  void reset() { value_ = 0; }

 private:
  double tau_s_;
  double value_ = 0;
  Clock::time_point at_{};
};

}  // namespace mn
