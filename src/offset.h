// Offset: a client's durable resume position in the event log, as an opaque string.
//
// A position says which rows of the client's user it has seen: every row visible in snapshot
// `base`, and every row visible in snapshot `upto` whose id is <= `last_id`. That is exact for
// a batch read between two snapshots and delivered in id order, and it needs no process
// memory: any instance connected to the same database can resume it, after any restart.
// `log_id` names the log (a uuid made by the migration) so an offset from another database,
// or from before a restore, is refused instead of misread.
#pragma once

#include "pg_snapshot.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mn {

struct StreamPosition {
  PgSnapshot base;
  PgSnapshot upto;
  int64_t last_id = 0;

  // True when the row (transaction xid, log id) is already behind this position.
  bool has_seen(uint64_t xid, int64_t id) const {
    return base.sees(xid) || (upto.sees(xid) && id <= last_id);
  }
};

struct Offset {
  std::string log_id;
  StreamPosition pos;
  // The server's timeline when the position was handed out; 0 in offsets from before
  // timelines were recorded (taken as the current one). Another timeline's offset is resumed
  // only where that timeline's history is known to reach past it (history.cpp).
  uint32_t timeline = 0;
};

// URL-safe text: digits, letters, '-', '_', '.'; no percent-encoding needed in a query string.
std::string encode_offset(const Offset&);
// nullopt for anything encode_offset could not have produced.
std::optional<Offset> decode_offset(std::string_view);

}  // namespace mn
