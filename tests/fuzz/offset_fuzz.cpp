// Fuzzes decode_offset: the resume offset comes from the client (query string, Socket.IO
// CONNECT auth, pid), before its position is trusted.
// Properties: nothing throws; whatever decodes re-encodes to URL-safe text that decodes to
// the same offset, and encoding is stable from then on; a decoded position is sane (xmin > 0,
// xip inside [xmin, xmax), upto not older than base, last_id >= 0).
#include "offset.h"
#include "fuzz_check.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

bool same(const mn::Offset& a, const mn::Offset& b) {
  return a.log_id == b.log_id && a.pos.base == b.pos.base && a.pos.upto == b.pos.upto &&
         a.pos.last_id == b.pos.last_id;
}

void check_snapshot(const mn::PgSnapshot& s) {
  FUZZ_CHECK(s.xmin > 0 && s.xmin <= s.xmax);
  FUZZ_CHECK(std::is_sorted(s.xip.begin(), s.xip.end()));
  FUZZ_CHECK(std::adjacent_find(s.xip.begin(), s.xip.end()) == s.xip.end());
  for (uint64_t x : s.xip) FUZZ_CHECK(x >= s.xmin && x < s.xmax);
}

bool url_safe(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == '_' || c == '.';
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto o = mn::decode_offset(in);
  if (!o) return 0;
  check_snapshot(o->pos.base);
  check_snapshot(o->pos.upto);
  FUZZ_CHECK(o->pos.last_id >= 0);
  FUZZ_CHECK(o->pos.upto.xmax >= o->pos.base.xmax && o->pos.upto.xmin >= o->pos.base.xmin);

  const std::string text = mn::encode_offset(*o);
  FUZZ_CHECK(url_safe(text));
  FUZZ_CHECK(text.size() <= in.size());  // encoding is canonical: never longer than any spelling
  const auto again = mn::decode_offset(text);
  FUZZ_CHECK(again && same(*again, *o));
  FUZZ_CHECK(mn::encode_offset(*again) == text);
  return 0;
}
