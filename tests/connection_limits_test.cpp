// Who may hold a connection (connection_limits.h): caps on sessions overall and per user, and
// newest-wins among connections not yet authenticated. Pure bookkeeping, no sockets.
#include "connection_limits.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

using mn::ConnectionLimits;
using Admission = ConnectionLimits::Admission;

mn::Config limits_config(size_t max_unauthenticated, size_t per_address) {
  mn::Config c;
  c.max_connections = 3;
  c.max_connections_per_user = 2;
  c.max_unauthenticated = max_unauthenticated;
  c.max_unauthenticated_per_address = per_address;
  return c;
}

// Distinct keys for connections, as a transport's connection objects would be.
const void* key(int i) {
  static int slots[32];
  return &slots[i];
}

TEST(ConnectionLimits, SessionsAreCappedPerUserAndOverallAndReleasingOneMakesRoom) {
  ConnectionLimits limits(limits_config(16, 16));
  EXPECT_EQ(limits.admit(key(0), "u1"), Admission::admitted);
  EXPECT_EQ(limits.admit(key(1), "u1"), Admission::admitted);
  EXPECT_EQ(limits.check("u1"), Admission::too_many_connections);
  EXPECT_EQ(limits.admit(key(2), "u1"), Admission::too_many_connections);
  EXPECT_EQ(limits.sessions_of("u1"), 2u);
  EXPECT_EQ(limits.admit(key(3), "u2"), Admission::admitted);
  EXPECT_TRUE(limits.at_capacity());
  EXPECT_EQ(limits.admit(key(4), "u3"), Admission::over_capacity);
  EXPECT_EQ(limits.authenticated(), 3u);

  limits.release("u1");
  EXPECT_FALSE(limits.at_capacity());
  EXPECT_EQ(limits.check("u1"), Admission::admitted);
  EXPECT_EQ(limits.admit(key(5), "u3"), Admission::admitted);
}

TEST(ConnectionLimits, AnAdmittedConnectionNoLongerCountsAsUnauthenticated) {
  ConnectionLimits limits(limits_config(16, 16));
  EXPECT_FALSE(limits.add_unauthenticated(key(0), "10.0.0.1", nullptr));
  EXPECT_FALSE(limits.add_unauthenticated(key(1), "10.0.0.1", nullptr));
  EXPECT_EQ(limits.unauthenticated(), 2u);
  limits.admit(key(0), "u1");
  EXPECT_EQ(limits.unauthenticated(), 1u);
  limits.forget_unauthenticated(key(1));
  limits.forget_unauthenticated(key(1));  // twice, or never added: nothing happens
  limits.forget_unauthenticated(key(9));
  EXPECT_EQ(limits.unauthenticated(), 0u);
}

TEST(ConnectionLimits, PastItsAddressCapAnAddressCutsItsOwnOldestNotAnotherAddresss) {
  ConnectionLimits limits(limits_config(16, 2));
  int cut = -1;
  auto cutter = [&cut](int i) { return [&cut, i] { cut = i; }; };
  EXPECT_FALSE(limits.add_unauthenticated(key(0), "10.0.0.9", cutter(0)));
  EXPECT_FALSE(limits.add_unauthenticated(key(1), "10.0.0.1", cutter(1)));
  EXPECT_FALSE(limits.add_unauthenticated(key(2), "10.0.0.1", cutter(2)));
  auto victim = limits.add_unauthenticated(key(3), "10.0.0.1", cutter(3));
  ASSERT_TRUE(victim);
  EXPECT_EQ(victim->key, key(1));
  EXPECT_EQ(victim->address, "10.0.0.1");
  victim->cut();
  EXPECT_EQ(cut, 1);
  EXPECT_EQ(limits.unauthenticated(), 3u);
  // The victim is forgotten already: its end changes nothing.
  limits.forget_unauthenticated(key(1));
  EXPECT_EQ(limits.unauthenticated(), 3u);
}

TEST(ConnectionLimits, ACutLeavesItsAddressCountRightSoTheNextNewcomerCutsNothing) {
  ConnectionLimits limits(limits_config(16, 2));
  EXPECT_FALSE(limits.add_unauthenticated(key(0), "10.0.0.1", nullptr));
  EXPECT_FALSE(limits.add_unauthenticated(key(1), "10.0.0.1", nullptr));
  ASSERT_TRUE(limits.add_unauthenticated(key(2), "10.0.0.1", nullptr));  // cuts key(0)
  limits.forget_unauthenticated(key(2));  // it authenticates: one left, room for one more
  EXPECT_EQ(limits.unauthenticated(), 1u);
  EXPECT_FALSE(limits.add_unauthenticated(key(3), "10.0.0.1", nullptr));
  EXPECT_EQ(limits.unauthenticated(), 2u);
}

TEST(ConnectionLimits, PastTheOverallCapTheOldestOfTheAddressHoldingTheMostMakesRoom) {
  ConnectionLimits limits(limits_config(4, 16));
  EXPECT_FALSE(limits.add_unauthenticated(key(0), "10.0.0.1", nullptr));
  EXPECT_FALSE(limits.add_unauthenticated(key(1), "10.0.0.2", nullptr));
  EXPECT_FALSE(limits.add_unauthenticated(key(2), "10.0.0.2", nullptr));
  EXPECT_FALSE(limits.add_unauthenticated(key(3), "10.0.0.2", nullptr));
  // A newcomer from a fresh address: 10.0.0.2 holds the most, its oldest goes.
  auto victim = limits.add_unauthenticated(key(4), "10.0.0.3", nullptr);
  ASSERT_TRUE(victim);
  EXPECT_EQ(victim->key, key(1));
  EXPECT_EQ(limits.unauthenticated(), 4u);
  // Now 10.0.0.2 has two and the others one each: 10.0.0.2 gives way again.
  victim = limits.add_unauthenticated(key(5), "10.0.0.1", nullptr);
  ASSERT_TRUE(victim);
  EXPECT_EQ(victim->key, key(2));
}

}  // namespace
