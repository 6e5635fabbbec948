// One long-polling session's transport on its own, with a fake clock: queueing, the held GET,
// POSTs, the budget, the upgrade to WebSocket and the close, as the reference server (engine.io
// 6) and the stock client (engine.io-client 6) expect them.
#include "polling_transport.h"

#include <gtest/gtest.h>

namespace mn::polling {
namespace {

using namespace std::chrono_literals;
using GetAction = PollingTransport::GetAction;
using ProbeAction = PollingTransport::ProbeAction;

class PollingTransportTest : public ::testing::Test {
 protected:
  PollingTransport make() {
    Limits l;
    l.upgrade_timeout = 10s;
    l.close_linger = 5s;
    return PollingTransport(l);
  }
  Clock::time_point t0 = Clock::time_point{} + 1h;
};

TEST_F(PollingTransportTest, AGetWithNothingQueuedIsHeldUntilAPacketIsPushed) {
  auto t = make();
  auto g = t.on_get(t0);
  EXPECT_EQ(g.action, GetAction::hold);
  EXPECT_TRUE(t.get_held());
  EXPECT_FALSE(t.ready());
  EXPECT_TRUE(t.push("2"));  // the server's ping
  ASSERT_TRUE(t.ready());
  EXPECT_EQ(t.take_response(), "2");
  EXPECT_FALSE(t.get_held());
  EXPECT_EQ(t.queued_bytes(), 0u);
}

TEST_F(PollingTransportTest, AGetTakesEverythingQueuedAtOnceInOrder) {
  auto t = make();
  t.push("40{\"sid\":\"s\"}");
  t.push("42[\"a\"]");
  t.push("2");
  auto g = t.on_get(t0);
  EXPECT_EQ(g.action, GetAction::answer);
  EXPECT_EQ(g.body, "40{\"sid\":\"s\"}\x1e" "42[\"a\"]\x1e" "2");
  EXPECT_FALSE(t.get_held());
  EXPECT_EQ(t.on_get(t0).action, GetAction::hold);
}

TEST_F(PollingTransportTest, ASecondGetWhileOneIsHeldClosesTheSessionAndTheHeldOneGetsTheClosePacket) {
  auto t = make();
  ASSERT_EQ(t.on_get(t0).action, GetAction::hold);
  auto second = t.on_get(t0);
  EXPECT_EQ(second.action, GetAction::overlap);
  EXPECT_FALSE(second.session_unknown);
  EXPECT_EQ(t.state(), State::closed);
  ASSERT_TRUE(t.ready());
  EXPECT_EQ(t.take_response(), "1");
  auto third = t.on_get(t0);
  EXPECT_EQ(third.action, GetAction::refuse);
  EXPECT_TRUE(third.session_unknown);
  EXPECT_TRUE(t.finished(t0));
}

TEST_F(PollingTransportTest, APostHandsItsTextPacketsOnInOrder) {
  auto t = make();
  auto p = t.on_post("40{\"token\":\"x\"}\x1e" "3", t0);
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.packets, (std::vector<std::string>{"40{\"token\":\"x\"}", "3"}));
  EXPECT_FALSE(p.client_closed);
  EXPECT_FALSE(p.binary);
}

TEST_F(PollingTransportTest, APostThatDoesNotDecodeClosesTheSessionAndTheHeldGetGetsTheClosePacket) {
  auto t = make();
  t.on_get(t0);
  auto p = t.on_post("abc", t0);
  EXPECT_FALSE(p.ok);
  EXPECT_FALSE(p.session_unknown);
  EXPECT_EQ(t.state(), State::closed);
  ASSERT_TRUE(t.ready());
  EXPECT_EQ(t.take_response(), "1");
  EXPECT_TRUE(t.on_post("3", t0).session_unknown);
}

TEST_F(PollingTransportTest, ABinaryPacketInAPostIsReportedForTheProtocolToRefuse) {
  auto t = make();
  auto p = t.on_post("bAQIDBA==", t0);
  EXPECT_TRUE(p.ok);
  EXPECT_TRUE(p.binary);
  EXPECT_TRUE(p.packets.empty());
}

TEST_F(PollingTransportTest, AClientCloseEndsThePacketsAndTheHeldGetGetsANoop) {
  auto t = make();
  t.on_get(t0);
  auto p = t.on_post("42[\"x\"]\x1e" "1\x1e" "42[\"after\"]", t0);
  ASSERT_TRUE(p.ok);
  EXPECT_TRUE(p.client_closed);
  EXPECT_EQ(p.packets, std::vector<std::string>{"42[\"x\"]"});
  t.close(PollingTransport::CloseBy::client, t0);
  ASSERT_TRUE(t.ready());
  EXPECT_EQ(t.take_response(), "6");
  EXPECT_EQ(t.on_get(t0).action, GetAction::refuse);
}

TEST_F(PollingTransportTest, AServerCloseDeliversWhatWasQueuedThenTheClosePacketInTheGetAfter) {
  auto t = make();
  t.on_get(t0);
  EXPECT_TRUE(t.push("44{\"message\":\"unauthorized\"}"));
  EXPECT_EQ(t.take_response(), "44{\"message\":\"unauthorized\"}");
  t.push("44{\"message\":\"again\"}");
  t.close(PollingTransport::CloseBy::server, t0);
  EXPECT_FALSE(t.push("42[\"late\"]"));
  // No GET was held: the next ones within the linger get the last packets, then the close
  // (apart: the stock client would act on a close before the connect_error beside it).
  auto g = t.on_get(t0 + 4s);
  EXPECT_EQ(g.action, GetAction::answer);
  EXPECT_EQ(g.body, "44{\"message\":\"again\"}");
  EXPECT_FALSE(t.finished(t0 + 4s));
  EXPECT_EQ(t.on_get(t0 + 4s).body, "1");
  EXPECT_TRUE(t.finished(t0 + 4s));
}

TEST_F(PollingTransportTest, AClosedSessionsLastPacketsWaitNoLongerThanTheLinger) {
  auto t = make();
  t.push("42[\"x\"]");
  t.close(PollingTransport::CloseBy::server, t0);
  EXPECT_FALSE(t.finished(t0 + 5s));
  EXPECT_TRUE(t.finished(t0 + 5s + 1ms));
  auto g = t.on_get(t0 + 6s);
  EXPECT_EQ(g.action, GetAction::refuse);
  EXPECT_TRUE(g.session_unknown);
}

TEST_F(PollingTransportTest, ALostHeldGetClosesTheSession) {
  auto t = make();
  t.on_get(t0);
  t.get_lost(t0);
  EXPECT_EQ(t.state(), State::closed);
  EXPECT_FALSE(t.get_held());
}

TEST_F(PollingTransportTest, QueuedBytesCountEveryPacketAndItsSeparatorUntilAGetTakesThem) {
  auto t = make();
  t.push("42[\"a\"]");
  t.push("2");
  EXPECT_EQ(t.queued_bytes(), 8u + 2u);
  EXPECT_EQ(t.queued_packets(), 2u);
  EXPECT_EQ(t.on_get(t0).action, GetAction::answer);
  EXPECT_EQ(t.queued_bytes(), 0u);
}

TEST_F(PollingTransportTest, AServerCloseThatDropsTheQueueSendsTheHeldGetTheClosePacketOnly) {
  auto t = make();
  t.on_get(t0);
  t.push(std::string(150, 'x'));
  t.close(PollingTransport::CloseBy::server, t0, /*drop_queue=*/true);
  EXPECT_EQ(t.queued_bytes(), 0u);
  ASSERT_TRUE(t.ready());
  EXPECT_EQ(t.take_response(), "1");
}

TEST_F(PollingTransportTest, AServerCloseWithNothingToTellAndNoGetHeldEndsTheSessionAtOnce) {
  auto t = make();
  t.push("2");  // a ping the client never came for: it is gone
  t.close(PollingTransport::CloseBy::server, t0);
  EXPECT_TRUE(t.finished(t0));
  auto g = t.on_get(t0);
  EXPECT_EQ(g.action, GetAction::refuse);
  EXPECT_TRUE(g.session_unknown);
  auto u = make();
  u.close(PollingTransport::CloseBy::client, t0);
  EXPECT_TRUE(u.finished(t0));
}

TEST_F(PollingTransportTest, AnUpgradeAnswersTheProbeReleasesTheHeldGetAndHandsTheRestToTheWebSocket) {
  auto t = make();
  ASSERT_EQ(t.on_get(t0).action, GetAction::hold);
  ASSERT_TRUE(t.may_upgrade());
  t.probe_opened(t0);
  EXPECT_EQ(t.state(), State::upgrading);
  EXPECT_FALSE(t.may_upgrade());  // one probe at a time
  EXPECT_FALSE(t.ready());
  EXPECT_EQ(t.on_probe_packet("2probe"), ProbeAction::reply_probe);
  // The held GET returns with a noop, so the client can pause polling.
  ASSERT_TRUE(t.ready());
  EXPECT_EQ(t.take_response(), "6");
  // Packets pushed meanwhile go to the GET that still comes, at once...
  t.push("42[\"e1\"]");
  auto g = t.on_get(t0);
  EXPECT_EQ(g.action, GetAction::answer);
  EXPECT_EQ(g.body, "42[\"e1\"]");
  // ...or, with none, a noop at once.
  EXPECT_EQ(t.on_get(t0).body, "6");
  // ...or over the WebSocket after "5", in order.
  t.push("42[\"e2\"]");
  t.push("2");
  EXPECT_EQ(t.on_probe_packet("5"), ProbeAction::upgraded);
  EXPECT_EQ(t.state(), State::upgraded);
  EXPECT_EQ(t.take_queue(), (std::vector<std::string>{"42[\"e2\"]", "2"}));
  EXPECT_FALSE(t.push("42[\"e3\"]"));
  auto after = t.on_get(t0);
  EXPECT_EQ(after.action, GetAction::refuse);
  EXPECT_FALSE(after.session_unknown);  // Bad request, as the reference says
  EXPECT_FALSE(t.on_post("3", t0).ok);
}

TEST_F(PollingTransportTest, AProbeThatSaysAnythingElseIsRefusedAndPollingGoesOn) {
  auto t = make();
  t.probe_opened(t0);
  EXPECT_EQ(t.on_probe_packet("5"), ProbeAction::refuse);  // "5" before the probe
  t.probe_lost();
  EXPECT_EQ(t.state(), State::polling);
  t.probe_opened(t0);
  EXPECT_EQ(t.on_probe_packet("2probe"), ProbeAction::reply_probe);
  EXPECT_EQ(t.on_probe_packet("2probe"), ProbeAction::refuse);
  t.probe_lost();
  EXPECT_EQ(t.state(), State::polling);
  EXPECT_EQ(t.on_get(t0).action, GetAction::hold);  // holds again: no probe in progress
}

TEST_F(PollingTransportTest, AnUpgradeNotCompletedWithinTheTimeoutExpires) {
  auto t = make();
  t.probe_opened(t0);
  EXPECT_FALSE(t.upgrade_expired(t0 + 10s));
  EXPECT_TRUE(t.upgrade_expired(t0 + 10s + 1ms));
  t.probe_lost();
  EXPECT_FALSE(t.upgrade_expired(t0 + 20s));
}

TEST_F(PollingTransportTest, AGetThatArrivesBeforeTheProbePacketIsHeldAndReleasedByIt) {
  auto t = make();
  t.probe_opened(t0);
  ASSERT_EQ(t.on_get(t0).action, GetAction::hold);
  t.push("42[\"e\"]");
  ASSERT_TRUE(t.ready());
  EXPECT_EQ(t.take_response(), "42[\"e\"]");
  ASSERT_EQ(t.on_get(t0).action, GetAction::hold);
  EXPECT_EQ(t.on_probe_packet("2probe"), ProbeAction::reply_probe);
  ASSERT_TRUE(t.ready());
  EXPECT_EQ(t.take_response(), "6");
  EXPECT_EQ(t.on_probe_packet("5"), ProbeAction::upgraded);
  EXPECT_TRUE(t.take_queue().empty());
}

TEST_F(PollingTransportTest, AServerCloseDuringTheProbeEndsIt) {
  auto t = make();
  t.probe_opened(t0);
  t.close(PollingTransport::CloseBy::server, t0);
  EXPECT_EQ(t.state(), State::closed);
  EXPECT_EQ(t.on_probe_packet("2probe"), ProbeAction::refuse);
}

}  // namespace
}  // namespace mn::polling
