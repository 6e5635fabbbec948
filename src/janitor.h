// Janitor: prunes the event log every prune_interval, deleting rows older than the retention
// a batch at a time. Every instance runs one; the SQL function lets only one prune at a time
// (an advisory try-lock), and deleting old rows never blocks the application's inserts.
// Failures are environmental: logged, retried at the next interval.
// Single-threaded: on the io_context's thread.
#pragma once

#include "config.h"
#include "pg_connection.h"

#include <asio.hpp>

#include <memory>

namespace mn {

class Janitor {
 public:
  Janitor(asio::io_context& io, const Config& cfg);
  void start();
  void stop();
  uint64_t pruned() const { return pruned_; }

 private:
  void schedule(std::chrono::milliseconds after);
  void run();
  void prune_batch();

  asio::io_context& io_;
  const Config& cfg_;
  asio::steady_timer timer_;
  std::shared_ptr<PgConnection> conn_;
  uint64_t pruned_ = 0;
  bool stopped_ = true;
};

}  // namespace mn
