// Socket.IO over Engine.IO's long-polling transport and its upgrade to WebSocket, against a real
// PostgreSQL, with the stock socket.io-client 4.8 (tests/node) with its default options (polling
// first, then the upgrade) or told `transports: ["polling"]`, and with raw HTTP requests for
// what the reference server answers. Then three processes sharing one port
// (--reuse-port-group 3), with clients from several loopback addresses.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

#include "node/node_client.h"
#include "support/http.h"
#include "support/jwt_mint.h"
#include "support/pg_cluster.h"
#include "support/sidecar.h"
#include "support/ws_client.h"

namespace mn::test {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

const std::string kSecret = "socketio-polling-secret-0123456789abcdef";

uint16_t free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("cannot bind a loopback port");
  close(fd);
  return ntohs(a.sin_port);
}

// Reports until `done` says so (all of them, in order), or until `timeout`.
std::vector<Json> until(NodeClient& c, const std::function<bool(const Json&)>& done,
                        std::chrono::milliseconds timeout = 15s) {
  std::vector<Json> seen;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (auto j = c.next(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()))) {
    seen.push_back(*j);
    if (done(*j)) return seen;
  }
  ADD_FAILURE() << "not seen in time; reports so far:\n" << c.transcript();
  return seen;
}

bool is(const Json& j, const std::string& type) { return j.value("type", "") == type; }

// The events among `reports` (not positions): name and channelId.
std::vector<std::string> events_of(const std::vector<Json>& reports) {
  std::vector<std::string> out;
  for (const auto& j : reports) {
    if (!is(j, "event") || NodeClient::is_position(j)) continue;
    const Json& data = j.at("args").at(0);
    out.push_back(j.at("name").get<std::string>() +
                  (data.is_object() && data.contains("channelId") ? " " + data.at("channelId").get<std::string>() : ""));
  }
  return out;
}

class SocketIoPollingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(node_dir() + "/node_modules/socket.io-client"))
        << "socket.io-client is not installed: run `npm ci --prefix tests/node`";
    static std::atomic<int> counter{0};
    db_ = "siop_" + std::to_string(getpid()) + "_" + std::to_string(counter++);
    PgCluster& pg = shared_cluster();
    pg.exec("DROP DATABASE IF EXISTS " + db_);
    pg.create_database(db_);
    pg.exec("CREATE TABLE public.channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))",
            db_);
    std::string out;
    ASSERT_EQ(run_binary({"migrate", "up", "--database-url", pg.conninfo(db_)}, &out), 0) << out;
  }

  // One more sidecar on `port` (0: any), with `extra` flags; returns its port once it is ready.
  uint16_t start(const std::vector<std::string>& extra = {}, uint16_t port = 0) {
    std::vector<std::string> args = {"serve", "--database-url", shared_cluster().conninfo(db_), "--listen",
                                     "127.0.0.1:" + std::to_string(port), "--poll-interval", "200ms"};
    args.insert(args.end(), extra.begin(), extra.end());
    sidecars_.push_back(std::make_unique<Sidecar>());
    Sidecar& s = *sidecars_.back();
    s.start(args, {{"MEMBERSHIP_NOTIFIER_JWT_SECRET", kSecret}});
    EXPECT_TRUE(s.wait_ready()) << s.log();
    port_ = s.port();
    return port_;
  }
  Sidecar& sidecar(size_t i = 0) { return *sidecars_.at(i); }

  void sql(const std::string& statement) { shared_cluster().exec(statement, db_); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  static std::string token(const std::string& user) { return mint_hs256(kSecret, claims_for(user)); }
  // A stock client's options: default transports (polling, then the upgrade) unless told.
  static Json options(const std::string& user, int reconnect_ms = 200) {
    return {{"auth", {{"token", token(user)}}}, {"defaultTransports", true}, {"logTransport", true},
            {"reconnectionDelay", reconnect_ms}, {"reconnectionDelayMax", reconnect_ms}, {"randomizationFactor", 0}};
  }
  static Json polling_only(const std::string& user, int reconnect_ms = 200) {
    Json o = options(user, reconnect_ms);
    o["transports"] = Json::array({"polling"});
    return o;
  }

  std::string db_;
  std::vector<std::unique_ptr<Sidecar>> sidecars_;
  uint16_t port_ = 0;
};

TEST_F(SocketIoPollingTest, AStockClientWithDefaultOptionsConnectsOverPollingUpgradesAndGetsEveryEvent) {
  sql("INSERT INTO channel_members VALUES ('c0', 'u1')");
  start();
  NodeClient c(url(), options("u1"));
  bool upgraded = false, snapshot = false;
  auto seen = until(c, [&](const Json& j) {
    if (is(j, "upgrade")) upgraded = j.at("name") == "websocket";
    if (is(j, "event") && j.at("name") == "channel.snapshot") snapshot = true;
    return upgraded && snapshot;
  });
  ASSERT_TRUE(upgraded && snapshot) << c.transcript();
  EXPECT_TRUE(is(seen.front(), "transport") && seen.front().at("name") == "polling") << c.transcript();
  for (const auto& j : seen) {
    EXPECT_FALSE(is(j, "connect_error") || is(j, "disconnect")) << c.transcript();
    if (is(j, "connect")) {
      EXPECT_EQ(j.at("recovered"), false);
    }
  }
  // Over the WebSocket now.
  sql("INSERT INTO channel_members VALUES ('c1', 'u1'), ('c1', 'u2')");
  sql("DELETE FROM channel_members WHERE channel_id = 'c0'");
  EXPECT_EQ(c.expect_event("channel.joined").at("channelId"), "c1");
  EXPECT_EQ(c.expect_event("channel.left").at("channelId"), "c0");
  c.command("state");
  EXPECT_EQ(c.expect("state").at("transport"), "websocket");
  EXPECT_TRUE(c.drain().empty()) << c.transcript();
  EXPECT_TRUE(sidecar().wait_for_log("protocol=socket.io resume=no"));
}

TEST_F(SocketIoPollingTest, EventsThatComeDuringTheUpgradeArriveOnceAndInOrder) {
  start();
  NodeClient c(url(), options("u1"));
  c.expect("transport");
  // Changes in flight while the client connects, probes and upgrades.
  for (int i = 0; i < 30; ++i) sql("INSERT INTO channel_members VALUES ('c" + std::to_string(i) + "', 'u1')");
  std::vector<std::string> expected;
  for (int i = 0; i < 30; ++i) expected.push_back("channel.joined c" + std::to_string(i));
  bool upgraded = false;
  std::vector<Json> all;
  auto seen = until(c, [&](const Json& j) {
    all.push_back(j);
    if (is(j, "upgrade")) upgraded = true;
    auto ev = events_of(all);
    // The snapshot may have some of them; what is not in it must follow, once each.
    return upgraded && !ev.empty() && ev.back() == "channel.joined c29";
  });
  std::vector<std::string> got = events_of(seen);
  ASSERT_FALSE(got.empty());
  ASSERT_EQ(got.front(), "channel.snapshot") << c.transcript();
  // Exactly those the snapshot did not hold, in order, none twice.
  size_t in_snapshot = 0;
  for (const auto& j : seen)
    if (is(j, "event") && j.at("name") == "channel.snapshot") in_snapshot = j.at("args")[0].at("channels").size();
  std::vector<std::string> rest(got.begin() + 1, got.end());
  EXPECT_EQ(rest, std::vector<std::string>(expected.begin() + static_cast<long>(in_snapshot), expected.end()))
      << c.transcript();
  EXPECT_TRUE(c.drain().empty()) << c.transcript();
}

TEST_F(SocketIoPollingTest, AStockClientWithDefaultOptionsRecoversEveryMissedEventAfterATransportClose) {
  start();
  NodeClient c(url(), options("u1", 500));
  Json first;
  bool upgraded = false, snapshot = false;
  until(c, [&](const Json& j) {
    if (is(j, "connect")) first = j;
    if (is(j, "upgrade")) upgraded = true;
    if (is(j, "event") && j.at("name") == "channel.snapshot") snapshot = true;
    return upgraded && snapshot && !first.is_null();
  });
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  c.expect_event("channel.joined");

  c.command("engine-close");
  c.expect("disconnect");
  sql("INSERT INTO channel_members VALUES ('c2', 'u1')");
  sql("DELETE FROM channel_members WHERE channel_id = 'c1'");
  const auto seen = until(c, [](const Json& j) { return is(j, "connect"); });
  EXPECT_EQ(seen.back().at("recovered"), true) << c.transcript();
  EXPECT_EQ(seen.back().at("pid"), first.at("pid"));
  EXPECT_EQ(c.expect_event("channel.joined").at("channelId"), "c2");
  EXPECT_EQ(c.expect_event("channel.left").at("channelId"), "c1");
  EXPECT_TRUE(sidecar().wait_for_log("resume=yes"));
}

TEST_F(SocketIoPollingTest, APollingOnlyClientGetsEveryEventAndItsHeartbeatsKeepItPastSeveralIntervals) {
  start({"--ping-interval", "300ms", "--ping-timeout", "700ms"});
  Json o = polling_only("u1");
  o["logPings"] = true;
  NodeClient c(url(), o);
  c.expect("connect");
  c.expect_event("channel.snapshot");
  int pings = 0;
  for (const Json& j : c.during(2500ms)) {
    if (is(j, "ping")) ++pings;
    EXPECT_FALSE(is(j, "disconnect") || is(j, "upgrade")) << c.transcript();
  }
  EXPECT_GE(pings, 4) << c.transcript();
  // A burst: several GETs' worth, in order.
  for (int i = 0; i < 40; ++i) sql("INSERT INTO channel_members VALUES ('c" + std::to_string(i) + "', 'u1')");
  for (int i = 0; i < 40; ++i) {
    Json e = c.expect_event("channel.joined");
    ASSERT_EQ(e.at("channelId"), "c" + std::to_string(i)) << c.transcript();
  }
  c.command("state");
  EXPECT_EQ(c.expect("state").at("transport"), "polling");
}

TEST_F(SocketIoPollingTest, APollingOnlyClientRecoversWithItsPidAndOffset) {
  start();
  NodeClient c(url(), polling_only("u1", 500));
  const Json first = c.expect("connect");
  c.expect_event("channel.snapshot");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  c.expect_event("channel.joined");
  c.command("engine-close");
  c.expect("disconnect");
  sql("INSERT INTO channel_members VALUES ('c2', 'u1')");
  const Json again = c.expect("connect");
  EXPECT_EQ(again.at("recovered"), true) << c.transcript();
  EXPECT_EQ(again.at("pid"), first.at("pid"));
  EXPECT_EQ(c.expect_event("channel.joined").at("channelId"), "c2");
  EXPECT_TRUE(c.drain().empty()) << c.transcript();
}

TEST_F(SocketIoPollingTest, APollingOnlyClientWithABadTokenGetsConnectErrorUnauthorizedAndStops) {
  start();
  Json bad = polling_only("u1", 100);
  bad["auth"]["token"] = mint_hs256("another-secret-0123456789abcdef", claims_for("u1"));
  NodeClient c(url(), bad);
  Json err = c.expect("connect_error");
  EXPECT_EQ(err.at("message"), "unauthorized") << c.transcript();
  EXPECT_EQ(err.at("data"), Json({{"code", "invalid_token"}}));
  for (const auto& j : c.drain(700ms)) EXPECT_FALSE(is(j, "connect") || is(j, "connect_error")) << c.transcript();

  Json none = polling_only("u1");
  none["auth"] = Json::object();
  NodeClient missing(url(), none);
  Json err2 = missing.expect("connect_error");
  EXPECT_EQ(err2.at("message"), "unauthorized");
  EXPECT_EQ(err2.at("data").at("code"), "missing_token");
}

TEST_F(SocketIoPollingTest, RawPollingRequestsAreAnsweredAsTheReferenceServerAnswersThem) {
  start();
  const HttpResponse open = http_get(port_, "/socket.io/?EIO=4&transport=polling");
  ASSERT_EQ(open.status, 200) << open.body;
  EXPECT_EQ(open.headers.at("content-type"), "text/plain; charset=UTF-8");
  ASSERT_EQ(open.body.substr(0, 1), "0");
  const Json handshake = Json::parse(open.body.substr(1));
  EXPECT_EQ(handshake.at("upgrades"), Json::array({"websocket"}));
  const std::string sid = handshake.at("sid");
  const std::string path = "/socket.io/?EIO=4&transport=polling&sid=" + sid;

  const HttpResponse sent = http_request(port_, "POST", path, {{"Content-Type", "text/plain;charset=UTF-8"}},
                                         "40" + Json({{"token", token("u1")}}).dump());
  EXPECT_EQ(sent.status, 200);
  EXPECT_EQ(sent.body, "ok");
  const HttpResponse got = http_get(port_, path);
  ASSERT_EQ(got.status, 200);
  const auto sep = got.body.find('\x1e');
  ASSERT_NE(sep, std::string::npos) << got.body;
  EXPECT_EQ(got.body.substr(0, 9), R"(40{"sid":)");
  EXPECT_EQ(got.body.substr(sep + 1, 22), R"(42["channel.snapshot",)");
  EXPECT_NE(http_get(port_, "/metrics").body.find("\nmembership_notifier_polling_sessions 1\n"), std::string::npos)
      << "the open session counts as one polling session";

  auto code_of = [](const HttpResponse& r) { return r.status == 400 ? Json::parse(r.body).at("code").get<int>() : -1; };
  EXPECT_EQ(code_of(http_get(port_, "/socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA")), 1);
  EXPECT_EQ(code_of(http_request(port_, "POST", "/socket.io/?EIO=4&transport=polling")), 2);
  EXPECT_EQ(code_of(http_get(port_, "/socket.io/?EIO=3&transport=polling")), 5);
  EXPECT_EQ(code_of(http_get(port_, "/socket.io/?EIO=4&transport=carrier-pigeon")), 0);
  EXPECT_EQ(code_of(http_request(port_, "PUT", path)), 3);
  EXPECT_EQ(http_request(port_, "POST", path, {}, std::string(8192, '4')).status, 413)
      << "a body over maxPayload (--max-message-bytes)";

  // A packet that does not parse ends the session; so does a second GET while one is held.
  const HttpResponse bad = http_request(port_, "POST", path, {}, "abc");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(code_of(http_get(port_, path)), 1);
  EXPECT_TRUE(sidecar().wait_for_log("unparseable payload"));
  EXPECT_NE(http_get(port_, "/metrics").body.find("\nmembership_notifier_polling_sessions 0\n"), std::string::npos)
      << "and no longer once it has ended";
}

// The server's limits hold for polling sessions as for WebSockets: each a raw client here.
TEST_F(SocketIoPollingTest, TheLimitsOfWebSocketSessionsHoldForPollingSessions) {
  start({"--max-connections-per-user", "1", "--max-unauthenticated-per-address", "4", "--max-buffered-bytes", "4096",
         "--slow-client-grace", "200ms", "--client-message-burst", "20", "--allowed-origins",
         "https://app.example.com"});
  auto open = [&](const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    const HttpResponse r = http_get(port_, "/socket.io/?EIO=4&transport=polling", headers);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? Json::parse(r.body.substr(1)).at("sid").get<std::string>() : std::string();
  };
  auto path = [](const std::string& sid) { return "/socket.io/?EIO=4&transport=polling&sid=" + sid; };
  auto connect = [&](const std::string& sid, const std::string& user) {
    EXPECT_EQ(http_request(port_, "POST", path(sid), {}, "40" + Json({{"token", token(user)}}).dump()).body, "ok");
    return http_get(port_, path(sid)).body;
  };

  // Origin: the allow-list, as for a WebSocket; an allowed page may read the replies (CORS).
  EXPECT_EQ(http_get(port_, "/socket.io/?EIO=4&transport=polling", {{"Origin", "https://evil.example"}}).status, 403);
  const HttpResponse allowed =
      http_get(port_, "/socket.io/?EIO=4&transport=polling", {{"Origin", "https://app.example.com"}});
  EXPECT_EQ(allowed.status, 200);
  EXPECT_EQ(allowed.headers.at("access-control-allow-origin"), "https://app.example.com");

  // Per user: a second session of u1 is refused at CONNECT.
  const std::string first = open();
  EXPECT_EQ(connect(first, "u1").substr(0, 9), R"(40{"sid":)");
  const std::string second = open();
  const std::string refused = connect(second, "u1");
  EXPECT_EQ(refused.substr(0, 2), "44") << refused;
  EXPECT_NE(refused.find("too_many_connections"), std::string::npos) << refused;

  // The message bucket: a payload of more packets than the burst closes the session (4029).
  const std::string flood = open();
  std::string body = "3";
  for (int i = 0; i < 30; ++i) body += "\x1e" "3";
  EXPECT_EQ(http_request(port_, "POST", path(flood), {}, body).status, 200);
  EXPECT_TRUE(sidecar().wait_for_log("too many messages", 3s));

  // The budget: a session that stops polling while events pile up is closed (1013).
  const std::string slow = open();
  EXPECT_EQ(connect(slow, "u2").substr(0, 9), R"(40{"sid":)");
  // Slowness is judged when there is more to send: a second wave after the grace.
  for (int wave = 0; wave < 2; ++wave) {
    for (int i = 0; i < 30; ++i)
      sql("INSERT INTO channel_members VALUES ('a-long-channel-name-to-fill-the-budget-" + std::to_string(wave) + "-" +
          std::to_string(i) + "', 'u2')");
    std::this_thread::sleep_for(400ms);
  }
  EXPECT_TRUE(sidecar().wait_for_log("too slow", 10s));
  EXPECT_EQ(http_get(port_, path(slow)).status, 400) << "its queue was dropped with it";
  // Unauthenticated, per address (last: the other sessions above count too): sessions that
  // never send CONNECT, past the cap, cut the oldest; the newest stay.
  std::vector<std::string> idle;
  for (int i = 0; i < 7; ++i) idle.push_back(open());
  EXPECT_TRUE(sidecar().wait_for_log("cut: newer unauthenticated connections", 3s));
  EXPECT_EQ(http_request(port_, "POST", path(idle.front()), {}, "3").status, 400);
  const HttpResponse newest = http_request(port_, "POST", path(idle.back()), {}, "3");
  EXPECT_EQ(newest.status, 200) << newest.body << "\n" << sidecar().log();
}

TEST_F(SocketIoPollingTest, TheOtherWebSocketRefusalsStillUseTheReferenceErrors) {
  start();
  auto upgrade_polling = WsClient::connect(port_, "/socket.io/?EIO=4&transport=polling");
  EXPECT_EQ(upgrade_polling->handshake_status(), 400);
  auto eio3 = WsClient::connect(port_, "/socket.io/?EIO=3&transport=websocket");
  EXPECT_EQ(eio3->handshake_status(), 400);
  EXPECT_EQ(Json::parse(eio3->handshake_body()).at("code"), 5);
  auto unknown = WsClient::connect(port_, "/socket.io/?EIO=4&transport=websocket&sid=AAAAAAAAAAAAAAAAAAAA");
  EXPECT_EQ(unknown->handshake_status(), 400);
  EXPECT_EQ(Json::parse(unknown->handshake_body()).at("code"), 1);
}

// Three processes on one port, each client address steered to one of them: every request of a
// polling client reaches the process that holds its session, with default options or polling
// only, and a client that reconnects from the same address recovers there.
TEST_F(SocketIoPollingTest, ThreeProcessesSharingAPortServeStockClientsFromSixAddresses) {
  const uint16_t port = free_port();
  for (int i = 0; i < 3; ++i)
    start({"--reuse-port-group", "3", "--admin-listen", "127.0.0.1:0"}, port);
  std::vector<std::unique_ptr<NodeClient>> clients;
  std::vector<std::string> users;
  for (int host = 2; host <= 7; ++host) {
    const std::string user = "u" + std::to_string(host);
    Json o = host % 2 ? polling_only(user, 500) : options(user, 500);
    o["localAddress"] = "127.0.0." + std::to_string(host);
    users.push_back(user);
    clients.push_back(std::make_unique<NodeClient>(url(), o));
  }
  for (auto& c : clients) {
    EXPECT_EQ(c->expect("connect").at("recovered"), false) << c->transcript();
    c->expect_event("channel.snapshot");
  }
  for (const auto& u : users) sql("INSERT INTO channel_members VALUES ('a', '" + u + "')");
  for (auto& c : clients) EXPECT_EQ(c->expect_event("channel.joined").at("channelId"), "a") << c->transcript();
  for (auto& c : clients) c->command("engine-close");
  for (auto& c : clients) c->expect("disconnect");
  for (const auto& u : users) sql("INSERT INTO channel_members VALUES ('b', '" + u + "')");
  for (auto& c : clients) {
    auto seen = until(*c, [](const Json& j) { return is(j, "connect"); });
    EXPECT_EQ(seen.back().at("recovered"), true) << c->transcript();
    // A request that reached another process would fail ("xhr poll error").
    for (const auto& j : seen) EXPECT_FALSE(is(j, "connect_error")) << c->transcript();
    EXPECT_EQ(c->expect_event("channel.joined").at("channelId"), "b") << c->transcript();
  }
  for (auto& c : clients) {
    for (const auto& j : c->drain(300ms)) EXPECT_FALSE(is(j, "connect_error")) << c->transcript();
  }
  // Each address's sessions were all on the process its address names: the group's sockets
  // are numbered in the order the processes began listening.
  for (int host = 2; host <= 7; ++host) {
    const uint32_t address = (127u << 24) | static_cast<uint32_t>(host);
    const size_t owner = address % 3;
    for (size_t i = 0; i < 3; ++i) {
      const bool logged = sidecar(i).log().find("peer=127.0.0." + std::to_string(host) + ":") != std::string::npos;
      EXPECT_EQ(logged, i == owner) << "127.0.0." << host << " on process " << i;
    }
  }
}

}  // namespace
}  // namespace mn::test
