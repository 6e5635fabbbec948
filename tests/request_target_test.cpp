#include "request_target.h"

#include <gtest/gtest.h>

using mn::RequestTarget;

TEST(RequestTarget, SplitsPathAndDecodesQueryParameters) {
  auto t = RequestTarget::parse("/ws?access_token=a%2Eb.c&offset=1.x_y-z&flag");
  EXPECT_EQ(t.path, "/ws");
  EXPECT_EQ(t.single("access_token"), "a.b.c");
  EXPECT_EQ(t.single("offset"), "1.x_y-z");
  EXPECT_TRUE(t.has("flag"));
  EXPECT_FALSE(t.has("other"));
}

TEST(RequestTarget, ARepeatedParameterIsAmbiguousAndYieldsNothing) {
  auto t = RequestTarget::parse("/ws?access_token=a&access_token=b");
  EXPECT_FALSE(t.single("access_token"));
}

TEST(RequestTarget, MalformedEscapesNeverDecodeToAUsableValue) {
  EXPECT_FALSE(mn::percent_decode("%"));
  EXPECT_FALSE(mn::percent_decode("%4"));
  EXPECT_FALSE(mn::percent_decode("%zz"));
  auto t = RequestTarget::parse("/ws?access_token=%zz");
  ASSERT_TRUE(t.single("access_token"));
  EXPECT_EQ(*t.single("access_token"), "\x01");
}
