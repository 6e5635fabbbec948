// Replay batch: the resumes of many clients answered by one read of the log.
//
// A resume reads every log row since the client's position, whoever's it is (an index on the
// log's user column would cost every application write), and keeps its user's. A reconnect
// wave (a sidecar restart, a failover, a network blip) brings every client back at once, and one
// query each would read the same stretch of log once per client, one client after the other:
// the last of N clients would wait for N reads. So the resumes waiting for a query share one:
// it reads the rows that any of their positions has not seen, for all of their users, and each
// client takes from them the rows its own position has not seen.
//
// Pure: the query is history.cpp's.
#pragma once

#include "event.h"
#include "offset.h"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace mn {

// Which transactions one read must cover so that no position of the batch misses a row.
struct ReplayScan {
  uint64_t from_xid = 0;        // every transaction from this id on (no position saw them)
  std::vector<uint64_t> below;  // and these below it: in progress at some position's base;
                                // sorted, distinct
};

// `positions` must not be empty.
ReplayScan plan_replay_scan(const std::vector<StreamPosition>& positions);

struct Unseen {
  std::vector<LogRow> rows;  // the user's rows the position has not seen, in id order
  bool truncated = false;    // a TRUNCATE the position has not seen: it cannot be resumed
};

// The rows of one read that covered plan_replay_scan() of a batch: its users' rows and
// TRUNCATE rows, in id order. Indexed by user, so that a thousand clients each take theirs
// without going through everyone's.
class ReplayRows {
 public:
  explicit ReplayRows(std::vector<LogRow> rows);
  // What `user_id`, at `pos` (one of the batch's positions), has not seen.
  Unseen unseen_by(const std::string& user_id, const StreamPosition& pos) const;

 private:
  std::vector<LogRow> rows_;
  std::unordered_map<std::string, std::vector<size_t>> by_user_;
  std::vector<size_t> truncates_;
};

}  // namespace mn
