// Writer: single-row membership changes at a fixed rate, each its own autocommit transaction,
// timed on CLOCK_MONOTONIC (the clock the receivers stamp with). Change e belongs to pair
// e / 2: the even change INSERTs (channel "P<tag>-<pair>", user), the odd one DELETEs it.
// Both changes of a pair run on one connection, in order. The schedule is open-loop: change e
// is due at t0 + e / rate whatever happened before, so a slow commit delays nothing else.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace bench {

struct WriterOptions {
  std::string conninfo;
  std::string tag;
  double rate = 1000;  // changes per second, inserts and deletes together
  double secs = 10;
  int threads = 8;     // connections; each commit blocks its thread
  std::vector<std::string> users;
  uint64_t seed = 1;
};

struct Change {
  int64_t due_ns = 0;
  int64_t start_ns = 0;
  int64_t commit_ns = 0;  // when the autocommit INSERT/DELETE returned
  uint32_t user = 0;      // index into WriterOptions::users
  bool ok = false;
};

struct WriterResult {
  std::vector<Change> changes;
  uint64_t failures = 0;
  std::string first_error;
  double secs = 0;  // first due time to last commit
};

// The user a pair is written for.
uint32_t user_of_pair(uint64_t seed, uint64_t pair, size_t users);

// Connects, runs the schedule, disconnects. `on_start` runs just before the first change is
// due, `on_end` right after the last commit (before the connections close).
WriterResult run_writer(const WriterOptions& o, const std::function<void()>& on_start,
                        const std::function<void()>& on_end);

}  // namespace bench
