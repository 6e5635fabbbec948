#include "origin_policy.h"

#include <algorithm>
#include <cctype>

namespace mn {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == ':' || c == '[' || c == ']';
}

struct Split {
  std::string scheme;  // empty: any (patterns only)
  std::string host;    // with ":port" if given
};

// "scheme://host[:port]" or, for patterns, "host" alone; nullopt if neither.
std::optional<Split> split(std::string_view s, bool pattern) {
  Split out;
  auto sep = s.find("://");
  if (sep != std::string_view::npos) {
    out.scheme = lower(s.substr(0, sep));
    if (out.scheme.empty() ||
        !std::all_of(out.scheme.begin(), out.scheme.end(), [](char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.'; }))
      return std::nullopt;
    s.remove_prefix(sep + 3);
  } else if (!pattern) {
    return std::nullopt;
  }
  std::string_view host = s;
  if (pattern && host.rfind("*.", 0) == 0) host.remove_prefix(2);
  if (host.empty() || !std::all_of(host.begin(), host.end(), host_char)) return std::nullopt;
  out.host = lower(s);
  return out;
}

bool matches(const Split& origin, const Split& entry) {
  if (!entry.scheme.empty() && entry.scheme != origin.scheme) return false;
  if (entry.host.rfind("*.", 0) == 0) {
    std::string_view suffix(entry.host);
    suffix.remove_prefix(1);  // ".example.com"
    return origin.host.size() > suffix.size() &&
           origin.host.compare(origin.host.size() - suffix.size(), suffix.size(), suffix) == 0;
  }
  return origin.host == entry.host;
}

}  // namespace

std::optional<std::string> origin_pattern_error(std::string_view pattern) {
  if (pattern == "*") return "'*' would allow every origin; leave the list empty for that";
  auto s = split(pattern, true);
  if (!s) return "'" + std::string(pattern) + "' is neither scheme://host[:port] nor *.domain";
  if (s->scheme.empty() && s->host.rfind("*.", 0) != 0)
    return "'" + std::string(pattern) + "' needs a scheme (https://" + std::string(pattern) + ") or a *. prefix";
  if (s->host.find('*', 1) != std::string::npos) return "'" + std::string(pattern) + "': '*' only as the first label";
  return std::nullopt;
}

bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed) {
  if (allowed.empty()) return true;
  auto o = split(origin, false);
  if (!o || o->host.find('*') != std::string::npos) return false;
  for (const auto& entry : allowed) {
    auto e = split(entry, true);
    if (e && matches(*o, *e)) return true;
  }
  return false;
}

}  // namespace mn
