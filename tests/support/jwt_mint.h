#pragma once
// Token minting for the tests and the benchmark's load generator (library mn_jwt_mint,
// support/jwt_mint.cmake). Built on OpenSSL alone, never on libjwt, so a libjwt bug
// cannot hide itself by producing and accepting the same wrong bytes.
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

namespace mn::test {

struct KeyPair {
  std::string private_pem;
  std::string public_pem;  // SubjectPublicKeyInfo ("BEGIN PUBLIC KEY")
};

KeyPair generate_rsa_keypair(unsigned bits = 2048);
KeyPair generate_ec_p256_keypair();
KeyPair generate_ec_keypair(const std::string& curve);  // "P-384" etc., for wrong-curve tests

std::string base64url(const std::string& bytes);  // unpadded, RFC 7515 section 2

std::string mint_hs256(const std::string& secret, const nlohmann::json& claims);
std::string mint_rs256(const std::string& private_pem, const nlohmann::json& claims);
// The signature is the raw 64-byte r||s JWS form (RFC 7518 section 3.4), not DER.
std::string mint_es256(const std::string& private_pem, const nlohmann::json& claims);

// Assembles header.claims.signature verbatim: for forged and malformed tokens.
std::string mint_raw(const nlohmann::json& header, const nlohmann::json& claims,
                     const std::string& signature_b64url);
// HMAC-SHA256 over an arbitrary header: used to forge alg-confusion tokens.
std::string hmac_sha256_token(const nlohmann::json& header, const nlohmann::json& claims,
                              const std::string& secret);

// {"sub": user, "exp": now + ttl}
nlohmann::json claims_for(const std::string& user,
                          std::chrono::seconds ttl = std::chrono::hours(1));

}  // namespace mn::test
