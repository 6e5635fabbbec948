// PgSnapshot: PostgreSQL's pg_snapshot ("xmin:xmax:xip,...") and its visibility rule, in pure
// code, so the read cursor and the resume logic can reason about transactions without a query.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mn {

struct PgSnapshot {
  uint64_t xmin = 0;           // every transaction below this had finished
  uint64_t xmax = 0;           // every transaction from this on had not started
  std::vector<uint64_t> xip;   // in progress at the time, sorted, all in [xmin, xmax)

  // Parses the text form; nullopt for anything PostgreSQL would not print.
  static std::optional<PgSnapshot> parse(std::string_view text);
  std::string to_string() const;

  // True when a transaction's effects (if it committed) are visible in this snapshot.
  // Same rule as pg_visible_in_snapshot().
  bool sees(uint64_t xid) const;

  // This snapshot with `xid` (which has committed) made visible; the transactions between
  // xmax and `xid` become in progress (not seen: conservative). nullopt when `xid` is
  // already visible, when that would add more than `max_added` in-progress entries, or for
  // the largest xid8 (xmax would wrap to 0).
  std::optional<PgSnapshot> with_committed(uint64_t xid, size_t max_added) const;

  // True when this snapshot sees every transaction `other` sees (as one taken after it does).
  bool covers(const PgSnapshot& other) const;

  // A snapshot that sees exactly what `a` or `b` sees: a client's position once it has had
  // both (a catch-up read in one, and events read after the other; hub.h).
  static PgSnapshot either(const PgSnapshot& a, const PgSnapshot& b);

  friend bool operator==(const PgSnapshot& a, const PgSnapshot& b) {
    return a.xmin == b.xmin && a.xmax == b.xmax && a.xip == b.xip;
  }
};

// Transaction ids as a PostgreSQL array literal, for a $n::xid8[] parameter.
std::string xid8_array(const std::vector<uint64_t>& xids);

}  // namespace mn
