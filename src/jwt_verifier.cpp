// JWT verification: libjwt 1.10 checks the signature, everything around it is ours.
//
// What libjwt 1.10.2 (Debian 12) does on its own, seen by calling jwt_decode() directly:
//  - an empty key turns verification off: with key_len 0 it accepts `alg: none` and also
//    any HS256/RS256 token with a garbage signature (it resets the alg to none);
//  - it takes the alg from the token, so a verifier holding an RSA/EC public PEM accepts
//    an HS256 token HMAC-signed with that PEM as the secret (alg confusion);
//  - alg names are compared case-insensitively ("hs256" passes), `crit` is ignored;
//  - no claim is checked: expired tokens pass;
//  - an empty header, payload or (RS/ES) signature part makes it write one byte past a
//    malloc(0) block (valgrind: base64_decode_block), and its base64 decoder skips
//    characters outside the alphabet, so junk appended to an ES256 signature still passes.
// ES256 itself works: it converts the raw r||s JWS signature to DER before calling
// OpenSSL, and tokens minted by OpenSSL directly verify. So libjwt does all three
// algorithms, and the holes are closed here, before and after it. (Its HMAC comparison
// is constant-time only through Debian's CVE-2024-25189 patch, jwt_strcmp.)
#include "jwt_verifier.h"

#include <jwt.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

namespace mn {
namespace {

using nlohmann::json;

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using JwtPtr = std::unique_ptr<jwt_t, Deleter<jwt_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;

JwtOutcome refuse(const char* error) { return JwtOutcome{false, {}, error, std::nullopt}; }

jwt_alg_t libjwt_alg(JwtAlgorithm a) {
  return a == JwtAlgorithm::HS256   ? JWT_ALG_HS256
         : a == JwtAlgorithm::RS256 ? JWT_ALG_RS256
                                    : JWT_ALG_ES256;
}

int b64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// Strict on purpose: libjwt's decoder is lenient, so only the one canonical spelling of
// each part (unpadded, no stray characters, zero trailing bits) may reach it. Otherwise
// many token strings would carry the same signature.
std::optional<std::string> b64url_decode(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3 + 2);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = b64url_value(c);
    if (v < 0) return std::nullopt;
    acc = ((acc << 6) | static_cast<std::uint32_t>(v)) & 0xFFFFFFu;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFFu));
    }
  }
  if ((acc & ((1u << bits) - 1u)) != 0) return std::nullopt;
  return out;
}

std::optional<json> parse_object(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;  // also covers a parse error (discarded)
  return j;
}

// JSON numbers only (a bool is not a number here); doubles so that fractional and huge
// values compare sanely instead of overflowing a time_point.
std::optional<double> numeric_date(const json& claims, const char* name, bool& present) {
  const auto it = claims.find(name);
  present = it != claims.end();
  if (!present || !it->is_number()) return std::nullopt;
  const double v = it->get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

// libjwt's own test is strcasecmp(typ, "JWT"); this is the same, minus the locale.
bool typ_is_jwt(const std::string& t) {
  return t.size() == 3 && (t[0] | 0x20) == 'j' && (t[1] | 0x20) == 'w' && (t[2] | 0x20) == 't';
}

// The same parser libjwt uses (PEM_read_bio_PUBKEY), so whatever passes here is exactly
// what libjwt will load on every verify.
PkeyPtr read_public_key(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return PkeyPtr(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
}

std::size_t check_public_key(JwtAlgorithm alg, const std::string& pem) {
  // A verifier never needs the signing key; holding it would only widen the blast radius.
  if (pem.find("PRIVATE KEY") != std::string::npos) {
    throw std::invalid_argument("JWT key must be a public key, not a private key");
  }
  const auto key = read_public_key(pem);
  if (!key) {
    throw std::invalid_argument("JWT key is not a readable 'BEGIN PUBLIC KEY' PEM");
  }
  if (alg == JwtAlgorithm::RS256) {
    if (EVP_PKEY_get_id(key.get()) != EVP_PKEY_RSA) {
      throw std::invalid_argument("JWT key is not an RSA public key (RS256)");
    }
    if (EVP_PKEY_get_bits(key.get()) < 2048) {
      throw std::invalid_argument("JWT RSA key is shorter than 2048 bits");
    }
    return static_cast<std::size_t>(EVP_PKEY_get_size(key.get()));
  }
  // libjwt checks only that the key is EC; ES256 means P-256 and nothing else.
  char group[64] = {};
  std::size_t group_len = 0;
  if (EVP_PKEY_get_id(key.get()) != EVP_PKEY_EC ||
      EVP_PKEY_get_group_name(key.get(), group, sizeof group, &group_len) != 1 ||
      std::string_view(group, group_len) != "prime256v1") {
    throw std::invalid_argument("JWT key is not an EC P-256 public key (ES256)");
  }
  return 64;
}

// Claims come from our own parse of the payload: libjwt checks none of them. (libjwt
// parses the payload as well, with jansson, which refuses integers beyond int64 and
// \u0000 in strings; such tokens fail in jwt_decode and read as "bad signature".)
JwtOutcome check_claims(const json& claims, const JwtSettings& s,
                        std::chrono::system_clock::time_point now) {
  const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
  const auto leeway = static_cast<double>(s.leeway.count());
  bool present = false;
  const auto exp = numeric_date(claims, "exp", present);
  if (present && !exp) return refuse("malformed token");
  if (!present && s.require_exp) return refuse("missing expiry");
  if (exp && now_s > *exp + leeway) return refuse("token expired");
  const auto nbf = numeric_date(claims, "nbf", present);
  if (present && !nbf) return refuse("malformed token");
  if (nbf && now_s + leeway < *nbf) return refuse("token not yet valid");

  if (!s.issuer.empty()) {
    const auto iss = claims.find("iss");
    if (iss == claims.end() || !iss->is_string() ||
        iss->get_ref<const std::string&>() != s.issuer) {
      return refuse("issuer mismatch");
    }
  }
  if (!s.audience.empty()) {
    const auto aud = claims.find("aud");
    bool match = false;
    if (aud != claims.end() && aud->is_string()) {
      match = aud->get_ref<const std::string&>() == s.audience;
    } else if (aud != claims.end() && aud->is_array()) {
      for (const auto& a : *aud) {
        match = match || (a.is_string() && a.get_ref<const std::string&>() == s.audience);
      }
    }
    if (!match) return refuse("audience mismatch");
  }

  const auto user = claims.find(s.user_claim);
  if (user == claims.end() || user->is_null()) return refuse("missing user claim");
  std::string user_id;
  if (user->is_string()) {
    user_id = user->get<std::string>();
  } else if (user->is_number_unsigned()) {
    user_id = std::to_string(user->get<std::uint64_t>());
  } else if (user->is_number_integer()) {
    user_id = std::to_string(user->get<std::int64_t>());
  } else {
    return refuse("invalid user claim");
  }
  if (user_id.empty()) return refuse("missing user claim");
  // The id ends up in logs and in C-string APIs: a NUL or control character there would
  // truncate or forge lines.
  for (const char c : user_id) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return refuse("invalid user claim");
  }
  JwtOutcome ok{true, std::move(user_id), {}, std::nullopt};
  if (exp) ok.valid_until = *exp + leeway;
  return ok;
}

}  // namespace

std::optional<JwtAlgorithm> parse_jwt_algorithm(std::string_view name) {
  if (name == "HS256") return JwtAlgorithm::HS256;
  if (name == "RS256") return JwtAlgorithm::RS256;
  if (name == "ES256") return JwtAlgorithm::ES256;
  return std::nullopt;
}

std::string_view jwt_algorithm_name(JwtAlgorithm algorithm) {
  switch (algorithm) {
    case JwtAlgorithm::HS256:
      return "HS256";
    case JwtAlgorithm::RS256:
      return "RS256";
    case JwtAlgorithm::ES256:
      return "ES256";
  }
  return "?";
}

JwtVerifier::JwtVerifier(JwtSettings settings) : settings_(std::move(settings)) {
  const std::string& key = settings_.key;
  if (key.empty()) throw std::invalid_argument("JWT key is empty");
  if (key.size() > static_cast<std::size_t>(INT_MAX))
    throw std::invalid_argument("JWT key too large");
  if (settings_.user_claim.empty()) throw std::invalid_argument("JWT user claim name is empty");
  if (settings_.leeway.count() < 0) throw std::invalid_argument("JWT leeway is negative");
  if (settings_.algorithm == JwtAlgorithm::HS256) {
    // A PEM as HMAC secret means the operator configured a public key under the wrong
    // algorithm: anyone holding that public key could mint tokens.
    if (key.find("-----BEGIN") != std::string::npos) {
      throw std::invalid_argument("JWT HS256 secret is a PEM key; use RS256/ES256 for key pairs");
    }
    if (key.size() < kMinHs256SecretBytes) {
      throw std::invalid_argument("JWT HS256 secret is only " + std::to_string(key.size()) +
                                  " bytes long; at least 32 are needed (RFC 7518 section 3.2), e.g. "
                                  "`head -c 48 /dev/urandom | base64`");
    }
    signature_bytes_ = 32;
  } else {
    signature_bytes_ = check_public_key(settings_.algorithm, key);
  }
  ERR_clear_error();
}

JwtOutcome JwtVerifier::verify(std::string_view token,
                               std::chrono::system_clock::time_point now) const noexcept {
  try {
    return verify_unchecked(token, now);
  } catch (...) {  // bad_alloc, or a json type error we did not foresee: refuse, never crash
    return refuse("internal error");
  }
}

JwtOutcome JwtVerifier::verify_unchecked(std::string_view token,
                                         std::chrono::system_clock::time_point now) const {
  if (token.size() > kMaxTokenBytes) return refuse("token too large");

  // Exactly three parts, none empty: libjwt writes out of bounds on an empty one.
  const std::size_t dot1 = token.find('.');
  const std::size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return refuse("malformed token");
  }
  const std::string_view head_b64 = token.substr(0, dot1);
  const std::string_view body_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view sig_b64 = token.substr(dot2 + 1);
  if (head_b64.empty() || body_b64.empty()) return refuse("malformed token");
  const auto head_bytes = b64url_decode(head_b64);
  const auto header = head_bytes ? parse_object(*head_bytes) : std::nullopt;
  if (!header) return refuse("malformed token");

  // Pin the algorithm before libjwt sees the token: libjwt trusts the header's alg, which
  // is what makes `none` and HS256-with-the-public-PEM work against it.
  const auto alg = header->find("alg");
  if (alg == header->end() || !alg->is_string() ||
      alg->get_ref<const std::string&>() != jwt_algorithm_name(settings_.algorithm)) {
    return refuse("algorithm not allowed");
  }
  // RFC 7515 4.1.11: extensions listed in crit must be understood; we understand none.
  if (header->contains("crit")) return refuse("unsupported header");
  // libjwt refuses any typ but "JWT" (any case); say so instead of "bad signature".
  const auto typ = header->find("typ");
  if (typ != header->end() &&
      !(typ->is_string() && typ_is_jwt(typ->get_ref<const std::string&>()))) {
    return refuse("unsupported token type");
  }

  const auto body_bytes = b64url_decode(body_b64);
  const auto claims = body_bytes ? parse_object(*body_bytes) : std::nullopt;
  if (!claims) return refuse("malformed token");
  const auto sig_bytes = b64url_decode(sig_b64);
  if (sig_b64.empty() || !sig_bytes) return refuse("malformed token");
  // OpenSSL takes RSA signatures shorter than the modulus as if zero-padded: one spelling only.
  if (sig_bytes->size() != signature_bytes_) return refuse("bad signature");

  const std::string token_z(token);  // libjwt wants a NUL-terminated string
  jwt_t* raw = nullptr;
  const int rc = jwt_decode(&raw, token_z.c_str(),
                            reinterpret_cast<const unsigned char*>(settings_.key.data()),
                            static_cast<int>(settings_.key.size()));
  const JwtPtr decoded(raw);
  // libjwt leaves OpenSSL errors queued on failure; the queue is per thread and a stale
  // entry would be misread by the next TLS call (SSL_get_error) on this thread.
  ERR_clear_error();
  if (rc != 0 || !decoded) return refuse("bad signature");
  // Belt and braces: if libjwt ever read the header differently from us, it must still
  // have verified with the pinned algorithm (with an empty key it would report none).
  if (jwt_get_alg(decoded.get()) != libjwt_alg(settings_.algorithm)) {
    return refuse("algorithm not allowed");
  }

  return check_claims(*claims, settings_, now);
}

}  // namespace mn
