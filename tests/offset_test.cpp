// Offsets: opaque, URL-safe, round-trip exactly, refuse anything else.
#include "offset.h"

#include <gtest/gtest.h>

using mn::decode_offset;
using mn::encode_offset;
using mn::Offset;
using mn::PgSnapshot;

namespace {
const char* kLog = "8c08d921-0f8e-49ec-b5cc-9ce25947ddce";
Offset sample() {
  return Offset{kLog, {*PgSnapshot::parse("100:105:101,103"), *PgSnapshot::parse("103:110:103,106"), 77}};
}
}  // namespace

TEST(Offset, RoundTripsExactlyAndUsesOnlyUrlSafeCharacters) {
  auto text = encode_offset(sample());
  for (char c : text) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') << text;
  auto back = decode_offset(text);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->log_id, kLog);
  EXPECT_EQ(back->pos.base, sample().pos.base);
  EXPECT_EQ(back->pos.upto, sample().pos.upto);
  EXPECT_EQ(back->pos.last_id, 77);
}

TEST(Offset, GarbageTruncatedOrTamperedOffsetsAreRefused) {
  auto good = encode_offset(sample());
  for (std::string bad : {std::string(""), std::string("garbage"), good.substr(0, good.size() - 3) + ".x",
                          "2" + good.substr(1), good + ".9", std::string(5000, '1'),
                          std::string("1.not-a-uuid.1-2-.1-2-.0"),
                          std::string("1.") + kLog + ".100-105-.90-95-.0" /* upto older than base */,
                          std::string("1.") + kLog + ".100-105-.100-105-.-4"}) {
    EXPECT_FALSE(decode_offset(bad)) << bad;
  }
}

TEST(Offset, APositionHasSeenItsBaseAndTheRowsUpToItsIdInUpto) {
  auto p = sample().pos;
  EXPECT_TRUE(p.has_seen(99, 1000));   // below base.xmin
  EXPECT_TRUE(p.has_seen(102, 1000));  // visible in base
  EXPECT_FALSE(p.has_seen(101, 1000)); // running at base, later than last_id
  EXPECT_TRUE(p.has_seen(101, 50));    // ...but delivered from upto, id <= last_id
  EXPECT_FALSE(p.has_seen(103, 50));   // running at base and still at upto
  EXPECT_FALSE(p.has_seen(106, 50));   // started after base, running at upto
  EXPECT_FALSE(p.has_seen(200, 1));    // after both
}

// hub.h: after a catch-up read in C, an event read between F and T goes out with (F or C,
// T or C). That must decode, also where T is a wake-up's (older than C in part: the catch-up
// saw its transaction 105 still running), and must have seen what either F or C saw.
TEST(Offset, APositionWithACatchUpFoldedInDecodesAndHasSeenWhatEitherSaw) {
  auto f = *PgSnapshot::parse("100:103:101");
  auto t = *f.with_committed(105, 8);  // 100:106:101,103,104
  auto c = *PgSnapshot::parse("102:110:102,105");
  Offset o{kLog, {PgSnapshot::either(f, c), PgSnapshot::either(t, c), 9}};
  auto back = decode_offset(encode_offset(o));
  ASSERT_TRUE(back) << encode_offset(o);
  for (uint64_t x = 95; x < 115; ++x) {
    EXPECT_EQ(back->pos.has_seen(x, 10), f.sees(x) || c.sees(x)) << x;
    EXPECT_EQ(back->pos.has_seen(x, 9), f.sees(x) || c.sees(x) || t.sees(x)) << x;
  }
}
