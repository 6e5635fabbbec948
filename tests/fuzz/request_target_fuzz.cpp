// Fuzzes RequestTarget::parse and percent_decode: the request line of every upgrade comes
// from the network before any authentication.
// Properties: nothing throws; the path is exactly what precedes '?'; without '?' there is no
// query; `single` answers only for keys present once; percent_decode inverts a full
// percent-encoding of any bytes.
#include "request_target.h"
#include "fuzz_check.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

std::string percent_encode_all(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    out += '%';
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto t = mn::RequestTarget::parse(in);
  const auto q = in.find('?');
  FUZZ_CHECK(t.path == in.substr(0, q));
  if (q == std::string_view::npos) FUZZ_CHECK(t.query.empty());
  for (const auto& [key, value] : t.query) {
    const auto one = t.single(key);
    FUZZ_CHECK(t.has(key));
    FUZZ_CHECK(one.has_value() == (t.query.count(key) == 1));
    if (one) FUZZ_CHECK(*one == value);
  }

  const auto decoded = mn::percent_decode(in);
  if (decoded) FUZZ_CHECK(decoded->size() <= in.size());
  const auto round = mn::percent_decode(percent_encode_all(in));
  FUZZ_CHECK(round && *round == in);

  // The same bytes as a parameter value: parse must hand them back decoded.
  const auto wrapped = mn::RequestTarget::parse("/ws?access_token=" + percent_encode_all(in) + "&x=1");
  const auto token = wrapped.single("access_token");
  FUZZ_CHECK(wrapped.path == "/ws" && token && *token == in);
  return 0;
}
