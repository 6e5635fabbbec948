#include "deadline_queue.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mn {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::vector<std::string> due(DeadlineQueue<std::string>& q, Clock::time_point now, size_t limit = 100) {
  std::vector<std::string> keys;
  q.pop_due(now, limit, [&](const std::string& k, uint64_t g) { keys.push_back(k + "#" + std::to_string(g)); });
  return keys;
}

TEST(DeadlineQueue, OnlyEntriesWhoseTimeHasComeAreHandedOverEarliestFirst) {
  DeadlineQueue<std::string> q;
  const auto t0 = Clock::time_point{} + 1h;
  q.schedule(t0 + 30ms, "c", 1);
  q.schedule(t0 + 10ms, "a", 1);
  q.schedule(t0 + 20ms, "b", 1);
  EXPECT_TRUE(due(q, t0 + 5ms).empty());
  EXPECT_EQ(due(q, t0 + 20ms), (std::vector<std::string>{"a#1", "b#1"}));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.next(), t0 + 30ms);
  EXPECT_EQ(due(q, t0 + 1s), (std::vector<std::string>{"c#1"}));
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.next().has_value());
}

TEST(DeadlineQueue, EntriesDueAtTheSameTimeComeInTheOrderTheyWereScheduled) {
  DeadlineQueue<std::string> q;
  const auto t = Clock::time_point{} + 1h;
  for (const char* k : {"x", "y", "z", "w"}) q.schedule(t, k, 0);
  EXPECT_EQ(due(q, t), (std::vector<std::string>{"x#0", "y#0", "z#0", "w#0"}));
}

TEST(DeadlineQueue, ATurnHandsOverNoMoreThanItsLimitAndTheRestStayDue) {
  DeadlineQueue<std::string> q;
  const auto t = Clock::time_point{} + 1h;
  for (int i = 0; i < 10; ++i) q.schedule(t + std::chrono::milliseconds(i), std::to_string(i), 0);
  EXPECT_EQ(due(q, t + 1s, 4), (std::vector<std::string>{"0#0", "1#0", "2#0", "3#0"}));
  EXPECT_EQ(due(q, t + 1s, 4), (std::vector<std::string>{"4#0", "5#0", "6#0", "7#0"}));
  EXPECT_EQ(due(q, t + 1s, 4), (std::vector<std::string>{"8#0", "9#0"}));
}

TEST(DeadlineQueue, AnEntryKeepsTheGenerationItWasScheduledWithSoTheCallerCanTellAStaleOne) {
  DeadlineQueue<std::string> q;
  const auto t = Clock::time_point{} + 1h;
  q.schedule(t + 10ms, "s", 1);  // superseded below: the session now has generation 2
  q.schedule(t + 5ms, "s", 2);
  EXPECT_EQ(due(q, t + 1s), (std::vector<std::string>{"s#2", "s#1"}));
}

TEST(DeadlineQueue, ClearDropsEverything) {
  DeadlineQueue<std::string> q;
  q.schedule(Clock::time_point{}, "a", 0);
  q.clear();
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(due(q, Clock::time_point{} + 1h).empty());
}

}  // namespace
}  // namespace mn
