// One read of the log for many resuming clients: what it must cover, and what each takes.
#include "replay_batch.h"

#include <gtest/gtest.h>

using namespace mn;

namespace {

StreamPosition at(const std::string& base, const std::string& upto, int64_t last_id) {
  return StreamPosition{*PgSnapshot::parse(base), *PgSnapshot::parse(upto), last_id};
}

LogRow row(int64_t id, uint64_t xid, const std::string& op, const std::string& user) {
  LogRow r;
  r.id = id;
  r.xid = xid;
  r.op = op;
  r.channel_id = "c" + std::to_string(id);
  if (op != "t") r.user_id = user;
  return r;
}

std::vector<int64_t> ids(const Unseen& u) {
  std::vector<int64_t> out;
  for (const auto& r : u.rows) out.push_back(r.id);
  return out;
}

}  // namespace

TEST(ReplayBatch, TheReadStartsAtTheOldestPositionAndAddsOnlyTransactionsInProgressBelowIt) {
  auto scan = plan_replay_scan({at("100:120:105,110", "100:130:", 7), at("90:100:95,97", "90:100:", 3),
                                at("100:150:101,140", "150:150:", 9)});
  EXPECT_EQ(scan.from_xid, 100u);
  // 105, 110 and 140 are at or above 100: covered. 95, 97 are not; 101 is covered too.
  EXPECT_EQ(scan.below, (std::vector<uint64_t>{95, 97}));
}

TEST(ReplayBatch, OnePositionAloneIsReadFromItsXmaxPlusItsInProgressTransactions) {
  auto scan = plan_replay_scan({at("50:60:52,52,58", "50:60:", 0)});
  EXPECT_EQ(scan.from_xid, 60u);
  EXPECT_EQ(scan.below, (std::vector<uint64_t>{52, 58}));
}

TEST(ReplayBatch, EachClientTakesOnlyItsUsersRowsThatItsOwnPositionHasNotSeen) {
  // u1 is at base 100:110 (saw everything below 110 but 105), upto 105:120 (still not 105)
  // through id 14.
  ReplayRows rows({row(10, 105, "j", "u1"), row(11, 112, "j", "u2"), row(12, 112, "j", "u1"),
                   row(15, 115, "l", "u1"), row(20, 125, "j", "u1"), row(21, 125, "j", "u2")});
  auto u1 = rows.unseen_by("u1", at("100:110:105", "105:120:105", 14));
  EXPECT_FALSE(u1.truncated);
  // 10: in progress at both. 12: seen by upto (id 12 <= 14). 15: upto saw xid 115 but not
  // id 15. 20: after upto.
  EXPECT_EQ(ids(u1), (std::vector<int64_t>{10, 15, 20}));
  auto u2 = rows.unseen_by("u2", at("120:125:", "120:125:", 0));
  EXPECT_EQ(ids(u2), (std::vector<int64_t>{21}));
  EXPECT_TRUE(rows.unseen_by("u3", at("100:110:", "100:110:", 0)).rows.empty());
}

TEST(ReplayBatch, ATruncateAPositionHasNotSeenMakesItUnresumableAndOneItHasSeenDoesNot) {
  ReplayRows rows({row(10, 105, "j", "u1"), row(11, 106, "t", ""), row(12, 107, "j", "u1")});
  auto before = rows.unseen_by("u1", at("100:105:", "100:105:", 0));
  EXPECT_TRUE(before.truncated);
  EXPECT_TRUE(before.rows.empty());
  auto after = rows.unseen_by("u1", at("107:107:", "107:107:", 0));
  EXPECT_FALSE(after.truncated);
  EXPECT_EQ(ids(after), (std::vector<int64_t>{12}));
}
