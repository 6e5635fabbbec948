// What a request on the public port becomes (upgrade.h), decided from the request and the
// server's state alone: no sockets, a fixed clock.
#include "upgrade.h"

#include "support/jwt_mint.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace {

using mn::Config;
using mn::ConnectionLimits;
using mn::Refusal;
using mn::Route;
using mn::Upgrade;
using mn::UpgradeRequest;
using mn::UpgradeState;
using Clock = std::chrono::system_clock;

const std::string kSecret = "upgrade-test-secret-0123456789abcdef";

class UpgradeTest : public ::testing::Test {
 protected:
  UpgradeTest() {
    cfg.max_connections = 10;
    cfg.max_connections_per_user = 2;
    cfg.max_unauthenticated = 10;
    cfg.max_unauthenticated_per_address = 10;
    mn::JwtSettings jwt_settings;
    jwt_settings.key = kSecret;
    jwt = std::make_unique<mn::JwtVerifier>(jwt_settings);
    limits = std::make_unique<ConnectionLimits>(cfg);
  }

  UpgradeState state() const {
    UpgradeState s;
    s.limits = limits.get();
    s.jwt = jwt.get();
    s.now = Clock::now();
    return s;
  }

  Upgrade decide(const std::string& resource, const std::string& authorization = {}, const std::string& origin = {}) {
    return mn::decide_upgrade(UpgradeRequest{true, resource, origin, authorization}, cfg, state());
  }

  static std::string token(const std::string& user) { return mn::test::mint_hs256(kSecret, mn::test::claims_for(user)); }

  static std::string body_code(const Upgrade& u) { return nlohmann::json::parse(u.body)["data"]["code"]; }

  Config cfg;
  std::unique_ptr<mn::JwtVerifier> jwt;
  std::unique_ptr<ConnectionLimits> limits;
};

TEST_F(UpgradeTest, AnUpgradeToAPathOtherThanWsOrSocketIoIsRefusedWith404) {
  auto u = decide("/other?access_token=" + token("u1"));
  EXPECT_EQ(u.route, Route::refused);
  EXPECT_EQ(u.status, 404);
  EXPECT_EQ(body_code(u), "not_found");
  EXPECT_EQ(u.counted, Refusal::none);
}

TEST_F(UpgradeTest, APlainUpgradeWithAValidTokenInTheHeaderOrTheQueryBecomesASessionOfItsUser) {
  auto by_header = decide("/ws", "Bearer " + token("u1"));
  EXPECT_EQ(by_header.route, Route::plain);
  EXPECT_EQ(by_header.user_id, "u1");
  ASSERT_TRUE(by_header.valid_until);
  EXPECT_GT(*by_header.valid_until, std::chrono::duration<double>(Clock::now().time_since_epoch()).count());
  EXPECT_FALSE(by_header.resume_requested);

  auto by_query = decide("/ws?access_token=" + token("u2"));
  EXPECT_EQ(by_query.route, Route::plain);
  EXPECT_EQ(by_query.user_id, "u2");

  // The header wins over the query parameter; the scheme's case does not matter.
  auto both = decide("/ws?access_token=" + token("u2"), "bearer " + token("u1"));
  EXPECT_EQ(both.user_id, "u1");
}

TEST_F(UpgradeTest, APlainUpgradeWithoutATokenIsRefusedWith401MissingTokenAndCounted) {
  auto u = decide("/ws");
  EXPECT_EQ(u.route, Route::refused);
  EXPECT_EQ(u.status, 401);
  EXPECT_EQ(body_code(u), "missing_token");
  EXPECT_EQ(u.counted, Refusal::unauthorized);
  // A repeated token is ambiguous: no token.
  EXPECT_EQ(decide("/ws?access_token=a&access_token=b").code, "missing_token");
}

TEST_F(UpgradeTest, APlainUpgradeWithABadTokenIsRefusedWith401AndLoggedWithoutTheToken) {
  const std::string forged = mn::test::mint_hs256("another-secret-0123456789abcdef-xyz", mn::test::claims_for("u1"));
  auto u = decide("/ws", "Bearer " + forged);
  EXPECT_EQ(u.route, Route::refused);
  EXPECT_EQ(u.status, 401);
  EXPECT_EQ(u.code, "invalid_token");
  EXPECT_EQ(u.counted, Refusal::unauthorized);
  EXPECT_EQ(u.log.rfind("invalid token (", 0), 0u) << u.log;
  EXPECT_EQ(u.log.find(forged.substr(0, 20)), std::string::npos);
  EXPECT_EQ(u.body.find(forged.substr(0, 20)), std::string::npos);
}

TEST_F(UpgradeTest, WithoutAVerifierEveryTokenIsRefused) {
  UpgradeState s = state();
  s.jwt = nullptr;
  auto u = mn::decide_upgrade(UpgradeRequest{true, "/ws", {}, "Bearer " + token("u1")}, cfg, s);
  EXPECT_EQ(u.route, Route::refused);
  EXPECT_EQ(u.status, 401);
}

TEST_F(UpgradeTest, AnOriginNotAllowedIsRefusedWith403ButAClientWithoutOriginIsJudgedByItsToken) {
  cfg.allowed_origin_list = {"https://app.example.com"};
  auto bad = decide("/ws", "Bearer " + token("u1"), "https://evil.example.net");
  EXPECT_EQ(bad.route, Route::refused);
  EXPECT_EQ(bad.status, 403);
  EXPECT_EQ(bad.code, "origin_not_allowed");
  EXPECT_EQ(bad.counted, Refusal::origin);
  EXPECT_EQ(bad.log, "origin not allowed");
  // Origin is judged before the token, and on Socket.IO too.
  EXPECT_EQ(decide("/socket.io/?EIO=4&transport=websocket", {}, "https://evil.example.net").status, 403);

  EXPECT_EQ(decide("/ws", "Bearer " + token("u1"), "https://app.example.com").route, Route::plain);
  EXPECT_EQ(decide("/ws", "Bearer " + token("u1")).route, Route::plain);
}

TEST_F(UpgradeTest, AtCapacityOrWhileStoppingUpgradesAreRefusedWith503BeforeAnyToken) {
  for (int i = 0; i < 10; ++i) limits->admit(nullptr, "user" + std::to_string(i));
  auto full = decide("/ws");
  EXPECT_EQ(full.status, 503);
  EXPECT_EQ(full.code, "over_capacity");
  EXPECT_EQ(full.counted, Refusal::over_capacity);
  EXPECT_EQ(decide("/socket.io/?EIO=4&transport=websocket").status, 503);

  limits = std::make_unique<ConnectionLimits>(cfg);
  UpgradeState s = state();
  s.stopping = true;
  auto stopping = mn::decide_upgrade(UpgradeRequest{true, "/ws", {}, "Bearer " + token("u1")}, cfg, s);
  EXPECT_EQ(stopping.status, 503);
  EXPECT_EQ(stopping.code, "over_capacity");
}

TEST_F(UpgradeTest, BeforeTheReaderHasStartedUpgradesAreRefusedWith503Starting) {
  UpgradeState s = state();
  s.started = false;
  auto u = mn::decide_upgrade(UpgradeRequest{true, "/ws", {}, "Bearer " + token("u1")}, cfg, s);
  EXPECT_EQ(u.status, 503);
  EXPECT_EQ(u.code, "starting");
  EXPECT_EQ(u.counted, Refusal::none);
}

TEST_F(UpgradeTest, AUserWithAsManySessionsAsItsCapIsRefusedWith429AndOthersAreNot) {
  limits->admit(nullptr, "u1");
  limits->admit(nullptr, "u1");
  auto u = decide("/ws", "Bearer " + token("u1"));
  EXPECT_EQ(u.route, Route::refused);
  EXPECT_EQ(u.status, 429);
  EXPECT_EQ(u.code, "too_many_connections");
  EXPECT_EQ(u.counted, Refusal::per_user);
  EXPECT_EQ(u.log, "user u1 has --max-connections-per-user sockets");
  EXPECT_EQ(decide("/ws", "Bearer " + token("u2")).route, Route::plain);
  // Deciding counts nothing: the server admits the session it opens.
  EXPECT_EQ(limits->sessions_of("u2"), 0u);
}

TEST_F(UpgradeTest, AnOffsetAsksToResumeFromItAndOneThatDoesNotDecodeIsMarkedInvalid) {
  mn::Offset offset{"8c08d921-0f8e-49ec-b5cc-9ce25947ddce",
                    {*mn::PgSnapshot::parse("100:105:101"), *mn::PgSnapshot::parse("103:110:"), 7}};
  auto good = decide("/ws?offset=" + mn::encode_offset(offset), "Bearer " + token("u1"));
  EXPECT_EQ(good.route, Route::plain);
  EXPECT_TRUE(good.resume_requested);
  ASSERT_TRUE(good.resume_from);
  EXPECT_EQ(good.resume_from->pos.last_id, 7);

  auto bad = decide("/ws?offset=garbage", "Bearer " + token("u1"));
  EXPECT_EQ(bad.route, Route::plain);
  EXPECT_TRUE(bad.resume_requested);
  EXPECT_FALSE(bad.resume_from);
}

TEST_F(UpgradeTest, ASocketIoUpgradeNeedsNoTokenYetAndKeepsOneThatCameWithItForConnect) {
  auto bare = decide("/socket.io/?EIO=4&transport=websocket");
  EXPECT_EQ(bare.route, Route::socketio);
  EXPECT_TRUE(bare.token.empty());
  auto with = decide("/socket.io?EIO=4&transport=websocket", "Bearer abc");
  EXPECT_EQ(with.route, Route::socketio);
  EXPECT_EQ(with.token, "abc");  // checked at CONNECT, not here
}

TEST_F(UpgradeTest, SocketIoHandshakeParametersAreCheckedInTheReferenceServersOrderWithItsErrors) {
  auto no_transport = decide("/socket.io/?EIO=3&sid=x");
  EXPECT_EQ(no_transport.status, 400);
  EXPECT_EQ(no_transport.body, R"({"code":0,"message":"Transport unknown"})");
  // A WebSocket for the polling transport: Bad request.
  EXPECT_EQ(decide("/socket.io/?EIO=4&transport=polling").body, R"({"code":3,"message":"Bad request"})");
  EXPECT_EQ(decide("/socket.io/?EIO=3&transport=websocket&sid=x").body, R"({"code":1,"message":"Session ID unknown"})");
  auto old = decide("/socket.io/?EIO=3&transport=websocket");
  EXPECT_EQ(old.route, Route::refused);
  EXPECT_EQ(old.body, R"({"code":5,"message":"Unsupported protocol version"})");
  EXPECT_EQ(old.content_type, "application/json");
}

TEST_F(UpgradeTest, AWebSocketNamingASessionIsAProbeToUpgradeItWhateverTheCapacity) {
  const std::string sid = "abcdefgh12345678ABCD";
  static int keys[10];
  for (int i = 0; i < 10; ++i) limits->admit(&keys[i], "u" + std::to_string(i));
  ASSERT_TRUE(limits->at_capacity());
  EXPECT_EQ(decide("/socket.io/?EIO=4&transport=websocket").status, 503);
  // A probe joins a session already counted.
  auto probe = decide("/socket.io/?EIO=4&transport=websocket&sid=" + sid);
  EXPECT_EQ(probe.route, Route::socketio_probe);
  EXPECT_EQ(probe.sid, sid);
}

TEST_F(UpgradeTest, ALongPollingOpenIsASocketIoSessionUnderTheSameRulesAsAWebSocket) {
  auto polling = [&](const std::string& resource, const std::string& origin = {}) {
    return mn::decide_upgrade(UpgradeRequest{false, resource, origin, {}}, cfg, state());
  };
  auto open = polling("/socket.io/?EIO=4&transport=polling&access_token=abc");
  EXPECT_EQ(open.route, Route::socketio);
  EXPECT_EQ(open.token, "abc");
  EXPECT_EQ(polling("/socket.io/?EIO=3&transport=polling").body, R"({"code":5,"message":"Unsupported protocol version"})");
  cfg.allowed_origins = "https://app.example.com";
  cfg.allowed_origin_list = {"https://app.example.com"};
  EXPECT_EQ(polling("/socket.io/?EIO=4&transport=polling", "https://evil.example").status, 403);
  EXPECT_EQ(polling("/socket.io/?EIO=4&transport=polling", "https://app.example.com").route, Route::socketio);
}

TEST_F(UpgradeTest, PlainHttpRequestsGoToTheEndpointsButReadinessAndMetricsMoveToTheAdminAddress) {
  auto http = [&](const std::string& resource) {
    return mn::decide_upgrade(UpgradeRequest{false, resource, {}, {}}, cfg, UpgradeState{});
  };
  EXPECT_EQ(http("/metrics").route, Route::http);
  EXPECT_EQ(http("/readyz").route, Route::http);
  EXPECT_EQ(http("/ws").route, Route::http);  // answered 426 by the endpoints
  cfg.admin_listen = "127.0.0.1:9090";
  EXPECT_EQ(http("/healthz").route, Route::http);
  for (const char* path : {"/metrics", "/readyz"}) {
    auto u = http(path);
    EXPECT_EQ(u.route, Route::refused) << path;
    EXPECT_EQ(u.status, 404) << path;
    EXPECT_EQ(u.code, "not_found") << path;
  }
}

TEST(BearerToken, TakesTheTokenAfterTheSchemeInAnyCaseAndNothingElse) {
  EXPECT_EQ(mn::bearer_token("Bearer abc"), "abc");
  EXPECT_EQ(mn::bearer_token("BEARER abc"), "abc");
  EXPECT_EQ(mn::bearer_token("Bearer "), "");
  EXPECT_EQ(mn::bearer_token("Basic abc"), "");
  EXPECT_EQ(mn::bearer_token("abc"), "");
}

}  // namespace
