// Origin allow-list (--allowed-origins): which browser origins may open a socket.
//
// An entry is an exact origin, "https://app.example.com" (a port only if the origin has one),
// or a pattern whose host starts with "*.": "https://*.example.com" matches any subdomain of
// example.com (not example.com itself) over https; "*.example.com" over any scheme. Hosts
// compare case-insensitively. Browsers send Origin with every WebSocket upgrade; clients that
// are not browsers send none and are not judged by it (their token is what admits them).
// Pure string work, no I/O.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mn {

// Why `pattern` cannot be an entry, or nullopt when it can.
std::optional<std::string> origin_pattern_error(std::string_view pattern);

// Whether `origin` (the header's value) matches one of `allowed`. An empty list allows any.
bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed);

}  // namespace mn
