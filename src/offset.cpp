#include "offset.h"

#include <algorithm>
#include <charconv>
#include <vector>

namespace mn {
namespace {

// PgSnapshot's text uses ':' and ','; inside an offset they become '-' and '_'.
std::string snapshot_token(const PgSnapshot& s) {
  std::string t = s.to_string();
  std::replace(t.begin(), t.end(), ':', '-');
  std::replace(t.begin(), t.end(), ',', '_');
  return t;
}

std::optional<PgSnapshot> parse_snapshot_token(std::string_view t) {
  std::string s(t);
  std::replace(s.begin(), s.end(), '-', ':');
  std::replace(s.begin(), s.end(), '_', ',');
  return PgSnapshot::parse(s);
}

bool is_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    char c = s[i];
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string encode_offset(const Offset& o) {
  if (o.timeline == 0)
    return "1." + o.log_id + "." + snapshot_token(o.pos.base) + "." + snapshot_token(o.pos.upto) + "." +
           std::to_string(o.pos.last_id);
  return "2." + o.log_id + "." + std::to_string(o.timeline) + "." + snapshot_token(o.pos.base) + "." +
         snapshot_token(o.pos.upto) + "." + std::to_string(o.pos.last_id);
}

std::optional<Offset> decode_offset(std::string_view text) {
  if (text.size() > 4096) return std::nullopt;
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    auto dot = text.find('.', start);
    parts.push_back(text.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  // Version 1 had no timeline: "1.<log>.<base>.<upto>.<id>"; version 2 has it after the log.
  if (parts.size() == 6 && parts[0] == "2") {
    auto& tl = parts[2];
    uint32_t timeline = 0;
    auto [tp, tec] = std::from_chars(tl.data(), tl.data() + tl.size(), timeline);
    if (tec != std::errc() || tp != tl.data() + tl.size() || timeline == 0) return std::nullopt;
    parts.erase(parts.begin() + 2);
    auto o = decode_offset("1." + std::string(parts[1]) + "." + std::string(parts[2]) + "." + std::string(parts[3]) +
                           "." + std::string(parts[4]));
    if (o) o->timeline = timeline;
    return o;
  }
  if (parts.size() != 5 || parts[0] != "1" || !is_uuid(parts[1])) return std::nullopt;
  Offset o;
  o.log_id = std::string(parts[1]);
  auto base = parse_snapshot_token(parts[2]);
  auto upto = parse_snapshot_token(parts[3]);
  if (!base || !upto) return std::nullopt;
  // upto is never older than base.
  if (upto->xmax < base->xmax || upto->xmin < base->xmin) return std::nullopt;
  auto& id = parts[4];
  auto [p, ec] = std::from_chars(id.data(), id.data() + id.size(), o.pos.last_id);
  if (ec != std::errc() || p != id.data() + id.size() || o.pos.last_id < 0) return std::nullopt;
  o.pos.base = std::move(*base);
  o.pos.upto = std::move(*upto);
  return o;
}

}  // namespace mn
