// Event: one row of membership_notifier.event_log, what it means to a client, and the batch of
// rows one read of the log returns. Pure mapping, no I/O: unit-tested on its own.
#pragma once

#include "pg_snapshot.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mn {

// A log row as read from the database; text columns may be NULL.
struct LogRow {
  int64_t id = 0;
  uint64_t xid = 0;
  std::string op;                        // "j" joined, "l" left, "t" truncated
  std::optional<std::string> channel_id;
  std::optional<std::string> user_id;
  std::optional<std::string> xtype;
  int64_t occurred_at_us = 0;            // microseconds since the Unix epoch, UTC
};

// Rows that committed between two reads, in id order. `reset` means the cursor could not
// continue (first read against a different log: restored or another database, or a failover
// that lost delivered changes): clients must resynchronise from the current state.
struct Batch {
  PgSnapshot from;
  PgSnapshot to;
  // A read of the log (not a wake-up's payload): every row `to` sees has now been handed over,
  // so `to` is a position any live session has reached. Reads that found nothing come too.
  bool read = false;
  std::vector<LogRow> rows;
  std::string log_id;
  uint32_t timeline = 1;  // of the server read: event ids carry it past timeline 1
  bool reset = false;
};

class PgResult;  // pg_connection.h
// Parses one result row of the reader's read or of a replay (columns 1..7: id, xid, op,
// channel_id, user_id, xtype, occurred_at in microseconds); nullopt when malformed.
std::optional<LogRow> parse_row(const PgResult& r, int row);

enum class EventKind { joined, left, truncated };

struct Event {
  EventKind kind = EventKind::joined;
  int64_t id = 0;
  uint64_t xid = 0;
  std::string user_id;    // the room; empty for truncated
  std::string name;       // "channel.joined" / "channel.left"
  std::string data_json;  // {"channelId":..,"userId":..,"xType":..,"occurredAt":..}, serialised once
};

// Maps a row, or says why it cannot be mapped (the caller logs, counts and skips it:
// one bad row must not stop the stream for everyone else). Without `encode`, the event's
// data_json is left empty and a row is checked as far as that can be done without encoding
// it (what no socket here will receive need not be: most rows, under load).
struct MapOutcome {
  std::optional<Event> event;
  std::string error;
};
MapOutcome map_row(const LogRow& row, bool encode = true);

// Makes the times of each transaction's rows distinct and increasing in id order. The log
// keeps clock_timestamp() per row (claiming distinct times in the trigger cost the
// application's writes too much), and rows of one statement can share a microsecond. Per
// transaction, each row gets its own time or one microsecond after the row before it,
// whichever is later: t(r) = r + max over k <= r of (stored(k) - k), rows ranked r = 1, 2, ...
// by id. `rows` must be sorted by id and hold every row of each transaction in it (a read
// of the log does: a transaction's rows become visible together). The replay SQL in
// history.cpp computes the same in the database.
void make_times_distinct(std::vector<LogRow>& rows);

// How many transactions `rows` hold, leaving out those `skip` says (the adaptive wake-up's
// commit count). Rows of concurrent transactions interleave in id order; each counts once.
template <typename Skip>
size_t count_transactions(const std::vector<LogRow>& rows, Skip skip) {
  std::vector<uint64_t> xids;
  xids.reserve(rows.size());
  for (const auto& row : rows)
    if (!skip(row.xid)) xids.push_back(row.xid);
  std::sort(xids.begin(), xids.end());
  return static_cast<size_t>(std::unique(xids.begin(), xids.end()) - xids.begin());
}

// 2026-11-26T16:00:00.123456Z
std::string format_utc_micros(int64_t micros_since_epoch);

}  // namespace mn
