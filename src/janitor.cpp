#include "janitor.h"

#include <spdlog/spdlog.h>

namespace mn {

constexpr int kBatch = 10000;

Janitor::Janitor(asio::io_context& io, const Config& cfg) : io_(io), cfg_(cfg), timer_(io) {}

void Janitor::start() {
  stopped_ = false;
  schedule(cfg_.prune_interval);
}

void Janitor::stop() {
  stopped_ = true;
  timer_.cancel();
  if (conn_) conn_->close();
  conn_.reset();
}

void Janitor::schedule(std::chrono::milliseconds after) {
  if (stopped_) return;
  timer_.expires_after(after);
  timer_.async_wait([this](const asio::error_code& ec) {
    if (!ec) run();
  });
}

void Janitor::run() {
  // A connection of its own, opened for the job and closed after it: pruning is rare.
  conn_ = PgConnection::create(io_);
  auto conn = conn_;
  conn->connect(cfg_.database_url, "membership-notifier janitor", cfg_.db_timeout,
                [this, conn](const std::string& err) {
                  if (conn != conn_) return;
                  if (!err.empty()) {
                    spdlog::warn("janitor: cannot connect ({}); will retry", err);
                    conn_.reset();
                    return schedule(cfg_.prune_interval);
                  }
                  conn->on_failure([this, conn](const std::string& reason) {
                    if (conn != conn_) return;
                    spdlog::warn("janitor: {}; will retry", reason);
                    conn_.reset();
                    schedule(cfg_.prune_interval);
                  });
                  prune_batch();
                });
}

void Janitor::prune_batch() {
  auto conn = conn_;
  std::string age = std::to_string(cfg_.retention.count()) + " milliseconds";
  conn->query("SELECT membership_notifier.prune($1::interval, $2::integer)", {age, std::to_string(kBatch)},
              [this, conn](PgResult r) {
                if (conn != conn_) return;
                long long n = r.ok() && r.rows() == 1 ? std::stoll(std::string(r.get(0, 0))) : 0;
                if (!r.ok()) spdlog::warn("janitor: pruning failed: {}", r.error());
                if (n > 0) {
                  pruned_ += static_cast<uint64_t>(n);
                  spdlog::debug("janitor: pruned {} log rows", n);
                }
                // A full batch means more is due: go on at once, one batch per round trip.
                if (n == kBatch) return prune_batch();
                conn_->close();
                conn_.reset();
                schedule(cfg_.prune_interval);
              },
              std::chrono::milliseconds(60000));
}

}  // namespace mn
