// The wake-up payload: only the holder of the installation's key can make one the sidecar
// acts on, and it names a log row without saying whose.
#include "wake_payload.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

const std::string kKey = *mn::parse_wake_key("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
const std::string kOtherKey = *mn::parse_wake_key("ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");

}  // namespace

TEST(WakePayload, ASignedPayloadVerifiesAndNamesItsRow) {
  auto p = mn::sign_wake_payload({7781, 42}, kKey);
  auto w = mn::verify_wake_payload(p, kKey);
  ASSERT_TRUE(w) << p;
  EXPECT_EQ(w->xid, 7781u);
  EXPECT_EQ(w->id, 42);
  EXPECT_EQ(p.substr(0, 8), "7781.42.");
}

// The SQL side (membership_notifier.wake_payload()) must compute the same HMAC: this is
// `printf 749.3 | openssl dgst -sha256 -mac HMAC -macopt hexkey:<kKey in hex>`.
TEST(WakePayload, TheMacIsStandardHmacSha256OfXidDotId) {
  EXPECT_EQ(mn::sign_wake_payload({749, 3}, kKey),
            "749.3.87f8e39adb1627af8f006f2e530b1f8bc46c168bf14b9503c1bed190c22a7f3c");
}

TEST(WakePayload, AnotherKeysPayloadDoesNotVerify) {
  EXPECT_FALSE(mn::verify_wake_payload(mn::sign_wake_payload({7781, 42}, kOtherKey), kKey));
}

TEST(WakePayload, ChangingAnyPartBreaksIt) {
  const auto good = mn::sign_wake_payload({7781, 42}, kKey);
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = bad[i] == '1' ? '2' : '1';
    EXPECT_FALSE(mn::verify_wake_payload(bad, kKey)) << bad;
  }
  EXPECT_FALSE(mn::verify_wake_payload(good + "0", kKey));
  EXPECT_FALSE(mn::verify_wake_payload(good.substr(1), kKey));
}

TEST(WakePayload, ForgedShapesDoNotVerify) {
  const std::string mac(64, 'a');
  for (const std::string& p : std::vector<std::string>{std::string(), std::string("x"), std::string("["),
                        std::string(R"(["7781", 42, "j", "c", "u1", null, 1795708800123456])"),
                        "7781.42." + mac, "7781.9223372036854775807." + mac, "7781.-1." + mac,
                        "18446744073709551615.1." + mac, "0.1." + mac, "07781.42." + mac, std::string("7781.42"),
                        "7781.42.43." + mac, std::string(8000, 'a'), "7781.42." + std::string(64, 'A')})
    EXPECT_FALSE(mn::verify_wake_payload(p, kKey)) << p.substr(0, 80);
}

TEST(WakePayload, ValuesThatCannotBeTheLogsDoNotVerifyEvenWhenSigned) {
  EXPECT_FALSE(mn::verify_wake_payload(mn::sign_wake_payload({0, 1}, kKey), kKey));
  EXPECT_FALSE(mn::verify_wake_payload(mn::sign_wake_payload({1, -1}, kKey), kKey));
}

TEST(WakePayload, AKeyMustBe32BytesOfHex) {
  EXPECT_FALSE(mn::parse_wake_key(""));
  EXPECT_FALSE(mn::parse_wake_key(std::string(62, 'a')));
  EXPECT_FALSE(mn::parse_wake_key(std::string(63, 'a') + "g"));
  EXPECT_TRUE(mn::parse_wake_key(std::string(64, 'a')));
  EXPECT_FALSE(mn::verify_wake_payload(mn::sign_wake_payload({1, 1}, kKey), "short"));
}
