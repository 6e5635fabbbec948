// The adaptive wake-up's rate estimate.
#include "commit_rate.h"

#include <gtest/gtest.h>

using namespace std::chrono_literals;
using mn::CommitRate;

TEST(CommitRate, ASteadyRateReadsAsThatRate) {
  CommitRate r;
  auto t = CommitRate::Clock::time_point{} + 1h;
  for (int i = 0; i < 1000; ++i) r.add(t += 1ms);  // 1000 per second for one second
  EXPECT_NEAR(r.per_second(t), 1000, 60);
  CommitRate slow;
  for (int i = 0; i < 100; ++i) slow.add(t += 10ms);  // 100 per second
  EXPECT_NEAR(slow.per_second(t), 100, 10);
}

TEST(CommitRate, SilenceFadesItAndNothingIsZero) {
  CommitRate r;
  auto t = CommitRate::Clock::time_point{} + 1h;
  EXPECT_EQ(r.per_second(t), 0);
  for (int i = 0; i < 1000; ++i) r.add(t += 100us);  // 10000 per second for 0.1 s
  EXPECT_GT(r.per_second(t), 5000);
  EXPECT_LT(r.per_second(t + 500ms), 100);
  r.reset();
  EXPECT_EQ(r.per_second(t), 0);
}
