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

TEST(Keepalive, ASessionIsDueAtItsNearestDeadlineAndNotWatchedInTheHandshakeOrClosing) {
  auto cfg = keepalive_config();
  Session s = live_session();
  EXPECT_EQ(mn::keepalive_due(s, kT0, kWall, cfg), kT0 + milliseconds(25000));
  s.ping_outstanding = true;
  EXPECT_EQ(mn::keepalive_due(s, kT0, kWall, cfg), kT0 + milliseconds(20001));
  s.phase = Phase::awaiting_auth;
  EXPECT_EQ(mn::keepalive_due(s, kT0, kWall, cfg), kT0 + milliseconds(5001));
  s.valid_until = kWall + 2;  // expires two seconds from now
  EXPECT_EQ(mn::keepalive_due(s, kT0, kWall, cfg), kT0 + milliseconds(2001));
  s.valid_until = kWall - 5;  // expired already
  EXPECT_EQ(mn::keepalive_due(s, kT0, kWall, cfg), kT0 + milliseconds(1));
  for (Phase p : {Phase::handshake, Phase::closing}) {
    s.phase = p;
    EXPECT_FALSE(mn::keepalive_due(s, kT0, kWall, cfg).has_value());
  }
}

// Sessions by name, and what the keepalive did to them.
struct Fixture {
  mn::Config cfg = keepalive_config();
  asio::io_context io;
  std::map<std::string, Session> sessions;
  std::vector<std::string> pinged, refreshed, found;
  std::vector<std::pair<std::string, uint16_t>> closed;
  std::map<KeepaliveStep, int> counted;
  mn::Keepalive keepalive{io, cfg,
                          mn::Keepalive::Hooks{
                              [this](const void* key) -> Session* {
                                for (auto& [n, x] : sessions)
                                  if (&x == key) {
                                    found.push_back(n);
                                    return &x;
                                  }
                                return nullptr;
                              },
                              [this](Session& s) { pinged.push_back(name(s)); },
                              [this](Session& s) { refreshed.push_back(name(s)); },
                              [this](Session& s, uint16_t code, const std::string&) {
                                closed.emplace_back(name(s), code);
                                s.phase = Phase::closing;  // as Transport::close does
                              },
                              [this](KeepaliveStep step) { ++counted[step]; }}};

  std::string name(Session& s) {
    for (auto& [n, x] : sessions)
      if (&x == &s) return n;
    return "?";
  }
  void watch_all(Steady::time_point now) {
    for (auto& [n, s] : sessions) keepalive.watch(s, now, kWall);
  }
};

TEST(Keepalive, ASweepPingsWhatIsDueMarksItOutstandingAndClosesTheRestWithTheirReasons) {
  Fixture f;
  f.sessions["due"] = live_session();
  f.sessions["fresh"] = live_session();
  f.sessions["fresh"].last_ping = kT0 + milliseconds(20000);
  f.sessions["silent"] = live_session();
  f.sessions["silent"].ping_outstanding = true;
  f.sessions["expired"] = live_session();
  f.sessions["expired"].valid_until = kWall - 1;
  f.watch_all(kT0);

  const auto now = kT0 + milliseconds(30000);
  EXPECT_FALSE(f.keepalive.sweep(now, kWall)) << "nothing more is due";

  EXPECT_EQ(f.pinged, std::vector<std::string>{"due"});
  EXPECT_EQ(f.refreshed, std::vector<std::string>{"due"});
  EXPECT_TRUE(f.sessions["due"].ping_outstanding);
  EXPECT_EQ(f.sessions["due"].last_ping, now);
  EXPECT_FALSE(f.sessions["fresh"].ping_outstanding);
  std::vector<std::pair<std::string, uint16_t>> want{{"expired", mn::close_code::token_expired}, {"silent", 1001}};
  EXPECT_EQ(f.closed, want);
  EXPECT_EQ(f.counted[KeepaliveStep::token_expired], 1);
  EXPECT_EQ(f.counted[KeepaliveStep::no_pong], 1);
  EXPECT_FALSE(f.sessions["expired"].valid_until);  // closed once, not at every sweep

  // The next sweep, a moment later, has nothing new to do for those it pinged.
  f.pinged.clear();
  f.keepalive.sweep(now + milliseconds(100), kWall);
  EXPECT_TRUE(f.pinged.empty());
  // Closed sessions are not watched any more: "due" (pong due) and "fresh" (ping due) remain.
  EXPECT_EQ(f.keepalive.watched(), 2u);
}

TEST(Keepalive, ASweepLooksOnlyAtTheSessionsThatAreDue) {
  Fixture f;
  for (int i = 0; i < 100; ++i) {
    Session s = live_session();
    s.last_ping = kT0 + milliseconds(100 * i);  // pings due one every 100 ms from kT0 + 25 s
    f.sessions["s" + std::to_string(1000 + i)] = std::move(s);
  }
  f.watch_all(kT0);
  f.keepalive.sweep(kT0 + milliseconds(25000 + 250), kWall);
  EXPECT_EQ(f.found, (std::vector<std::string>{"s1000", "s1001", "s1002"}));
  EXPECT_EQ(f.pinged, (std::vector<std::string>{"s1000", "s1001", "s1002"}));
}

TEST(Keepalive, ATurnLooksAtNoMoreThanItsShareAndSaysMoreAreDue) {
  Fixture f;
  const size_t n = mn::Keepalive::kPerTurn + 10;
  for (size_t i = 0; i < n; ++i) f.sessions["s" + std::to_string(100000 + i)] = live_session();
  f.watch_all(kT0);
  const auto now = kT0 + milliseconds(26000);
  EXPECT_TRUE(f.keepalive.sweep(now, kWall));
  EXPECT_EQ(f.pinged.size(), mn::Keepalive::kPerTurn);
  EXPECT_FALSE(f.keepalive.sweep(now, kWall));
  EXPECT_EQ(f.pinged.size(), n);
}

TEST(Keepalive, ATokenRefreshedToAnEarlierExpIsClosedAtThatExpAndOneRefreshedLaterIsNot) {
  Fixture f;
  f.sessions["a"] = live_session();
  f.sessions["a"].valid_until = kWall + 60;
  f.sessions["b"] = live_session();
  f.sessions["b"].valid_until = kWall + 5;
  f.watch_all(kT0);
  f.sessions["a"].valid_until = kWall + 2;   // a new token that expires sooner
  f.keepalive.watch(f.sessions["a"], kT0, kWall);
  f.sessions["b"].valid_until = kWall + 600;  // a new token that lasts longer
  f.keepalive.watch(f.sessions["b"], kT0, kWall);
  f.keepalive.sweep(kT0 + milliseconds(6000), kWall + 6);
  EXPECT_EQ(f.closed, (std::vector<std::pair<std::string, uint16_t>>{{"a", mn::close_code::token_expired}}));
}

TEST(Keepalive, RefreshingOverAndOverDoesNotGrowTheQueue) {
  Fixture f;
  f.sessions["a"] = live_session();
  f.sessions["a"].valid_until = kWall + 3600;
  f.watch_all(kT0);
  for (int i = 0; i < 1000; ++i) {
    f.sessions["a"].valid_until = kWall + 3600 + i;
    f.keepalive.watch(f.sessions["a"], kT0, kWall);
  }
  EXPECT_EQ(f.keepalive.watched(), 1u);
}

}  // namespace
