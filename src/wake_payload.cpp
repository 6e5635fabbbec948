#include "wake_payload.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <charconv>

namespace mn {
namespace {

constexpr size_t kKeyBytes = 32;
constexpr size_t kMacBytes = 32;
// "<xid>.<id>." and 64 hex digits: xid8 and bigint print in at most 20 characters each.
constexpr size_t kMaxPayload = 20 + 1 + 20 + 1 + 2 * kMacBytes;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::array<unsigned char, kMacBytes> mac_of(std::string_view message, std::string_view key) {
  std::array<unsigned char, kMacBytes> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
       message.size(), out.data(), &len);
  return out;
}

template <typename T>
bool parse_number(std::string_view s, T& out) {
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return false;  // one spelling per number
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::optional<std::string> parse_wake_key(std::string_view hex) {
  if (hex.size() != 2 * kKeyBytes) return std::nullopt;
  std::string key(kKeyBytes, '\0');
  for (size_t i = 0; i < kKeyBytes; ++i) {
    int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    key[i] = static_cast<char>(hi * 16 + lo);
  }
  return key;
}

std::optional<WakeUp> verify_wake_payload(std::string_view payload, std::string_view key) {
  if (key.size() != kKeyBytes || payload.size() > kMaxPayload) return std::nullopt;
  const auto mac_dot = payload.rfind('.');
  if (mac_dot == std::string_view::npos || payload.size() - mac_dot - 1 != 2 * kMacBytes) return std::nullopt;
  const auto message = payload.substr(0, mac_dot);
  const auto id_dot = message.find('.');
  if (id_dot == std::string_view::npos) return std::nullopt;
  WakeUp w;
  if (!parse_number(message.substr(0, id_dot), w.xid) || !parse_number(message.substr(id_dot + 1), w.id) ||
      w.xid == 0 || w.id < 0)
    return std::nullopt;
  std::array<unsigned char, kMacBytes> given{};
  for (size_t i = 0; i < kMacBytes; ++i) {
    int hi = hex_digit(payload[mac_dot + 1 + 2 * i]), lo = hex_digit(payload[mac_dot + 2 + 2 * i]);
    if (hi < 0 || lo < 0) return std::nullopt;
    given[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  const auto expected = mac_of(message, key);
  if (CRYPTO_memcmp(given.data(), expected.data(), kMacBytes) != 0) return std::nullopt;
  return w;
}

std::string sign_wake_payload(const WakeUp& w, std::string_view key) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string message = std::to_string(w.xid) + "." + std::to_string(w.id);
  const auto mac = mac_of(message, key);
  std::string out = message + ".";
  for (unsigned char b : mac) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

}  // namespace mn
