#include "replay_batch.h"

#include <algorithm>

namespace mn {

ReplayScan plan_replay_scan(const std::vector<StreamPosition>& positions) {
  ReplayScan scan;
  scan.from_xid = positions.front().base.xmax;
  for (const auto& p : positions) scan.from_xid = std::min(scan.from_xid, p.base.xmax);
  // A position's base misses its in-progress transactions and everything from its xmax on;
  // from its xmax on lies at or above from_xid.
  for (const auto& p : positions)
    for (uint64_t x : p.base.xip)
      if (x < scan.from_xid) scan.below.push_back(x);
  std::sort(scan.below.begin(), scan.below.end());
  scan.below.erase(std::unique(scan.below.begin(), scan.below.end()), scan.below.end());
  return scan;
}

ReplayRows::ReplayRows(std::vector<LogRow> rows) : rows_(std::move(rows)) {
  for (size_t i = 0; i < rows_.size(); ++i) {
    if (rows_[i].op == "t") truncates_.push_back(i);
    else if (rows_[i].user_id) by_user_[*rows_[i].user_id].push_back(i);
  }
}

Unseen ReplayRows::unseen_by(const std::string& user_id, const StreamPosition& pos) const {
  Unseen out;
  for (size_t i : truncates_) {
    if (!pos.has_seen(rows_[i].xid, rows_[i].id)) {
      out.truncated = true;
      return out;
    }
  }
  auto it = by_user_.find(user_id);
  if (it == by_user_.end()) return out;
  for (size_t i : it->second)
    if (!pos.has_seen(rows_[i].xid, rows_[i].id)) out.rows.push_back(rows_[i]);
  return out;
}

}  // namespace mn
