// The keepalive rule for one session (keepalive.h) and one sweep over several, on a fixed
// clock: pings fall due per session, an unanswered one closes it, and so do a missing
// Socket.IO CONNECT and an expired token.
#include "keepalive.h"

#include <asio/io_context.hpp>
#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace {

using mn::KeepaliveStep;
using mn::Phase;
using mn::Session;
using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

const Steady::time_point kT0 = Steady::time_point{} + std::chrono::hours(1);
constexpr double kWall = 1'700'000'000;

mn::Config keepalive_config() {
  mn::Config c;
  c.ping_interval = milliseconds(25000);
  c.ping_timeout = milliseconds(20000);
  c.auth_timeout = milliseconds(5000);
  return c;
}

Session live_session() {
  Session s;
  s.phase = Phase::live;
  s.opened_at = kT0;
  s.last_ping = kT0;
  return s;
}

TEST(Keepalive, ALiveSessionIsPingedOnceItsIntervalHasPassedAndNotBefore) {
  auto cfg = keepalive_config();
  Session s = live_session();
  EXPECT_EQ(mn::keepalive_step(s, kT0 + milliseconds(24999), kWall, cfg), KeepaliveStep::none);
  EXPECT_EQ(mn::keepalive_step(s, kT0 + milliseconds(25000), kWall, cfg), KeepaliveStep::ping);
}

TEST(Keepalive, AnUnansweredPingClosesTheSessionAfterThePingTimeoutOnly) {
  auto cfg = keepalive_config();
  Session s = live_session();
  s.ping_outstanding = true;
  EXPECT_EQ(mn::keepalive_step(s, kT0 + milliseconds(20000), kWall, cfg), KeepaliveStep::none);
  EXPECT_EQ(mn::keepalive_step(s, kT0 + milliseconds(20001), kWall, cfg), KeepaliveStep::no_pong);
  // While a ping is out, no second one is sent, however long it has been.
  EXPECT_NE(mn::keepalive_step(s, kT0 + milliseconds(60000), kWall, cfg), KeepaliveStep::ping);
}

TEST(Keepalive, ASocketIoSessionWithoutConnectIsClosedAfterTheAuthTimeout) {
  auto cfg = keepalive_config();
  Session s = live_session();
  s.phase = Phase::awaiting_auth;
  EXPECT_EQ(mn::keepalive_step(s, kT0 + milliseconds(5000), kWall, cfg), KeepaliveStep::none);
  EXPECT_EQ(mn::keepalive_step(s, kT0 + milliseconds(5001), kWall, cfg), KeepaliveStep::auth_timed_out);
}

TEST(Keepalive, ASessionIsClosedOnceItsTokenHasExpiredAndOneWithoutExpNever) {
  auto cfg = keepalive_config();
  Session s = live_session();
  s.valid_until = kWall + 10;
  EXPECT_EQ(mn::keepalive_step(s, kT0 + milliseconds(1), kWall + 10, cfg), KeepaliveStep::none);
  EXPECT_EQ(mn::keepalive_step(s, kT0 + milliseconds(1), kWall + 10.5, cfg), KeepaliveStep::token_expired);
  s.valid_until.reset();
  EXPECT_EQ(mn::keepalive_step(s, kT0 + milliseconds(1), kWall + 1e6, cfg), KeepaliveStep::none);
}

TEST(Keepalive, SessionsInTheHandshakeOrClosingAreLeftAlone) {
  auto cfg = keepalive_config();
  for (Phase p : {Phase::handshake, Phase::closing}) {
    Session s = live_session();
    s.phase = p;
    s.valid_until = kWall - 1;
    s.ping_outstanding = true;
    EXPECT_EQ(mn::keepalive_step(s, kT0 + std::chrono::hours(1), kWall, cfg), KeepaliveStep::none);
  }
}

TEST(Keepalive, ASweepPingsWhatIsDueMarksItOutstandingAndClosesTheRestWithTheirReasons) {
  auto cfg = keepalive_config();
  asio::io_context io;
  std::map<std::string, Session> sessions;
  sessions["due"] = live_session();
  sessions["fresh"] = live_session();
  sessions["fresh"].last_ping = kT0 + milliseconds(20000);
  sessions["silent"] = live_session();
  sessions["silent"].ping_outstanding = true;
  sessions["expired"] = live_session();
  sessions["expired"].valid_until = kWall - 1;

  std::vector<std::string> pinged, refreshed;
  std::vector<std::pair<std::string, uint16_t>> closed;
  std::map<KeepaliveStep, int> counted;
  auto name = [&](Session& s) {
    for (auto& [n, x] : sessions)
      if (&x == &s) return n;
    return std::string("?");
  };
  mn::Keepalive keepalive(io, cfg,
                          mn::Keepalive::Hooks{
                              [&](const std::function<void(Session&)>& f) {
                                for (auto& [n, s] : sessions) f(s);
                              },
                              [&](Session& s) { pinged.push_back(name(s)); },
                              [&](Session& s) { refreshed.push_back(name(s)); },
                              [&](Session& s, uint16_t code, const std::string&) {
                                closed.emplace_back(name(s), code);
                                s.phase = Phase::closing;  // as Transport::close does
                              },
                              [&](KeepaliveStep step) { ++counted[step]; }});
  const auto now = kT0 + milliseconds(30000);
  keepalive.sweep(now, kWall);

  EXPECT_EQ(pinged, std::vector<std::string>{"due"});
  EXPECT_EQ(refreshed, std::vector<std::string>{"due"});
  EXPECT_TRUE(sessions["due"].ping_outstanding);
  EXPECT_EQ(sessions["due"].last_ping, now);
  EXPECT_FALSE(sessions["fresh"].ping_outstanding);
  std::vector<std::pair<std::string, uint16_t>> want{{"expired", mn::close_code::token_expired}, {"silent", 1001}};
  EXPECT_EQ(closed, want);
  EXPECT_EQ(counted[KeepaliveStep::token_expired], 1);
  EXPECT_EQ(counted[KeepaliveStep::no_pong], 1);
  EXPECT_FALSE(sessions["expired"].valid_until);  // closed once, not at every sweep

  // The next sweep, a moment later, has nothing new to do for those it pinged.
  pinged.clear();
  keepalive.sweep(now + milliseconds(100), kWall);
  EXPECT_TRUE(pinged.empty());
}

}  // namespace
