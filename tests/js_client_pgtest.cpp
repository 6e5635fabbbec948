// The JavaScript client library (clients/js) against the real sidecar: clients/js/test/driver.mjs
// runs it in node and prints one JSON report per library event (connected, snapshot, joined,
// left, duplicate, refreshed, disconnected, error, token-request, state); the test asserts on
// them and on the table.
#include "node/node_client.h"
#include "support/notifier_fixture.h"

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace mn::test {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

const char* kDriver = "../../clients/js/test/driver.mjs";  // relative to node_dir()

class JsClient : public NotifierFixture {
 protected:
  std::string url(uint16_t p = 0) { return "ws://127.0.0.1:" + std::to_string(p ? p : port()) + "/ws"; }
  std::unique_ptr<NodeClient> client(const Json& options, uint16_t p = 0) {
    return std::make_unique<NodeClient>(url(p), options, kDriver);
  }
  std::string short_token(const std::string& user, std::chrono::seconds ttl) const {
    return mint_hs256(kTestSecret, claims_for(user, ttl));
  }
  // The user's channels as the table has them, sorted.
  Json table_channels(const std::string& user) {
    Json out = Json::array();
    for (const auto& row : query("SELECT channel_id FROM channel_members WHERE user_id = '" + user +
                                 "' ORDER BY channel_id"))
      out.push_back(row[0].as<std::string>());
    return out;
  }
  // Reports until `quiet` passes with none; fails the test on an error report.
  static std::vector<Json> changes(NodeClient& c, std::chrono::milliseconds quiet = 600ms) {
    std::vector<Json> out;
    for (Json& r : c.drain(quiet)) {
      EXPECT_NE(r.value("type", ""), "error") << r.dump();
      out.push_back(r);
    }
    return out;
  }
  // The next report of `type`, skipping others (kept in *skipped when given); an empty object
  // and a test failure if none comes within `timeout`.
  static Json until(NodeClient& c, const std::string& type, std::chrono::milliseconds timeout = 15s,
                    std::vector<Json>* skipped = nullptr) {
    const auto deadline = NodeClient::Clock::now() + timeout;
    while (auto r = c.next(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - NodeClient::Clock::now()))) {
      if (r->value("type", "") == type) return *r;
      if (skipped) skipped->push_back(*r);
    }
    ADD_FAILURE() << "no \"" << type << "\" report within " << timeout.count() << " ms:\n" << c.transcript();
    return Json::object();
  }
  static std::vector<std::string> describe(const std::vector<Json>& reports) {
    std::vector<std::string> out;
    for (const Json& r : reports) {
      const std::string t = r.value("type", "");
      out.push_back(t == "joined" || t == "left" ? t + " " + r.value("channelId", "") : t);
    }
    return out;
  }
};

TEST_F(JsClient, AClientGetsASnapshotThenEveryChangeInOrderAndItsChannelSetFollowsTheTable) {
  sql("INSERT INTO channel_members VALUES ('c0', 'u1'), ('c0', 'u2')");
  start_sidecar();
  auto c = client({{"token", token("u1")}});
  Json s = c->expect("connected");
  EXPECT_EQ(s["userId"], "u1");
  EXPECT_EQ(s["recovered"], false);
  EXPECT_EQ(c->expect("snapshot")["channels"], Json::array({"c0"}));
  sql("INSERT INTO channel_members VALUES ('c1', 'u1'), ('c2', 'u2')");
  sql("BEGIN; INSERT INTO channel_members VALUES ('c2', 'u1'); DELETE FROM channel_members WHERE channel_id = 'c0'; COMMIT");
  EXPECT_EQ(describe(changes(*c)), (std::vector<std::string>{"joined c1", "joined c2", "left c0"}));
  c->command("state");
  Json st = c->expect("state");
  EXPECT_EQ(st["channels"], table_channels("u1"));
  EXPECT_TRUE(st["offset"].is_string());
  EXPECT_EQ(st["stored"], true) << "the offset and channels are persisted";
}

TEST_F(JsClient, AfterASidecarRestartTheClientResumesWithItsOffsetAndGetsWhatItMissedOnceInOrder) {
  const uint16_t fixed = free_port();
  start_sidecar({"--listen", "127.0.0.1:" + std::to_string(fixed)});
  sql("INSERT INTO channel_members VALUES ('a', 'u1')");
  auto c = client({{"token", token("u1")}, {"backoff", {{"min", 100}, {"max", 400}}}}, fixed);
  c->expect("connected");
  EXPECT_EQ(c->expect("snapshot")["channels"], Json::array({"a"}));
  sql("INSERT INTO channel_members VALUES ('b', 'u1')");
  EXPECT_EQ(c->expect("joined")["channelId"], "b");

  sidecar().signal(SIGTERM);
  EXPECT_EQ(sidecar().wait_exit(), 0);
  EXPECT_EQ(c->expect("disconnected")["code"], 1001);
  std::vector<std::string> missed;
  for (int i = 0; i < 20; ++i) {
    const std::string ch = "m" + std::to_string(i);
    sql("INSERT INTO channel_members VALUES ('" + ch + "', 'u1')");
    missed.push_back("joined " + ch);
  }
  sql("DELETE FROM channel_members WHERE channel_id = 'a'");
  missed.push_back("left a");
  start_sidecar({"--listen", "127.0.0.1:" + std::to_string(fixed)});

  // Attempts that found the port closed are reported as errors and disconnects; then the
  // session resumes.
  std::vector<Json> before;
  Json session = until(*c, "connected", 15s, &before);
  for (const Json& r : before) EXPECT_NE(r.value("type", ""), "joined") << "an event before the session";
  EXPECT_EQ(session["recovered"], true);
  std::vector<std::string> got;
  for (auto& d : describe(changes(*c)))
    if (d != "disconnected") got.push_back(d);
  EXPECT_EQ(got, missed) << c->transcript();
  c->command("state");
  EXPECT_EQ(c->expect("state")["channels"], table_channels("u1"));
}

TEST_F(JsClient, ANewClientOnTheSameStorageResumesWhereTheLastLeftOffWithoutASnapshot) {
  start_sidecar();
  sql("INSERT INTO channel_members VALUES ('a', 'u1')");
  auto c = client({{"token", token("u1")}});
  c->expect("connected");
  c->expect("snapshot");
  sql("INSERT INTO channel_members VALUES ('b', 'u1')");
  EXPECT_EQ(c->expect("joined")["channelId"], "b");
  c->command("close");
  EXPECT_EQ(until(*c, "disconnected")["reconnectIn"], nullptr) << "close() stops the client";
  sql("INSERT INTO channel_members VALUES ('c', 'u1')");
  sql("DELETE FROM channel_members WHERE channel_id = 'b'");
  c->command("restart");  // what a page reload does: a new client, the same storage
  Json s = until(*c, "connected");
  EXPECT_EQ(s["recovered"], true);
  EXPECT_EQ(describe(changes(*c)), (std::vector<std::string>{"joined c", "left b"}));
  c->command("state");
  EXPECT_EQ(c->expect("state")["channels"], table_channels("u1"));
}

TEST_F(JsClient, ATruncateGivesEveryClientASnapshotThatReplacesItsWholeChannelSet) {
  start_sidecar();
  sql("INSERT INTO channel_members VALUES ('a', 'u1'), ('b', 'u1'), ('a', 'u2')");
  auto c1 = client({{"token", token("u1")}});
  auto c2 = client({{"token", token("u2")}});
  for (auto* c : {c1.get(), c2.get()}) {
    c->expect("connected");
    c->expect("snapshot");
  }
  sql("BEGIN; TRUNCATE channel_members; INSERT INTO channel_members VALUES ('z', 'u1'); COMMIT");
  EXPECT_EQ(c1->expect("snapshot")["channels"], Json::array({"z"}));
  EXPECT_EQ(c2->expect("snapshot")["channels"], Json::array());
  sql("INSERT INTO channel_members VALUES ('y', 'u2')");
  EXPECT_EQ(describe(changes(*c2)), std::vector<std::string>{"joined y"});
  EXPECT_EQ(describe(changes(*c1, 100ms)), std::vector<std::string>{});
  for (auto [c, user] : {std::pair{c1.get(), "u1"}, std::pair{c2.get(), "u2"}}) {
    c->command("state");
    EXPECT_EQ(c->expect("state")["channels"], table_channels(user)) << user;
  }
}

TEST_F(JsClient, UnderConcurrentWritesAndASidecarKilledAndRestartedEveryClientEndsWithTheTablesState) {
  const uint16_t fixed = free_port();
  start_sidecar({"--listen", "127.0.0.1:" + std::to_string(fixed)});
  const std::vector<std::string> users = {"u1", "u2", "u3"};
  std::vector<std::unique_ptr<NodeClient>> clients;
  for (const auto& u : users) {
    clients.push_back(client({{"token", token(u)}, {"backoff", {{"min", 50}, {"max", 200}}}}, fixed));
    clients.back()->expect("connected");
    clients.back()->expect("snapshot");
  }
  std::atomic<int> written{0};
  std::thread writer([&] {
    pqxx::connection conn(conninfo());
    for (int i = 0; i < 400; ++i, ++written) {
      // Each user in turn; for each, five joins then five leaves, over and over: every write a change.
      const int j = i / 3;
      const std::string ch = "'w" + std::to_string(j % 5) + "'", user = "'" + users[i % 3] + "'";
      pqxx::nontransaction(conn).exec((j / 5) % 2 == 1 ? "DELETE FROM channel_members WHERE channel_id = " + ch +
                                                       " AND user_id = " + user
                                                 : "INSERT INTO channel_members VALUES (" + ch + ", " + user +
                                                       ") ON CONFLICT DO NOTHING");
      std::this_thread::sleep_for(5ms);
    }
  });
  while (written < 100) std::this_thread::sleep_for(10ms);
  sidecar().kill9();
  std::this_thread::sleep_for(300ms);
  start_sidecar({"--listen", "127.0.0.1:" + std::to_string(fixed)});
  writer.join();
  for (size_t k = 0; k < users.size(); ++k) {
    NodeClient& c = *clients[k];
    std::vector<Json> reports;
    // The session after the kill, then everything until quiet.
    Json s = until(c, "connected", 15s, &reports);
    EXPECT_EQ(s["recovered"], true) << users[k];
    for (Json& r : c.drain(800ms)) reports.push_back(r);
    std::set<std::string> applied;
    int duplicates = 0, refused = 0;
    for (const Json& r : reports) {
      const std::string t = r.value("type", "");
      duplicates += t == "duplicate";
      refused += t == "disconnected" && r.value("code", 0) == 1006;
      EXPECT_NE(t, "snapshot") << users[k] << ": resumed, so no snapshot";
      if (t == "joined" || t == "left") {
        EXPECT_TRUE(applied.insert(r.value("id", "")).second) << users[k] << " applied id " << r["id"] << " twice";
      }
    }
    std::printf("%s: %zu changes applied, %d duplicates dropped, %d attempts refused while down\n",
                users[k].c_str(), applied.size(), duplicates, refused);
    EXPECT_EQ(applied.size(), (400 - k + 2) / 3) << users[k] << ": every write is a change, each applied once";
    c.command("state");
    EXPECT_EQ(c.expect("state")["channels"], table_channels(users[k])) << users[k] << "\n" << c.transcript();
  }
}

// Tokens that expire within seconds: the server closes a socket at exp with no leeway.
class JsClientTokens : public JsClient {
 protected:
  void SetUp() override {
    JsClient::SetUp();
    start_sidecar({"--jwt-leeway", "0s"});
  }
};

TEST_F(JsClientTokens, TheClientRefreshesItsTokenInBandBeforeExpiryAndKeepsItsSocketPastIt) {
  const auto started = NodeClient::Clock::now();
  auto c = client({{"token", short_token("u1", 4s)}, {"getToken", true}});
  c->expect("connected");
  c->expect("snapshot");
  // 4 s to live is less than refreshBefore (30 s): refreshed at half its life.
  c->expect("token-request", 4s);
  EXPECT_LT(NodeClient::Clock::now() - started, 3500ms);
  c->command("token " + token("u1"));
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(c->expect("refreshed")["validUntil"].get<double>(), now + 3600, 5);
  std::this_thread::sleep_for(started + 5s - NodeClient::Clock::now());
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  EXPECT_EQ(describe(changes(*c)), std::vector<std::string>{"joined c1"}) << "the socket outlived the first token";
  EXPECT_EQ(metric(metrics(), "membership_notifier_refreshes_total"), 1);
}

TEST_F(JsClientTokens, AfterA4001TheClientReconnectsWithANewTokenFromGetTokenAndResumes) {
  auto c = client({{"token", short_token("u1", 2s)}, {"getToken", true}, {"backoff", {{"min", 100}, {"max", 400}}}});
  c->expect("connected");
  c->expect("snapshot");
  c->expect("token-request", 3s);  // the refresh; left unanswered, as from a slow token service
  Json d = c->expect("disconnected", 4s);
  EXPECT_EQ(d["code"], 4001);
  EXPECT_TRUE(d["reconnectIn"].is_number());
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  c->command("token " + token("u1"));  // answers the refresh, too late: its socket is gone
  c->expect("token-request");
  c->command("token " + token("u1"));
  Json s = c->expect("connected");
  EXPECT_EQ(s["recovered"], true);
  EXPECT_EQ(describe(changes(*c)), std::vector<std::string>{"joined c1"});
}

TEST_F(JsClientTokens, WithAStaticTokenAndNoGetTokenTheClientStopsAt4001InsteadOfRetrying) {
  auto c = client({{"token", short_token("u1", 2s)}});
  c->expect("connected");
  c->expect("snapshot");
  Json e = c->expect("error", 4s);
  EXPECT_EQ(e["code"], "token_expired");
  Json d = c->expect("disconnected");
  EXPECT_EQ(d["code"], 4001);
  EXPECT_EQ(d["reconnectIn"], nullptr);
  EXPECT_EQ(c->drain(1s).size(), 0u) << c->transcript();
}

}  // namespace
}  // namespace mn::test
