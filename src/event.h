// Event: one row of membership_notifier.event_log, and what it means to a client.
// Pure mapping, no I/O: unit-tested and fuzzed on its own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

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
// one bad row must not stop the stream for everyone else).
struct MapOutcome {
  std::optional<Event> event;
  std::string error;
};
MapOutcome map_row(const LogRow& row);

// 2026-11-26T16:00:00.123456Z
std::string format_utc_micros(int64_t micros_since_epoch);

}  // namespace mn
