// Fuzzes verify_wake_payload (wake_payload.h): a NOTIFY payload on the wake-up channel, which any
// role that can connect may send. The first 32 bytes of an input are the key, the rest the
// payload.
// Properties: nothing throws; a payload verifies only if it is exactly what sign_wake_payload
// makes of the wake-up it names (so nothing but the key's holder can make one); a payload signed
// with the key always verifies to what was signed.
#include "fuzz_check.h"
#include "wake_payload.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 32) return 0;
  const std::string key(reinterpret_cast<const char*>(data), 32);
  const std::string_view payload(reinterpret_cast<const char*>(data) + 32, size - 32);

  if (const auto woken = mn::verify_wake_payload(payload, key)) {
    FUZZ_CHECK(woken->xid != 0 && woken->id >= 0);
    FUZZ_CHECK(mn::sign_wake_payload(*woken, key) == payload);
    const std::string other(32, static_cast<char>(key[0] ^ 1));
    FUZZ_CHECK(!mn::verify_wake_payload(payload, other) || other == key);
  }

  // Whatever numbers the input holds, signed with the key they verify back to themselves.
  uint64_t xid = 0;
  int64_t id = 0;
  for (size_t i = 0; i < 8 && 32 + i < size; ++i) xid = xid << 8 | data[32 + i];
  for (size_t i = 8; i < 16 && 32 + i < size; ++i) id = static_cast<int64_t>(static_cast<uint64_t>(id) << 8 | data[32 + i]);
  if (xid != 0 && id >= 0) {
    const auto back = mn::verify_wake_payload(mn::sign_wake_payload({xid, id}, key), key);
    FUZZ_CHECK(back && back->xid == xid && back->id == id);
  }
  return 0;
}
