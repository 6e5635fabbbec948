// RequestTarget: the path and query parameters of an HTTP request line ("/ws?access_token=..").
// Pure; the handshake code takes the token and offset from here.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace mn {

struct RequestTarget {
  std::string path;
  std::multimap<std::string, std::string> query;  // percent-decoded

  static RequestTarget parse(std::string_view target);
  // The parameter's value when it appears exactly once; nullopt when absent or repeated
  // (a repeated token or offset is ambiguous, and ambiguity in auth is refused).
  std::optional<std::string> single(const std::string& key) const;
  bool has(const std::string& key) const { return query.count(key) > 0; }
};

// Decodes %XX and '+'; nullopt for a malformed escape.
std::optional<std::string> percent_decode(std::string_view s);

}  // namespace mn
