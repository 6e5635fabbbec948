// The limits and the bad input of issue 2, against the real sidecar, a real PostgreSQL and real
// clients on 127.0.0.1: each bad frame gets its close code and closes only its own socket; a
// client that stops reading is closed, not buffered without bound; the connection cap, the
// handshake timeout and ping/pong hold; SIGTERM closes with 1001 and exits 0; the HTTP probes
// say what they should; garbage from the database side disturbs nothing.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/http.h"
#include "support/jwt_mint.h"
#include "support/notifier_fixture.h"
#include "support/sidecar.h"
#include "support/ws_client.h"

namespace mn::test {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr uint8_t kText = 0x1, kClose = 0x8, kPing = 0x9;  // WebSocket opcodes

// Resident set size of a process in KiB, from /proc/<pid>/status; -1 if unreadable.
long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Milliseconds since `start`.
long long ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// Reads frames (data, pings) until a close frame; its code, or -1 if none came in time.
int close_code_of(RawTcpWsClient& c, std::chrono::milliseconds timeout = 5s, int* pings = nullptr,
                  std::string* reason = nullptr) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto f = c.read_frame(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!f) return -1;
    if (f->opcode == kPing && pings) ++*pings;
    if (f->opcode == kClose) {
      if (reason && f->payload.size() > 2) *reason = f->payload.substr(2);
      return f->close_code();
    }
  }
  return -1;
}

// Waits until recv() on fd reports end of stream (or an error); milliseconds taken, or -1.
long long ms_until_eof(int fd, std::chrono::milliseconds timeout) {
  const auto start = Clock::now();
  const auto deadline = start + timeout;
  char buf[4096];
  while (wait_readable(fd, deadline)) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return ms_since(start);
  }
  return -1;
}

class LimitsTest : public NotifierFixture {
 protected:
  // A sidecar with exactly these limits (the fixture's start_sidecar fixes --max-connections).
  Sidecar& serve(const std::vector<std::string>& flags, Sidecar* which = nullptr,
                 const std::string& database_url = "") {
    Sidecar& s = which ? *which : sidecar();
    if (secret_file_.empty()) {
      secret_file_ = testing::TempDir() + "/mn_limits_" + db();
      std::ofstream(secret_file_) << kTestSecret;
    }
    std::vector<std::string> args = {"serve",        "--database-url", database_url.empty() ? conninfo() : database_url,
                                     "--listen",     "127.0.0.1:0",    "--jwt-secret-file",
                                     secret_file_,   "--poll-interval", "200ms"};
    args.insert(args.end(), flags.begin(), flags.end());
    s.start(args);
    if (database_url.empty()) {
      EXPECT_TRUE(s.wait_ready()) << s.log();
    }
    return s;
  }

  // A raw client of `user`, past the handshake, the session frame and the snapshot.
  std::unique_ptr<RawTcpWsClient> raw(const std::string& user, int recv_buffer_bytes = 0) {
    auto c = RawTcpWsClient::connect(port(), "/ws?access_token=" + token(user), {}, recv_buffer_bytes);
    EXPECT_TRUE(c->handshake_ok()) << c->handshake_response();
    for (const char* expected : {"session", "channel.snapshot"}) {
      auto f = c->read_frame();
      EXPECT_TRUE(f && f->opcode == kText) << "no " << expected << " frame";
      if (!f) continue;
      EXPECT_EQ(Json::parse(f->payload).value("event", ""), expected);
    }
    return c;
  }

  // A change for `user` reaches `witness`: the sidecar and its other clients carry on.
  void expect_still_delivering(WsClient& witness, const std::string& channel, const std::string& user = "u1") {
    sql("INSERT INTO channel_members VALUES ('" + channel + "', '" + user + "')");
    EXPECT_EQ(events(witness), std::vector<std::string>{"joined " + channel + " " + user});
    EXPECT_TRUE(witness.is_open());
    EXPECT_TRUE(sidecar().running());
  }

  std::string secret_file_;
};

// ---- Bad frames ---------------------------------------------------------------------------

TEST_F(LimitsTest, ABinaryFrameClosesThatSocketWith1003AndNoOther) {
  serve({});
  auto witness = connect("u1");
  auto sender = connect("u1");
  sender->send_binary(std::string("\x00\x01\x02", 3));
  ASSERT_TRUE(sender->wait_closed());
  EXPECT_EQ(sender->close_code(), 1003);
  expect_still_delivering(*witness, "c1");
  EXPECT_TRUE(sender->drain(100ms).empty());
}

TEST_F(LimitsTest, ATextFrameGetsAnErrorFrameAndTheSocketKeepsReceivingEvents) {
  serve({});
  auto c = connect("u1");
  for (const char* text : {"hello", R"({"event":"ping"})"}) {
    c->send_text(text);
    auto reply = c->next_json();
    ASSERT_TRUE(reply.has_value()) << "no reply to " << text;
    EXPECT_EQ(reply->value("event", ""), "error");
    EXPECT_EQ((*reply)["data"].value("code", ""), "unexpected_message") << reply->dump();
  }
  expect_still_delivering(*c, "c1");
  EXPECT_EQ(metric(metrics(), "membership_notifier_bad_messages_total"), 2);
}

TEST_F(LimitsTest, AMessageOverMaxMessageBytesClosesWith1009AndOneUnderItDoesNot) {
  serve({"--max-message-bytes", "1024"});
  auto witness = connect("u1");
  auto c = connect("u1");
  c->send_text(std::string(1000, 'a'));
  auto reply = c->next_json();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->value("event", ""), "error") << "a message under the limit is only answered";
  c->send_text(std::string(2000, 'a'));
  ASSERT_TRUE(c->wait_closed());
  EXPECT_EQ(c->close_code(), 1009);
  expect_still_delivering(*witness, "c1");
}

TEST_F(LimitsTest, InvalidUtf8InATextFrameClosesWith1007) {
  serve({});
  auto witness = connect("u1");
  auto c = raw("u1");
  ASSERT_TRUE(c->send_frame(kText, "caf\xc3\x28 \xff\xfe"));
  EXPECT_EQ(close_code_of(*c), 1007);
  EXPECT_TRUE(c->peer_closed());
  expect_still_delivering(*witness, "c1");
}

TEST_F(LimitsTest, MalformedFramesCloseTheirSocketWith1002) {
  serve({});
  auto witness = connect("u1");
  std::string rsv1 = RawTcpWsClient::make_frame(kText, "hello");
  rsv1[0] = static_cast<char>(rsv1[0] | 0x40);  // RSV1 without a negotiated extension
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"an unmasked client frame", RawTcpWsClient::make_frame(kText, "hello", true, false)},
      {"reserved opcode 0x3", RawTcpWsClient::make_frame(0x3, "hello")},
      {"reserved control opcode 0xB", RawTcpWsClient::make_frame(0xB, "")},
      {"RSV1 set", rsv1},
      {"a fragmented ping", RawTcpWsClient::make_frame(kPing, "x", false)},
      {"a ping over 125 bytes", RawTcpWsClient::make_frame(kPing, std::string(200, 'p'))},
      {"a continuation with nothing to continue", RawTcpWsClient::make_frame(0x0, "tail")},
  };
  std::vector<std::unique_ptr<RawTcpWsClient>> clients;
  for (const auto& [what, bytes] : cases) {
    clients.push_back(raw("u1"));
    ASSERT_TRUE(clients.back()->send_raw_bytes(bytes)) << what;
  }
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(close_code_of(*clients[i]), 1002) << cases[i].first;
    EXPECT_TRUE(clients[i]->peer_closed()) << cases[i].first;
  }
  expect_still_delivering(*witness, "c1");
}

// ---- A client that stops reading ----------------------------------------------------------

TEST_F(LimitsTest, ClientsThatStopReadingAreClosedWhileAReadingClientOfTheSameUserGetsEveryEvent) {
  serve({"--max-buffered-bytes", "65536"});
  auto normal = connect("u1");
  constexpr int kSlow = 8;
  std::vector<std::unique_ptr<RawTcpWsClient>> slow;
  for (int i = 0; i < kSlow; ++i) slow.push_back(raw("u1", 4096));
  // And a real client that pauses reading.
  auto paused = WsClient::connect(port(), "/ws?access_token=" + token("u1"));
  ASSERT_TRUE(paused->is_open()) << paused->error();
  ASSERT_EQ(paused->drain(300ms).size(), 2u) << "session and snapshot";
  paused->stop_reading();
  const long rss_before = rss_kib(sidecar().pid());
  ASSERT_GT(rss_before, 0);

  // 2000 rows of ~1 KB channel ids: ~2.4 MB for every socket of u1. Five rows per transaction,
  // the next one only once the reading client has the last, so no single batch nears the
  // budget (a burst over the budget has a test of its own below).
  constexpr int kRows = 2000, kPerTx = 5;
  int received = 0;
  {
    pqxx::connection conn{conninfo()};
    for (int i = 0; i < kRows && received == i; i += kPerTx) {
      pqxx::nontransaction tx{conn};
      tx.exec("INSERT INTO channel_members SELECT lpad(g::text, 1000, 'x'), 'u1' FROM generate_series(" +
              std::to_string(i) + ", " + std::to_string(i + kPerTx - 1) + ") g");
      while (received < i + kPerTx) {
        auto e = normal->next_json(5s);
        if (!e) break;
        ASSERT_EQ(e->value("event", ""), "channel.joined") << e->dump().substr(0, 200);
        const std::string n = std::to_string(received);
        ASSERT_EQ((*e)["data"]["channelId"], std::string(1000 - n.size(), 'x') + n);
        ++received;
      }
    }
  }
  EXPECT_EQ(received, kRows) << "the reading client must get every event";
  EXPECT_TRUE(normal->is_open());
  const long rss_after = rss_kib(sidecar().pid());

  // By now the server has decided about the slow ones: each was sent ~2.4 MB it did not read,
  // 37 times the budget. (Counted in unsent bytes wherever they wait: websocketpp's queue or
  // the kernel's send buffer, which autotunes up to net.ipv4.tcp_wmem's maximum unless the
  // server pins SO_SNDBUF.)
  std::string m;
  for (auto until = Clock::now() + 2s; Clock::now() < until; std::this_thread::sleep_for(50ms)) {
    m = metrics();
    if (metric(m, "membership_notifier_closed_backpressure_total") >= kSlow + 1) break;
  }
  const bool all_closed = metric(m, "membership_notifier_closed_backpressure_total") == kSlow + 1;
  EXPECT_TRUE(all_closed) << "every client that stopped reading should have been closed as too slow:\n" << m;
  if (all_closed) {
    for (int i = 0; i < kSlow; ++i) {
      EXPECT_EQ(close_code_of(*slow[i]), 1013) << "slow client " << i;
      slow[i]->send_frame(kClose, std::string("\x03\xe8", 2));
      EXPECT_TRUE(slow[i]->peer_closed()) << "slow client " << i;
    }
    paused->resume_reading();
    EXPECT_TRUE(paused->wait_closed());
    EXPECT_EQ(paused->close_code(), 1013);
  }

  // Unbounded buffering would hold ~2.4 MB per slow socket (~21 MB here); bounded, each holds
  // at most the 64 KiB budget.
  EXPECT_LT(rss_after - rss_before, 12 * 1024) << "RSS grew from " << rss_before << " KiB to " << rss_after << " KiB";
  expect_still_delivering(*normal, "after");
}

// The budget is for clients that do not read; one that does must not be closed because a
// single transaction (or a resume) brings more than the budget at once.
TEST_F(LimitsTest, AReadingClientIsNotClosedWhenOneTransactionBringsItMoreThanTheBudget) {
  serve({"--max-buffered-bytes", "65536"});
  auto c = connect("u1");
  // 100 events of ~1.15 KB: ~115 KB for this user in one commit.
  sql("INSERT INTO channel_members SELECT lpad(g::text, 1000, 'x'), 'u1' FROM generate_series(0, 99) g");
  int received = 0;
  while (auto e = c->next_json(3s)) {
    if (e->value("event", "") == "channel.joined") ++received;
  }
  EXPECT_EQ(received, 100);
  EXPECT_TRUE(c->is_open()) << "closed with " << c->close_code() << " \"" << c->close_reason() << "\"";
}

TEST_F(LimitsTest, AClientResumingFromAnOffsetBehindMoreThanTheBudgetCatchesUp) {
  serve({"--max-buffered-bytes", "65536"});
  Json snapshot;
  auto first = connect("u1", "", 0, nullptr, &snapshot);
  const std::string offset = snapshot.value("offset", "");
  ASSERT_FALSE(offset.empty()) << snapshot.dump();
  first->close();
  ASSERT_TRUE(first->wait_closed());
  for (int i = 0; i < 100; i += 20) {  // five small transactions while it is away
    sql("INSERT INTO channel_members SELECT lpad(g::text, 1000, 'x'), 'u1' FROM generate_series(" +
        std::to_string(i) + ", " + std::to_string(i + 19) + ") g");
  }
  Json session;
  auto again = connect("u1", "&offset=" + offset, 0, &session);
  ASSERT_TRUE(again->is_open());
  EXPECT_EQ(session["data"]["recovered"], true) << session.dump();
  int received = 0;
  while (auto e = again->next_json(3s)) {
    if (e->value("event", "") == "channel.joined") ++received;
  }
  EXPECT_EQ(received, 100);
  EXPECT_TRUE(again->is_open()) << "closed with " << again->close_code() << " \"" << again->close_reason()
                                << "\": a reading client is sent away once per budget's worth of backlog";
}

TEST_F(LimitsTest, AUserWhoseSnapshotIsLargerThanTheBudgetCanStillConnect) {
  serve({"--max-buffered-bytes", "65536"});
  // 100 channels with ~1 KB ids: a ~105 KB snapshot, more than the 64 KiB budget.
  sql("INSERT INTO channel_members SELECT lpad(g::text, 1000, 'x'), 'u1' FROM generate_series(0, 99) g");
  auto c = WsClient::connect(port(), "/ws?access_token=" + token("u1"));
  ASSERT_EQ(c->handshake_status(), 101);
  auto session = c->next_json();
  ASSERT_TRUE(session.has_value());
  EXPECT_EQ(session->value("event", ""), "session");
  auto snapshot = c->next_json();
  ASSERT_TRUE(snapshot.has_value()) << "no snapshot; closed with " << c->close_code() << " \"" << c->close_reason()
                                    << "\": without a snapshot there is no offset, so every retry ends the same way";
  EXPECT_EQ((*snapshot)["data"]["channels"].size(), 100u);
  EXPECT_TRUE(c->is_open());
}

// ---- Connection cap, handshake timeout, keepalive ----------------------------------------

TEST_F(LimitsTest, TheSixthHandshakeOverMaxConnections5Gets503AndOneClosingMakesRoom) {
  serve({"--max-connections", "5"});
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 5; ++i) clients.push_back(connect("u" + std::to_string(i)));
  auto sixth = WsClient::connect(port(), "/ws?access_token=" + token("u5"));
  EXPECT_EQ(sixth->handshake_status(), 503) << sixth->handshake_body();
  EXPECT_FALSE(sixth->is_open());
  EXPECT_EQ(Json::parse(sixth->handshake_body())["data"].value("code", ""), "over_capacity");

  clients[0]->close();
  ASSERT_TRUE(clients[0]->wait_closed());
  for (auto until = Clock::now() + 5s; Clock::now() < until; std::this_thread::sleep_for(20ms)) {
    if (metric(metrics(), "membership_notifier_sessions") == 4) break;
  }
  auto again = connect("u5");
  ASSERT_TRUE(again->is_open());
  auto seventh = WsClient::connect(port(), "/ws?access_token=" + token("u6"));
  EXPECT_EQ(seventh->handshake_status(), 503);
}

TEST_F(LimitsTest, AFloodOfRawTcpConnectionsPastTheCapIsShedAndTheServerRecoversWhileTheyStayOpen) {
  serve({"--max-connections", "5", "--handshake-timeout", "1s"});
  auto witness = connect("u1");
  std::vector<int> flood;
  for (int i = 0; i < 400; ++i) {
    const int fd = connect_loopback(port());
    if (fd >= 0) flood.push_back(fd);
  }
  EXPECT_GT(flood.size(), 300u);
  // Past the handshake headroom the server closes new sockets at once instead of holding them.
  int shed = 0;
  for (int fd : flood) {
    if (ms_until_eof(fd, 10ms) >= 0) ++shed;
  }
  EXPECT_GT(shed, 250) << "sockets past the cap should be closed on accept";
  EXPECT_TRUE(sidecar().running());
  expect_still_delivering(*witness, "c1");

  // The flood stays open; its sockets that were let in are dropped by the handshake timeout,
  // and the port serves again.
  HttpResponse health;
  for (auto until = Clock::now() + 4s; Clock::now() < until; std::this_thread::sleep_for(50ms)) {
    health = http_get(port(), "/healthz", {}, 500ms);
    if (health.status == 200) break;
  }
  EXPECT_EQ(health.status, 200);
  EXPECT_TRUE(connect("u2")->is_open());
  for (int fd : flood) ::close(fd);
}

// While sockets that never finish a handshake are held on the public port, probes on
// --admin-listen get their answer (and, the newest unauthenticated socket cutting the oldest,
// so does a liveness probe on the public port); /readyz and /metrics are served there only.
TEST_F(LimitsTest, ProbesOnTheAdminAddressAreAnsweredWhileIdleSocketsAreHeldOnThePublicPort) {
  serve({"--admin-listen", "127.0.0.1:0", "--max-connections", "4", "--handshake-timeout", "20s"});
  const std::string said = "admin endpoints (/healthz, /readyz, /metrics) on 127.0.0.1:";
  const std::string log = sidecar().log();
  const auto at = log.find(said);
  ASSERT_NE(at, std::string::npos) << log;
  const auto admin = static_cast<uint16_t>(std::stoi(log.substr(at + said.size())));
  std::vector<int> idle;
  for (int i = 0; i < 4 + 64 + 16; ++i) {
    const int fd = connect_loopback(port());
    if (fd >= 0) idle.push_back(fd);
  }
  EXPECT_EQ(http_get(port(), "/healthz", {}, 2s).status, 200) << "idle sockets cannot keep a probe out";
  EXPECT_EQ(http_get(port(), "/readyz").status, 404) << "readiness is on the admin address only";
  EXPECT_EQ(http_get(port(), "/metrics").status, 404) << "metrics are on the admin address only";
  EXPECT_EQ(http_get(admin, "/healthz").status, 200);
  EXPECT_EQ(http_get(admin, "/readyz").status, 200);
  EXPECT_EQ(metric(http_get(admin, "/metrics").body, "membership_notifier_ready"), 1);
  EXPECT_EQ(http_get(admin, "/nothing").status, 404);
  auto ws = WsClient::connect(admin, "/ws?access_token=" + token("u1"));
  EXPECT_EQ(ws->handshake_status(), 404) << "no WebSocket on the admin address";
  // Its own cap: a flood of idle sockets there is shed too, and it still answers after.
  std::vector<int> admin_idle;
  for (int i = 0; i < 40; ++i) {
    const int fd = connect_loopback(admin);
    if (fd >= 0) admin_idle.push_back(fd);
  }
  int shed = 0;
  for (int fd : admin_idle) {
    if (ms_until_eof(fd, 10ms) >= 0) ++shed;
  }
  EXPECT_GE(shed, 20) << "past 16 open sockets the admin address closes new ones at accept";
  for (int fd : admin_idle) ::close(fd);
  HttpResponse health;
  for (auto until = Clock::now() + 4s; Clock::now() < until; std::this_thread::sleep_for(50ms)) {
    health = http_get(admin, "/healthz", {}, 500ms);
    if (health.status == 200) break;
  }
  EXPECT_EQ(health.status, 200);
  for (int fd : idle) ::close(fd);
}

TEST_F(LimitsTest, ASocketThatSendsNothingOrHalfARequestIsClosedAfterTheHandshakeTimeout) {
  serve({"--handshake-timeout", "300ms"});
  const int silent = connect_loopback(port());
  const int half = connect_loopback(port());
  ASSERT_GE(silent, 0);
  ASSERT_GE(half, 0);
  const std::string partial = "GET /ws?access_token=" + token("u1") + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n";
  ASSERT_EQ(::send(half, partial.data(), partial.size(), MSG_NOSIGNAL), static_cast<ssize_t>(partial.size()));
  const long long silent_ms = ms_until_eof(silent, 3s);
  const long long half_ms = ms_until_eof(half, 3s);
  EXPECT_GE(silent_ms, 200) << "closed before the timeout";
  EXPECT_LT(silent_ms, 1000) << "-1: never closed";
  EXPECT_GE(half_ms, 0) << "never closed";
  EXPECT_LT(half_ms, 1000);
  ::close(silent);
  ::close(half);
  EXPECT_TRUE(connect("u1")->is_open());
}

TEST_F(LimitsTest, AClientThatAnswersPingsStaysAndOneThatNeverPongsGetsClose1001WithinOneAndAHalfSeconds) {
  serve({"--ping-interval", "200ms", "--ping-timeout", "300ms"});
  const auto start = Clock::now();
  auto alive = connect("u1");
  auto mute = raw("u1");
  const size_t mark = sidecar().log().size();
  int pings = 0;
  std::string reason;
  EXPECT_EQ(close_code_of(*mute, 3s, &pings, &reason), 1001);
  EXPECT_LT(ms_since(start), 1500);
  EXPECT_GE(pings, 1);
  EXPECT_EQ(reason, "no pong within ping timeout");
  // This peer answers the close (it only ignored pings), so the server can finish at once.
  mute->send_frame(kClose, std::string("\x03\xe9", 2));
  EXPECT_TRUE(mute->peer_closed(2s));
  EXPECT_TRUE(sidecar().wait_for_log("reason=\"no pong", 2s, mark)) << sidecar().log();

  std::this_thread::sleep_until(start + 2100ms);
  EXPECT_TRUE(alive->is_open()) << "closed with " << alive->close_code() << " " << alive->close_reason();
  expect_still_delivering(*alive, "c1");
  EXPECT_EQ(metric(metrics(), "membership_notifier_ping_timeouts_total"), 1);
}

// A peer that does not pong is presumed dead: waiting for it to answer a close frame (the
// 5 s close handshake) holds its socket and delays its disconnect line for nothing.
TEST_F(LimitsTest, APeerThatAnswersNothingIsDisconnectedWithinOneAndAHalfSecondsOfItsPingTimeout) {
  serve({"--ping-interval", "200ms", "--ping-timeout", "300ms"});
  const auto start = Clock::now();
  auto dead = raw("u1");
  const size_t mark = sidecar().log().size();
  // It reads (so the server's writes do not block) but never answers anything.
  EXPECT_TRUE(dead->peer_closed(8s));
  const long long dropped_ms = ms_since(start);
  EXPECT_LT(dropped_ms, 2000) << "the TCP connection ended only after " << dropped_ms << " ms";
  EXPECT_TRUE(sidecar().wait_for_log("no pong", 100ms, mark)) << sidecar().log();
}

// ---- Shutdown -----------------------------------------------------------------------------

TEST_F(LimitsTest, SigtermClosesEveryClientWith1001ExitsZeroAndLeavesNothingListening) {
  serve({});
  auto a = connect("u1");
  auto b = connect("u1");
  auto c = connect("u2");
  const uint16_t p = port();
  const auto start = Clock::now();
  sidecar().signal(SIGTERM);
  for (auto* client : {a.get(), b.get(), c.get()}) {
    ASSERT_TRUE(client->wait_closed(3s));
    EXPECT_EQ(client->close_code(), 1001);
  }
  EXPECT_EQ(sidecar().wait_exit(5s), 0);
  EXPECT_LT(ms_since(start), 3000);
  const int fd = connect_loopback(p, 0, 1s);
  EXPECT_LT(fd, 0) << "something still listens on " << p;
  if (fd >= 0) ::close(fd);
  const std::string log = sidecar().log();
  EXPECT_NE(log.find("SIGTERM received"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped"), std::string::npos) << log;
}

// ---- HTTP probes --------------------------------------------------------------------------

TEST_F(LimitsTest, HealthzAndReadyzAnswer200AndMetricsCountTheSessions) {
  serve({});
  EXPECT_EQ(http_get(port(), "/healthz").status, 200);
  EXPECT_EQ(http_get(port(), "/readyz").status, 200);
  auto a = connect("u1");
  auto b = connect("u2");
  const HttpResponse m = http_get(port(), "/metrics");
  EXPECT_EQ(m.status, 200);
  const std::string type = m.headers.count("content-type") ? m.headers.at("content-type") : "";
  EXPECT_EQ(type.rfind("text/plain", 0), 0u) << type;
  EXPECT_NE(m.body.find("# TYPE membership_notifier_sessions gauge"), std::string::npos) << m.body;
  EXPECT_EQ(metric(m.body, "membership_notifier_sessions"), 2) << m.body;
  EXPECT_EQ(metric(m.body, "membership_notifier_ready"), 1) << m.body;
  // The read-time histogram: every read in +Inf and in the count, buckets cumulative.
  const double reads = metric(m.body, "membership_notifier_db_reads_total");
  EXPECT_GE(reads, 1) << m.body;
  EXPECT_NE(m.body.find("# TYPE membership_notifier_db_read_seconds histogram"), std::string::npos) << m.body;
  EXPECT_EQ(metric(m.body, "membership_notifier_db_read_seconds_bucket{le=\"+Inf\"}"), reads) << m.body;
  EXPECT_EQ(metric(m.body, "membership_notifier_db_read_seconds_count"), reads) << m.body;
  EXPECT_GT(metric(m.body, "membership_notifier_db_read_seconds_sum"), 0) << m.body;
  EXPECT_LE(metric(m.body, "membership_notifier_db_read_seconds_bucket{le=\"0.001\"}"),
            metric(m.body, "membership_notifier_db_read_seconds_bucket{le=\"0.002\"}")) << m.body;
  EXPECT_LE(metric(m.body, "membership_notifier_db_read_seconds_bucket{le=\"2\"}"), reads) << m.body;
}

TEST_F(LimitsTest, ReadyzIs503UntilTheMigrationIsAppliedAndThen200WithinTheBackoff) {
  const std::string db2 = db() + "_nm";
  pg().exec("DROP DATABASE IF EXISTS " + db2 + " WITH (FORCE)");
  pg().create_database(db2);
  pg().exec("CREATE TABLE public.channel_members (channel_id text, user_id text, PRIMARY KEY (channel_id, user_id))", db2);
  Sidecar s;
  serve({"--reconnect-max", "300ms"}, &s, pg().conninfo(db2));
  const uint16_t p = s.port();
  ASSERT_TRUE(s.wait_for_log("migrate up", 5s)) << s.log();
  EXPECT_EQ(http_get(p, "/healthz").status, 200);
  EXPECT_EQ(http_get(p, "/readyz").status, 503);
  std::this_thread::sleep_for(500ms);  // several attempts later, still not ready
  EXPECT_EQ(http_get(p, "/readyz").status, 503);
  EXPECT_EQ(metric(metrics(p), "membership_notifier_ready"), 0);

  std::string out;
  ASSERT_EQ(run_binary({"migrate", "up", "--database-url", pg().conninfo(db2)}, &out), 0) << out;
  const auto start = Clock::now();
  EXPECT_TRUE(s.wait_ready(3s)) << s.log();
  EXPECT_LT(ms_since(start), 1500);
  auto c = connect("u1", "", p);
  ASSERT_TRUE(c->is_open());
  pg().exec("INSERT INTO channel_members VALUES ('c1', 'u1')", db2);
  EXPECT_EQ(events(*c), std::vector<std::string>{"joined c1 u1"});
  c.reset();
  s.signal(SIGTERM);
  EXPECT_EQ(s.wait_exit(), 0);
  pg().exec("DROP DATABASE IF EXISTS " + db2 + " WITH (FORCE)");
}

// ---- Bad input from the database side -----------------------------------------------------

TEST_F(LimitsTest, GarbageOnTheNotifyChannelDisturbsNoDelivery) {
  serve({});
  auto c = connect("u1");
  sql("NOTIFY membership_notifier, 'garbage'");
  sql("SELECT pg_notify('membership_notifier', repeat('x', 7999))");
  sql(R"(NOTIFY membership_notifier, '{"id":1,"op":"j","channel_id":"fake","user_id":"u1"}')");
  EXPECT_TRUE(events(*c).empty()) << "a NOTIFY payload is no event";
  expect_still_delivering(*c, "c1");
  sql("SELECT pg_notify('membership_notifier', repeat('y', 7999)) FROM generate_series(1, 20)");
  expect_still_delivering(*c, "c2");
  // PostgreSQL folds the 20 identical payloads of one transaction into one.
  EXPECT_GE(metric(metrics(), "membership_notifier_forged_wakeups_total"), 4) << "the garbage never arrived";
  EXPECT_EQ(metric(metrics(), "membership_notifier_db_notifications_total"), 2) << "only the two changes' wake-ups count";
}

TEST_F(LimitsTest, ALogRowThatCannotBeMappedIsSkippedWithAnErrorAndTheNextChangeIsDelivered) {
  serve({});
  auto c = connect("u1");
  size_t mark = sidecar().log().size();
  sql("INSERT INTO membership_notifier.event_log (op, channel_id, user_id, occurred_at) VALUES ('j', 'c-bad', NULL, now())");
  ASSERT_TRUE(sidecar().wait_for_log("skipped", 5s, mark)) << sidecar().log();
  EXPECT_NE(sidecar().log().find("user id missing", mark), std::string::npos) << sidecar().log();
  expect_still_delivering(*c, "c1");

  // Through the real trigger: a channel id past the 1024-byte limit cannot be an event.
  mark = sidecar().log().size();
  sql("INSERT INTO channel_members VALUES (repeat('z', 2000), 'u1')");
  ASSERT_TRUE(sidecar().wait_for_log("skipped", 5s, mark)) << sidecar().log();
  expect_still_delivering(*c, "c2");
  EXPECT_EQ(metric(metrics(), "membership_notifier_events_unmappable_total"), 2);
  EXPECT_TRUE(connect("u1")->is_open()) << "a later client still gets its session and snapshot";
}

}  // namespace
}  // namespace mn::test
