// /socket.io/ against a real PostgreSQL, with the stock socket.io-client 4.8 (tests/node,
// installed by `npm ci --prefix tests/node`) driven as a child process, and with a raw
// WebSocket client for what a stock client never sends.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "node/node_client.h"
#include "support/http.h"
#include "support/notifier_fixture.h"

namespace mn::test {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

class SocketIoTest : public NotifierFixture {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(node_dir() + "/node_modules/socket.io-client"))
        << "socket.io-client is not installed: run `npm ci --prefix tests/node`";
    sidecar_defaults_ = {"--poll-interval", "200ms"};
    NotifierFixture::SetUp();
  }

  // The sidecar on `at` (0: any port), with `extra` flags; returns once it is ready.
  void start(const std::vector<std::string>& extra = {}, uint16_t at = 0) {
    std::vector<std::string> args = {"--listen", "127.0.0.1:" + std::to_string(at)};
    args.insert(args.end(), extra.begin(), extra.end());
    start_sidecar(args);
  }

  std::string url() { return "http://127.0.0.1:" + std::to_string(port()); }
  // Options for a client that reconnects quickly and predictably.
  Json options(const std::string& user, int reconnect_ms = 200) const {
    return {{"auth", {{"token", token(user)}}},
            {"reconnectionDelay", reconnect_ms},
            {"reconnectionDelayMax", reconnect_ms},
            {"randomizationFactor", 0}};
  }
};

TEST_F(SocketIoTest, AStockClientReceivesASnapshotThenJoinsAndLeavesOfItsOwnUserInOrder) {
  sql("INSERT INTO channel_members VALUES ('c0', 'u1')");
  start();
  NodeClient c(url(), options("u1"));
  const Json connect = c.expect("connect");
  EXPECT_EQ(connect.at("recovered"), false);
  EXPECT_TRUE(connect.at("pid").is_string());
  const Json snapshot = c.expect_event("channel.snapshot");
  ASSERT_EQ(snapshot.at("channels").size(), 1u);
  EXPECT_EQ(snapshot.at("channels")[0].at("channelId"), "c0");

  sql("INSERT INTO channel_members VALUES ('c1', 'u1'), ('c1', 'u2')");
  sql("INSERT INTO channel_members VALUES ('c2', 'u1')");
  sql("DELETE FROM channel_members WHERE channel_id = 'c1'");
  Json j1 = c.expect_event("channel.joined");
  EXPECT_EQ(j1.at("channelId"), "c1");
  EXPECT_EQ(j1.at("userId"), "u1");
  EXPECT_EQ(c.expect_event("channel.joined").at("channelId"), "c2");
  Json left = c.expect_event("channel.left");
  EXPECT_EQ(left.at("channelId"), "c1");
  EXPECT_EQ(left.at("userId"), "u1");
  EXPECT_TRUE(c.drain().empty()) << "u2's events must not reach u1:\n" << c.transcript();
  EXPECT_TRUE(sidecar().wait_for_log("protocol=socket.io resume=no"));
  EXPECT_EQ(sidecar().log().find(token("u1")), std::string::npos) << "a token was logged";
}

TEST_F(SocketIoTest, ABadTokenSurfacesAsConnectErrorUnauthorizedAndTheClientStops) {
  start();
  Json bad = options("u1", 100);
  bad["auth"]["token"] = mint_hs256("another-secret-0123456789abcdef", claims_for("u1"));
  NodeClient c(url(), bad);
  Json err = c.expect("connect_error");
  EXPECT_EQ(err.at("message"), "unauthorized");
  EXPECT_EQ(err.at("data"), Json({{"code", "invalid_token"}}));
  // The server also closes the socket; the client must not take that as a reason to retry.
  EXPECT_TRUE(c.drain(700ms).empty()) << c.transcript();

  Json none = options("u1");
  none["auth"] = Json::object();
  NodeClient missing(url(), none);
  Json err2 = missing.expect("connect_error");
  EXPECT_EQ(err2.at("message"), "unauthorized");
  EXPECT_EQ(err2.at("data").at("code"), "missing_token");
}

TEST_F(SocketIoTest, ATokenIsTakenFromAuthWithBearerPrefixFromTheHeaderOrFromTheQuery) {
  start();
  Json bearer = options("u1");
  bearer["auth"]["token"] = "Bearer " + token("u1");
  Json header = options("u2");
  header["auth"] = Json::object();
  header["extraHeaders"] = {{"Authorization", "Bearer " + token("u2")}};
  Json query = options("u3");
  query["auth"] = Json::object();
  query["query"] = {{"access_token", token("u3")}};
  for (const Json& o : {bearer, header, query}) {
    NodeClient c(url(), o);
    EXPECT_EQ(c.expect("connect").at("recovered"), false) << o.dump();
    c.expect_event("channel.snapshot");
  }
  EXPECT_TRUE(sidecar().wait_for_log("user=u3 "));
}

TEST_F(SocketIoTest, PingsKeepAClientAlivePastSeveralIntervalsAndASilentPeerIsDropped) {
  start({"--ping-interval", "300ms", "--ping-timeout", "700ms"});
  // A peer that never answers "2" is closed once the ping timeout has passed...
  auto silent = WsClient::connect(port(), "/socket.io/?EIO=4&transport=websocket");
  ASSERT_EQ(silent->handshake_status(), 101) << silent->error();
  const std::string open = silent->next().value_or("");
  ASSERT_EQ(open.substr(0, 1), "0");
  const Json handshake = Json::parse(open.substr(1));
  EXPECT_EQ(handshake.at("upgrades"), Json::array());
  EXPECT_EQ(handshake.at("pingInterval"), 300);
  EXPECT_EQ(handshake.at("pingTimeout"), 700);
  EXPECT_TRUE(handshake.at("maxPayload").is_number());
  silent->send_text("40" + Json({{"token", token("u1")}}).dump());

  // ...while the stock client, which answers, stays.
  Json o = options("u1");
  o["logPings"] = true;
  NodeClient c(url(), o);
  c.expect("connect");
  int pings = 0;
  for (const Json& j : c.during(2500ms)) {
    if (j.at("type") == "ping") ++pings;
    EXPECT_NE(j.at("type"), "disconnect") << c.transcript();
  }
  EXPECT_GE(pings, 4) << c.transcript();
  EXPECT_TRUE(silent->wait_closed(1s));
  // The wire close code is WsServer's business (it may cut a silent peer short); the reason
  // is in its disconnect line.
  EXPECT_TRUE(sidecar().wait_for_log("reason=\"no pong within ping timeout\"", 1s));
}

TEST_F(SocketIoTest, AfterATransportCloseTheClientRecoversEveryMissedEventInOrder) {
  start();
  NodeClient c(url(), options("u1", 1000));
  const Json first = c.expect("connect");
  c.expect_event("channel.snapshot");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  c.expect_event("channel.joined");

  c.command("engine-close");
  c.expect("disconnect");
  sql("INSERT INTO channel_members VALUES ('c2', 'u1')");
  sql("INSERT INTO channel_members VALUES ('c3', 'u1'), ('c3', 'u2')");
  sql("DELETE FROM channel_members WHERE channel_id = 'c1'");
  c.expect("reconnect_attempt", 3s);
  const Json again = c.expect("connect");
  EXPECT_EQ(again.at("recovered"), true) << c.transcript();
  EXPECT_EQ(again.at("pid"), first.at("pid"));
  EXPECT_EQ(again.at("id"), first.at("id"));
  EXPECT_EQ(c.expect_event("channel.joined").at("channelId"), "c2");
  EXPECT_EQ(c.expect_event("channel.joined").at("channelId"), "c3");
  EXPECT_EQ(c.expect_event("channel.left").at("channelId"), "c1");
  // And it is live again.
  sql("INSERT INTO channel_members VALUES ('c4', 'u1')");
  EXPECT_EQ(c.expect_event("channel.joined").at("channelId"), "c4");
  EXPECT_TRUE(c.drain().empty()) << c.transcript();
  EXPECT_TRUE(sidecar().wait_for_log("protocol=socket.io resume=yes"));
}

TEST_F(SocketIoTest, AClientThatReceivedNoOffsetRecoversFromThePositionInItsPid) {
  start();
  NodeClient c(url(), options("u1", 1000));
  const Json first = c.expect("connect");
  c.expect_event("channel.snapshot");
  // As if the drop came between the CONNECT reply and the snapshot: the client sends a pid
  // and no offset (Socket.IO's own server cannot recover that).
  c.command("forget-offset");
  c.command("engine-close");
  c.expect("disconnect");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  const Json again = c.expect("connect", 3s);
  EXPECT_EQ(again.at("recovered"), true) << c.transcript();
  EXPECT_EQ(again.at("pid"), first.at("pid"));
  EXPECT_EQ(c.expect_event("channel.joined").at("channelId"), "c1");
  EXPECT_TRUE(c.drain().empty()) << c.transcript();
}

// A client whose user has no changes keeps its first offset; with its pings it is given newer
// ones as a "position" event, which the stock client records and recovers from.
TEST_F(SocketIoTest, AQuietStockClientRecordsThePositionEventsOffsetAndRecoversFromIt) {
  start({"--ping-interval", "300ms", "--ping-timeout", "2s"});
  NodeClient c(url(), options("u1", 1000));
  c.expect("connect");
  c.expect_event("channel.snapshot");
  c.command("state");
  const std::string first = c.expect("state").at("offset");
  sql("INSERT INTO channel_members VALUES ('x', 'u2')");  // the log moves on, for others
  const Json position = c.expect("event", 3s);
  ASSERT_EQ(position.at("name"), "position") << c.transcript();
  ASSERT_EQ(position.at("args").size(), 1u);
  const std::string offset = position.at("args")[0];
  EXPECT_NE(offset, first);
  c.command("state");
  EXPECT_EQ(c.expect("state").at("offset"), offset) << "the client did not record it";

  c.command("engine-close");
  c.expect("disconnect");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  const Json again = c.expect("connect", 3s);
  EXPECT_EQ(again.at("recovered"), true) << c.transcript();
  EXPECT_EQ(c.expect_event("channel.joined").at("channelId"), "c1");
  EXPECT_TRUE(sidecar().wait_for_log("resume=yes"));
}

TEST_F(SocketIoTest, AfterASidecarKillAndRestartOnTheSamePortTheClientRecoversEveryMissedEvent) {
  const uint16_t fixed = free_port();
  start({}, fixed);
  NodeClient c(url(), options("u1", 200));
  const Json first = c.expect("connect");
  c.expect_event("channel.snapshot");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  c.expect_event("channel.joined");

  sidecar().kill9();
  c.expect("disconnect");
  sql("INSERT INTO channel_members VALUES ('c2', 'u1')");
  sql("DELETE FROM channel_members WHERE channel_id = 'c1'");
  start({}, fixed);
  Json again;
  // Attempts against the dead port fail with connect_error until the sidecar is back.
  while (true) {
    auto j = c.next(10s);
    ASSERT_TRUE(j.has_value()) << c.transcript();
    if (j->at("type") == "connect") {
      again = *j;
      break;
    }
    ASSERT_TRUE(j->at("type") == "reconnect_attempt" || j->at("type") == "connect_error") << c.transcript();
  }
  EXPECT_EQ(again.at("recovered"), true) << c.transcript();
  EXPECT_EQ(again.at("pid"), first.at("pid"));
  EXPECT_EQ(c.expect_event("channel.joined").at("channelId"), "c2");
  EXPECT_EQ(c.expect_event("channel.left").at("channelId"), "c1");
  EXPECT_TRUE(c.drain().empty()) << c.transcript();
}

TEST_F(SocketIoTest, RecoveryPastRetentionGivesRecoveredFalseANewSidAndASnapshot) {
  start();
  Json o = options("u1");
  o["reconnection"] = false;  // the prune must come first: the test says when to reconnect
  NodeClient c(url(), o);
  const Json first = c.expect("connect");
  c.expect_event("channel.snapshot");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  c.expect_event("channel.joined");
  c.command("engine-close");
  c.expect("disconnect");
  sql("INSERT INTO channel_members VALUES ('c2', 'u1')");
  sql("SELECT membership_notifier.prune('0 seconds')");
  c.command("reconnect");
  const Json again = c.expect("connect");
  EXPECT_EQ(again.at("recovered"), false) << c.transcript();
  EXPECT_NE(again.at("pid"), first.at("pid"));
  EXPECT_NE(again.at("id"), first.at("id"));
  const Json snapshot = c.expect_event("channel.snapshot");
  ASSERT_EQ(snapshot.at("channels").size(), 2u) << snapshot.dump();
  EXPECT_EQ(snapshot.at("channels")[0].at("channelId"), "c1");
  EXPECT_EQ(snapshot.at("channels")[1].at("channelId"), "c2");
  EXPECT_TRUE(c.drain().empty()) << c.transcript();
}

TEST_F(SocketIoTest, EngineIo4IsServedAndRefusalsUseTheReferenceErrors) {
  start();
  const HttpResponse polling = http_get(port(), "/socket.io/?EIO=4&transport=xhr");
  EXPECT_EQ(polling.status, 400);
  EXPECT_EQ(Json::parse(polling.body), Json({{"code", 0}, {"message", "Transport unknown"}}));
  auto upgrade_polling = WsClient::connect(port(), "/socket.io/?EIO=4&transport=polling");
  EXPECT_EQ(upgrade_polling->handshake_status(), 400);
  EXPECT_EQ(Json::parse(upgrade_polling->handshake_body()).at("code"), 3);
  auto eio3 = WsClient::connect(port(), "/socket.io/?EIO=3&transport=websocket");
  EXPECT_EQ(eio3->handshake_status(), 400);
  EXPECT_EQ(Json::parse(eio3->handshake_body()),
            Json({{"code", 5}, {"message", "Unsupported protocol version"}}));
  auto sid = WsClient::connect(port(), "/socket.io/?EIO=4&transport=websocket&sid=abc");
  EXPECT_EQ(sid->handshake_status(), 400);
  EXPECT_EQ(Json::parse(sid->handshake_body()).at("code"), 1);
  auto extra = WsClient::connect(port(), "/socket.io/?EIO=4&transport=websocket&t=PxYz&foo=bar");
  EXPECT_EQ(extra->handshake_status(), 101) << "other query parameters are ignored";
}

// What a stock client never sends, over a raw WebSocket; each answer concerns that socket only.
TEST_F(SocketIoTest, FramesAStockClientNeverSendsAreAnsweredOrCloseOnlyTheirOwnSocket) {
  start({"--auth-timeout", "500ms"});
  auto open = [this] {
    auto ws = WsClient::connect(port(), "/socket.io/?EIO=4&transport=websocket");
    EXPECT_EQ(ws->next().value_or("").substr(0, 2), "0{");
    return ws;
  };
  auto connect = [this](WsClient& ws, const std::string& user) {
    ws.send_text("40" + Json({{"token", token(user)}}).dump());
    return ws.next().value_or("");
  };
  auto a = open();
  a->send_text(R"(40/admin,{})");
  EXPECT_EQ(a->next().value_or(""), R"(44/admin,{"message":"Invalid namespace"})");
  EXPECT_EQ(connect(*a, "u1").substr(0, 9), R"(40{"sid":)");
  EXPECT_EQ(a->next().value_or("").substr(0, 22), R"(42["channel.snapshot",)");
  a->send_text(R"(42["hello",{"x":1}])");
  a->send_text(R"(425["with-ack"])");
  a->send_text(R"(431[])");
  a->send_text("40" + Json({{"token", token("u2")}}).dump());  // a second CONNECT changes nothing

  auto never = open();  // sends no CONNECT at all
  auto binary = open();
  binary->send_text(R"(451-["upload",{"_placeholder":true,"num":0}])");
  auto garbage = open();
  garbage->send_text(R"({"event":"hello"})");
  auto bye = open();
  connect(*bye, "u1");
  bye->send_text("41");

  EXPECT_TRUE(binary->wait_closed());
  EXPECT_EQ(binary->close_code(), 1003);
  EXPECT_TRUE(garbage->wait_closed());
  EXPECT_EQ(garbage->close_code(), 1007);
  EXPECT_NE(garbage->close_reason().find("unparseable"), std::string::npos);
  EXPECT_TRUE(bye->wait_closed());
  EXPECT_EQ(bye->close_code(), 1000);
  EXPECT_TRUE(never->wait_closed(3s));
  EXPECT_EQ(never->close_code(), 1008);

  // The plain protocol and Socket.IO each get only their own frames for the same change.
  auto plain = WsClient::connect(port(), "/ws?access_token=" + token("u1"));
  ASSERT_EQ(plain->handshake_status(), 101);
  EXPECT_EQ(plain->next_json().value_or(Json()).at("event"), "session");
  EXPECT_EQ(plain->next_json().value_or(Json()).at("event"), "channel.snapshot");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1'), ('c1', 'u2')");
  EXPECT_EQ(plain->next_json().value_or(Json()).at("event"), "channel.joined");
  EXPECT_TRUE(a->is_open());
  const std::string frame = a->next().value_or("");
  ASSERT_EQ(frame.substr(0, 20), R"(42["channel.joined",)");
  const Json event = Json::parse(frame.substr(2));
  EXPECT_EQ(event[1].at("userId"), "u1") << "the room is the first token's user";
  EXPECT_TRUE(a->drain(300ms).empty());
  EXPECT_TRUE(plain->drain(300ms).empty());
}

}  // namespace
}  // namespace mn::test
