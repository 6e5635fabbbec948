// JwtVerifier: checks a client's token and says which user it proves.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace mn {

enum class JwtAlgorithm { HS256, RS256, ES256 };

// Exact, case-sensitive JOSE names only: "HS256", "RS256", "ES256".
std::optional<JwtAlgorithm> parse_jwt_algorithm(std::string_view name);
std::string_view jwt_algorithm_name(JwtAlgorithm algorithm);

struct JwtSettings {
  JwtAlgorithm algorithm = JwtAlgorithm::HS256;  // pinned: a token with any other alg is refused
  std::string key;       // HS256: the secret bytes; RS256/ES256: a "BEGIN PUBLIC KEY" PEM
  std::string audience;  // empty: not checked; else `aud` (string or array) must contain it
  std::string issuer;    // empty: not checked; else `iss` must equal it
  std::string user_claim = "sub";
  bool require_exp = true;
  std::chrono::seconds leeway{30};
};

struct JwtOutcome {
  bool ok = false;
  std::string user_id;
  std::string error;  // short and fixed, safe to log: never echoes the token or its claims
  // ok with an `exp`: the moment (seconds since the epoch) it stops verifying, exp + leeway.
  std::optional<double> valid_until;
};

class JwtVerifier {
 public:
  // Larger tokens are refused before any parsing; real tokens are a few hundred bytes.
  static constexpr std::size_t kMaxTokenBytes = 8 * 1024;
  // RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output; a
  // shorter secret can be brute-forced from one captured token, offline.
  static constexpr std::size_t kMinHs256SecretBytes = 32;

  // Throws std::invalid_argument when the settings cannot verify anything safely: an HS256
  // secret shorter than kMinHs256SecretBytes, a PEM given as an HMAC secret, a PEM that is not a public key of the pinned
  // algorithm's type (RSA >= 2048 bit, EC P-256), a negative leeway, an empty user claim.
  explicit JwtVerifier(JwtSettings settings);

  // Thread-safe (no shared mutable state) and never throws.
  JwtOutcome verify(std::string_view token,
                    std::chrono::system_clock::time_point now) const noexcept;

  JwtAlgorithm algorithm() const noexcept { return settings_.algorithm; }

 private:
  JwtOutcome verify_unchecked(std::string_view token,
                              std::chrono::system_clock::time_point now) const;

  JwtSettings settings_;
  std::size_t signature_bytes_ = 0;  // exact raw signature length the pinned key yields
};

}  // namespace mn
