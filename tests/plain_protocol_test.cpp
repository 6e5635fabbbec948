#include "plain_protocol.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

TEST(PlainProtocol, EventFramesCarryEventDataIdAndOffset) {
  auto f = mn::plain::event_frame("channel.joined", R"({"channelId":"c1"})", "42", "1.a.b");
  EXPECT_EQ(f, R"({"event":"channel.joined","data":{"channelId":"c1"},"id":"42","offset":"1.a.b"})");
}

TEST(PlainProtocol, SessionAndSnapshotFramesAreValidJson) {
  auto s = nlohmann::json::parse(mn::plain::session_frame("u\"1", true));
  EXPECT_EQ(s["event"], "session");
  EXPECT_EQ(s["data"]["userId"], "u\"1");
  EXPECT_EQ(s["data"]["recovered"], true);
  auto snap = nlohmann::json::parse(mn::plain::snapshot_frame({{"c1", "dm"}, {"c2", std::nullopt}}, "o"));
  EXPECT_EQ(snap["event"], "channel.snapshot");
  ASSERT_EQ(snap["data"]["channels"].size(), 2u);
  EXPECT_EQ(snap["data"]["channels"][0]["xType"], "dm");
  EXPECT_TRUE(snap["data"]["channels"][1]["xType"].is_null());
  EXPECT_EQ(snap["offset"], "o");
}

TEST(PlainProtocol, APositionFrameCarriesOnlyItsOffset) {
  auto j = nlohmann::json::parse(mn::plain::position_frame("1.abc.5-5-.5-5-.0"));
  EXPECT_EQ(j, (nlohmann::json{{"event", "position"}, {"offset", "1.abc.5-5-.5-5-.0"}}));
}
