// Fuzzes JwtVerifier::verify (HS256): the token is the first thing an unauthenticated client
// sends. libjwt runs on every token that passes our own checks, so its parser is fuzzed too.
// Input mode (first byte): 0 - the rest is a raw token; 1 - the rest is "<header>\n<claims>",
// encoded and correctly signed; 2 - the rest is a user id, in an otherwise valid token.
// Properties: nothing throws or crashes; refusals carry one of a few fixed reasons (never
// the token); an accepted token had the pinned alg and yields exactly its user claim; a
// correctly signed, unexpired token with a usable user id is always accepted.
#include "jwt_verifier.h"
#include "fuzz_check.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

namespace {

using nlohmann::json;

const std::string kSecret = "fuzz-secret-0123456789abcdefghijklmnopqrstuvwxyz";
const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1798761600));  // 2027-01-01

std::string b64url(std::string_view in) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += a[(v >> s) & 63];
  }
  if (in.size() - i == 1) {
    const uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    out += a[(v >> 18) & 63];
    out += a[(v >> 12) & 63];
  } else if (in.size() - i == 2) {
    const uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8);
    out += a[(v >> 18) & 63];
    out += a[(v >> 12) & 63];
    out += a[(v >> 6) & 63];
  }
  return out;
}

std::string sign(std::string_view header, std::string_view claims) {
  const std::string input = b64url(header) + "." + b64url(claims);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + b64url(std::string_view(reinterpret_cast<const char*>(mac), len));
}

const mn::JwtVerifier& verifier() {
  static const mn::JwtVerifier v([] {
    mn::JwtSettings s;
    s.key = kSecret;
    s.leeway = std::chrono::seconds(0);
    return s;
  }());
  return v;
}

mn::JwtOutcome check(std::string_view token) {
  const auto out = verifier().verify(token, kNow);
  if (out.ok) {
    FUZZ_CHECK(out.error.empty() && !out.user_id.empty());
    for (char c : out.user_id) FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7F);
  } else {
    FUZZ_CHECK(out.user_id.empty() && !out.error.empty());
    static std::set<std::string> reasons;
    reasons.insert(out.error);
    FUZZ_CHECK(reasons.size() <= 16);
  }
  return out;
}

bool usable_user(const std::string& u) {
  if (u.empty() || !mn::fuzz::is_utf8(u)) return false;
  for (char c : u)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0:
      check(rest);
      break;
    case 1: {
      const auto nl = rest.find('\n');
      if (nl == std::string_view::npos) return 0;
      const std::string_view header = rest.substr(0, nl), claims = rest.substr(nl + 1);
      const auto out = check(sign(header, claims));
      if (out.ok) {
        const auto h = json::parse(header, nullptr, false);
        const auto c = json::parse(claims, nullptr, false);
        FUZZ_CHECK(h.is_object() && h["alg"] == "HS256" && !h.contains("crit"));
        FUZZ_CHECK(c.is_object() && c.contains("exp") && c.contains("sub"));
        const auto& sub = c["sub"];
        FUZZ_CHECK(sub.is_string() ? sub.get<std::string>() == out.user_id
                                   : sub.is_number_integer() && json::parse(out.user_id) == sub);
      }
      break;
    }
    default: {
      const std::string user(rest);
      if (!mn::fuzz::is_utf8(user)) return 0;
      const json claims = {{"sub", user}, {"exp", 1798761600 + 3600}};
      const auto out = check(sign(R"({"alg":"HS256","typ":"JWT"})", claims.dump()));
      FUZZ_CHECK(out.ok == usable_user(user));
      if (out.ok) FUZZ_CHECK(out.user_id == user);
      break;
    }
  }
  return 0;
}
