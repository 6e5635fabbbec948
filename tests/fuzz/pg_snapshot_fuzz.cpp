// Fuzzes PgSnapshot::parse and the visibility algebra built on it. Snapshot text arrives from
// the database and, inside offsets, from clients.
// Input: "<snapshot a>|<snapshot b>|<xid>". Properties: nothing throws; a parsed snapshot is
// canonical (sorted, unique, inside [xmin, xmax)) and its text parses back to itself;
// either(a, b) sees exactly what a or b sees; covers() never claims a transaction the other
// sees and this one does not; with_committed(xid) sees xid and everything it saw before,
// and nothing else that it did not.
#include "pg_snapshot.h"
#include "fuzz_check.h"

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace {

void check_canonical(const mn::PgSnapshot& s) {
  FUZZ_CHECK(s.xmin > 0 && s.xmin <= s.xmax);
  FUZZ_CHECK(std::is_sorted(s.xip.begin(), s.xip.end()));
  FUZZ_CHECK(std::adjacent_find(s.xip.begin(), s.xip.end()) == s.xip.end());
  for (uint64_t x : s.xip) FUZZ_CHECK(x >= s.xmin && x < s.xmax);
  const auto back = mn::PgSnapshot::parse(s.to_string());
  FUZZ_CHECK(back && *back == s);
}

// The transactions where visibility can change: each bound and in-progress entry and its
// neighbours.
void add_probes(const mn::PgSnapshot& s, std::vector<uint64_t>& out) {
  auto around = [&out](uint64_t x) {
    out.push_back(x);
    if (x > 0) out.push_back(x - 1);
    if (x < UINT64_MAX) out.push_back(x + 1);
  };
  around(s.xmin);
  around(s.xmax);
  for (size_t i = 0; i < s.xip.size() && i < 64; ++i) around(s.xip[i]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto bar1 = in.find('|');
  const auto a = mn::PgSnapshot::parse(in.substr(0, bar1));
  if (a) check_canonical(*a);
  if (bar1 == std::string_view::npos || !a) return 0;
  const std::string_view rest = in.substr(bar1 + 1);
  const auto bar2 = rest.find('|');
  const auto b = mn::PgSnapshot::parse(rest.substr(0, bar2));
  if (!b) return 0;
  check_canonical(*b);

  std::vector<uint64_t> probes;
  add_probes(*a, probes);
  add_probes(*b, probes);

  const auto e = mn::PgSnapshot::either(*a, *b);
  FUZZ_CHECK(std::is_sorted(e.xip.begin(), e.xip.end()));
  for (uint64_t x : probes) FUZZ_CHECK(e.sees(x) == (a->sees(x) || b->sees(x)));

  if (a->covers(*b))
    for (uint64_t x : probes) FUZZ_CHECK(!b->sees(x) || a->sees(x));
  FUZZ_CHECK(e.covers(*a) && e.covers(*b));

  if (bar2 == std::string_view::npos) return 0;
  const std::string_view xid_text = rest.substr(bar2 + 1);
  uint64_t xid = 0;
  auto [p, ec] = std::from_chars(xid_text.data(), xid_text.data() + xid_text.size(), xid);
  if (ec != std::errc()) return 0;
  constexpr size_t kMaxAdded = 4096;
  const auto c = a->with_committed(xid, kMaxAdded);
  if (!c) {
    FUZZ_CHECK(a->sees(xid) || xid - a->xmax > kMaxAdded || xid == UINT64_MAX);
    return 0;
  }
  check_canonical(*c);
  probes.push_back(xid);
  for (uint64_t x : probes) {
    if (x == xid) FUZZ_CHECK(c->sees(x));
    else FUZZ_CHECK(c->sees(x) == a->sees(x));
  }
  FUZZ_CHECK(c->covers(*a));
  return 0;
}
