#include "http_endpoints.h"

#include <gtest/gtest.h>

using mn::handle_http;
using mn::RequestTarget;

TEST(HttpEndpoints, HealthzIsAlwaysOkAndReadyzFollowsTheListener) {
  EXPECT_EQ(handle_http("GET", RequestTarget::parse("/healthz"), false, nullptr).status, 200);
  EXPECT_EQ(handle_http("GET", RequestTarget::parse("/readyz"), false, nullptr).status, 503);
  EXPECT_EQ(handle_http("GET", RequestTarget::parse("/readyz"), true, nullptr).status, 200);
}

TEST(HttpEndpoints, MetricsComeFromTheServerAndUnknownPathsAre404) {
  auto m = handle_http("GET", RequestTarget::parse("/metrics"), true, [] { return std::string("x 1\n"); });
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.body, "x 1\n");
  EXPECT_EQ(handle_http("GET", RequestTarget::parse("/nope"), true, nullptr).status, 404);
  EXPECT_EQ(handle_http("POST", RequestTarget::parse("/healthz"), true, nullptr).status, 405);
}

TEST(HttpEndpoints, SocketIoPollingIsRefusedLikeTheReferenceServer) {
  auto r = handle_http("GET", RequestTarget::parse("/socket.io/?EIO=4&transport=polling"), true, nullptr);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, R"({"code":0,"message":"Transport unknown"})");
}

TEST(HttpEndpoints, SocketIoWebSocketTransportWithoutAnUpgradeIsABadRequest) {
  auto r = handle_http("GET", RequestTarget::parse("/socket.io/?EIO=4&transport=websocket"), true, nullptr);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, R"({"code":3,"message":"Bad request"})");
}
