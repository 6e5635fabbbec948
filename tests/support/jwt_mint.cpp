#include "support/jwt_mint.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <memory>
#include <stdexcept>

namespace mn::test {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct EcSigFree {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

[[noreturn]] void fail(const char* what) {
  ERR_clear_error();
  throw std::runtime_error(std::string("jwt_mint: ") + what);
}

std::string drain(BIO* bio) {
  std::string out(BIO_ctrl_pending(bio), '\0');
  if (!out.empty() &&
      BIO_read(bio, out.data(), static_cast<int>(out.size())) != static_cast<int>(out.size())) {
    fail("BIO_read");
  }
  return out;
}

KeyPair to_pems(EVP_PKEY* key) {
  BioPtr priv(BIO_new(BIO_s_mem()));
  BioPtr pub(BIO_new(BIO_s_mem()));
  if (!priv || !pub) fail("BIO_new");
  if (PEM_write_bio_PrivateKey(priv.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    fail("PEM_write_bio_PrivateKey");
  }
  if (PEM_write_bio_PUBKEY(pub.get(), key) != 1) fail("PEM_write_bio_PUBKEY");
  return KeyPair{drain(priv.get()), drain(pub.get())};
}

PkeyPtr read_private(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) fail("BIO_new_mem_buf");
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) fail("PEM_read_bio_PrivateKey");
  return key;
}

// EVP_DigestSign with SHA-256: PKCS#1 v1.5 for RSA keys, DER-encoded ECDSA for EC keys.
std::string digest_sign(EVP_PKEY* key, const std::string& input) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx) fail("EVP_MD_CTX_new");
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1) {
    fail("EVP_DigestSignInit");
  }
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, data, input.size()) != 1) fail("EVP_DigestSign");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, data,
                     input.size()) != 1) {
    fail("EVP_DigestSign");
  }
  sig.resize(len);
  return sig;
}

std::string signing_input(const nlohmann::json& header, const nlohmann::json& claims) {
  return base64url(header.dump()) + "." + base64url(claims.dump());
}

}  // namespace

std::string base64url(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

KeyPair generate_rsa_keypair(unsigned bits) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits)));
  if (!key) fail("RSA keygen");
  return to_pems(key.get());
}

KeyPair generate_ec_p256_keypair() { return generate_ec_keypair("P-256"); }

KeyPair generate_ec_keypair(const std::string& curve) {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve.c_str()));
  if (!key) fail("EC keygen");
  return to_pems(key.get());
}

std::string mint_raw(const nlohmann::json& header, const nlohmann::json& claims,
                     const std::string& signature_b64url) {
  return signing_input(header, claims) + "." + signature_b64url;
}

std::string hmac_sha256_token(const nlohmann::json& header, const nlohmann::json& claims,
                              const std::string& secret) {
  const std::string input = signing_input(header, claims);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
           &mac_len) == nullptr) {
    fail("HMAC");
  }
  return input + "." + base64url(std::string(reinterpret_cast<const char*>(mac), mac_len));
}

std::string mint_hs256(const std::string& secret, const nlohmann::json& claims) {
  return hmac_sha256_token({{"alg", "HS256"}, {"typ", "JWT"}}, claims, secret);
}

std::string mint_rs256(const std::string& private_pem, const nlohmann::json& claims) {
  PkeyPtr key = read_private(private_pem);
  const std::string input = signing_input({{"alg", "RS256"}, {"typ", "JWT"}}, claims);
  return input + "." + base64url(digest_sign(key.get(), input));
}

std::string mint_es256(const std::string& private_pem, const nlohmann::json& claims) {
  PkeyPtr key = read_private(private_pem);
  const std::string input = signing_input({{"alg", "ES256"}, {"typ", "JWT"}}, claims);
  const std::string der = digest_sign(key.get(), input);
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, EcSigFree> sig(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) fail("d2i_ECDSA_SIG");
  std::string raw(64, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), out, 32) != 32 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), out + 32, 32) != 32) {
    fail("BN_bn2binpad");
  }
  return input + "." + base64url(raw);
}

nlohmann::json claims_for(const std::string& user, std::chrono::seconds ttl) {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::system_clock::now().time_since_epoch());
  return {{"sub", user}, {"exp", (now + ttl).count()}};
}

}  // namespace mn::test
