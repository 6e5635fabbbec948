#include "jwt.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <ctime>

namespace bench {
namespace {

std::string base64url(const unsigned char* p, size_t n) {
  static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    unsigned v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
    out += abc[(v >> 18) & 63];
    out += abc[(v >> 12) & 63];
    out += abc[(v >> 6) & 63];
    out += abc[v & 63];
  }
  if (i + 1 == n) {
    unsigned v = p[i] << 16;
    out += abc[(v >> 18) & 63];
    out += abc[(v >> 12) & 63];
  } else if (i + 2 == n) {
    unsigned v = (p[i] << 16) | (p[i + 1] << 8);
    out += abc[(v >> 18) & 63];
    out += abc[(v >> 12) & 63];
    out += abc[(v >> 6) & 63];
  }
  return out;
}

std::string base64url(const std::string& s) {
  return base64url(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

}  // namespace

std::string mint_hs256(const std::string& secret, const std::string& sub, long ttl_seconds) {
  std::string header = base64url(R"({"alg":"HS256","typ":"JWT"})");
  // sub is ours ("u123"): no JSON escaping needed.
  std::string payload = base64url("{\"sub\":\"" + sub + "\",\"exp\":" +
                                  std::to_string(std::time(nullptr) + ttl_seconds) + "}");
  std::string input = header + "." + payload;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + base64url(mac, len);
}

}  // namespace bench
