#include "pg_snapshot.h"

#include <algorithm>
#include <charconv>

namespace mn {
namespace {

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::optional<PgSnapshot> PgSnapshot::parse(std::string_view text) {
  auto c1 = text.find(':');
  if (c1 == std::string_view::npos) return std::nullopt;
  auto c2 = text.find(':', c1 + 1);
  if (c2 == std::string_view::npos) return std::nullopt;
  PgSnapshot s;
  if (!parse_u64(text.substr(0, c1), s.xmin) || !parse_u64(text.substr(c1 + 1, c2 - c1 - 1), s.xmax))
    return std::nullopt;
  if (s.xmin == 0 || s.xmin > s.xmax) return std::nullopt;
  std::string_view rest = text.substr(c2 + 1);
  while (!rest.empty()) {
    auto comma = rest.find(',');
    uint64_t x = 0;
    if (!parse_u64(rest.substr(0, comma), x) || x < s.xmin || x >= s.xmax) return std::nullopt;
    s.xip.push_back(x);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
    if (rest.empty()) return std::nullopt;
  }
  if (s.xip.size() > 100000) return std::nullopt;
  std::sort(s.xip.begin(), s.xip.end());
  s.xip.erase(std::unique(s.xip.begin(), s.xip.end()), s.xip.end());
  return s;
}

std::string PgSnapshot::to_string() const {
  std::string out = std::to_string(xmin) + ":" + std::to_string(xmax) + ":";
  for (size_t i = 0; i < xip.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(xip[i]);
  }
  return out;
}

bool PgSnapshot::sees(uint64_t xid) const {
  if (xid < xmin) return true;
  if (xid >= xmax) return false;
  return !std::binary_search(xip.begin(), xip.end(), xid);
}

std::optional<PgSnapshot> PgSnapshot::with_committed(uint64_t xid, size_t max_added) const {
  if (sees(xid)) return std::nullopt;
  PgSnapshot out = *this;
  if (xid < xmax) {
    out.xip.erase(std::lower_bound(out.xip.begin(), out.xip.end(), xid));
    return out;
  }
  // The last xid8 has no successor to become xmax: not representable, like a gap too wide.
  if (xid - xmax > max_added || xid == UINT64_MAX) return std::nullopt;
  for (uint64_t x = xmax; x < xid; ++x) out.xip.push_back(x);
  out.xmax = xid + 1;
  return out;
}

bool PgSnapshot::covers(const PgSnapshot& other) const {
  // What this one does not see: its in-progress list, and everything from its xmax on. (An
  // xmax below other's is answered "no" even when other saw nothing in between: a
  // conservative answer, which only costs the caller the general path.)
  if (xmax < other.xmax) return false;
  return std::none_of(xip.begin(), xip.end(), [&other](uint64_t x) { return other.sees(x); });
}

PgSnapshot PgSnapshot::either(const PgSnapshot& a, const PgSnapshot& b) {
  const PgSnapshot& hi = a.xmax >= b.xmax ? a : b;
  const PgSnapshot& lo = a.xmax >= b.xmax ? b : a;
  // Below hi's xmax, hi misses only its in-progress list; from it on, both miss everything.
  PgSnapshot out;
  out.xmax = hi.xmax;
  for (uint64_t x : hi.xip)
    if (!lo.sees(x)) out.xip.push_back(x);
  // Both saw everything below the lower xmin. (Any xmin up to the first in-progress one would
  // see the same; the lower keeps it under that of a snapshot taken after either, as an
  // offset's two snapshots must be.)
  out.xmin = std::min(a.xmin, b.xmin);
  return out;
}

std::string xid8_array(const std::vector<uint64_t>& xids) {
  std::string out = "{";
  for (size_t i = 0; i < xids.size(); ++i) out += (i ? "," : "") + std::to_string(xids[i]);
  return out + "}";
}

}  // namespace mn
