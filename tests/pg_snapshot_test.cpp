// pg_snapshot text and visibility, as PostgreSQL defines them.
#include "pg_snapshot.h"

#include <gtest/gtest.h>

using mn::PgSnapshot;

TEST(PgSnapshot, ParsesAndPrintsPostgresTextForm) {
  auto s = PgSnapshot::parse("10:20:12,15");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->xmin, 10u);
  EXPECT_EQ(s->xmax, 20u);
  EXPECT_EQ(s->xip, (std::vector<uint64_t>{12, 15}));
  EXPECT_EQ(s->to_string(), "10:20:12,15");
  EXPECT_EQ(PgSnapshot::parse("7:7:")->to_string(), "7:7:");
}

TEST(PgSnapshot, RefusesAnythingPostgresWouldNotPrint) {
  for (const char* bad : {"", "1", "1:2", "x:2:", "5:4:", "0:4:", "1:5:9", "1:5:3,", "1:5:,3", "1:5:a",
                          "99999999999999999999999:1:", "1:2:3:4"}) {
    EXPECT_FALSE(PgSnapshot::parse(bad)) << bad;
  }
}

TEST(PgSnapshot, SeesFinishedTransactionsButNotRunningOrLaterOnes) {
  auto s = *PgSnapshot::parse("10:20:12,15");
  EXPECT_TRUE(s.sees(9));
  EXPECT_TRUE(s.sees(10));  // below xmax and not in progress
  EXPECT_FALSE(s.sees(12));
  EXPECT_TRUE(s.sees(13));
  EXPECT_FALSE(s.sees(15));
  EXPECT_FALSE(s.sees(20));
  EXPECT_FALSE(s.sees(21));
}

TEST(PgSnapshot, CoversAnEarlierOneButNotOneThatSawATransactionItStillCountsAsRunning) {
  auto earlier = *PgSnapshot::parse("10:20:12,15");
  EXPECT_TRUE(PgSnapshot::parse("12:25:12,21")->covers(earlier));  // 15 finished since, 12 still runs
  EXPECT_TRUE(PgSnapshot::parse("20:25:")->covers(earlier));
  EXPECT_TRUE(earlier.covers(earlier));
  EXPECT_FALSE(PgSnapshot::parse("12:25:12,14")->covers(earlier)) << "earlier saw 14";
  EXPECT_FALSE(PgSnapshot::parse("10:18:12,15")->covers(earlier)) << "earlier saw 18";
  EXPECT_FALSE(earlier.covers(*PgSnapshot::parse("12:25:12,21")));
}

TEST(PgSnapshot, EitherSeesExactlyWhatOneOfTheTwoSees) {
  const char* texts[] = {"10:20:12,15", "12:25:12,21", "5:15:7,9,11", "16:30:16,17,18,25", "20:20:", "1:40:"};
  for (const char* ta : texts) {
    for (const char* tb : texts) {
      auto a = *PgSnapshot::parse(ta), b = *PgSnapshot::parse(tb);
      auto both = PgSnapshot::either(a, b);
      ASSERT_TRUE(PgSnapshot::parse(both.to_string())) << both.to_string() << " is not PostgreSQL's form";
      for (uint64_t x = 1; x < 45; ++x)
        EXPECT_EQ(both.sees(x), a.sees(x) || b.sees(x)) << ta << " or " << tb << " (" << both.to_string() << "): " << x;
      EXPECT_TRUE(both.covers(a) && both.covers(b)) << ta << " or " << tb;
    }
  }
  EXPECT_EQ(PgSnapshot::either(*PgSnapshot::parse("10:20:12,15"), *PgSnapshot::parse("5:18:7,12,16")).to_string(),
            "5:20:12");
}

TEST(PgSnapshot, WithACommittedTransactionSeesItAndStillNotWhatItDidNotSee) {
  auto s = *mn::PgSnapshot::parse("100:105:100,103");
  auto in_progress_one = s.with_committed(103, 8);
  ASSERT_TRUE(in_progress_one);
  EXPECT_EQ(in_progress_one->to_string(), "100:105:100");
  auto later = s.with_committed(108, 8);
  ASSERT_TRUE(later);
  EXPECT_EQ(later->to_string(), "100:109:100,103,105,106,107");
  EXPECT_TRUE(later->sees(108));
  for (uint64_t x : {100, 103, 105, 106, 107, 109}) EXPECT_FALSE(later->sees(x)) << x;
  EXPECT_TRUE(later->sees(104));
  EXPECT_TRUE(mn::PgSnapshot::parse(later->to_string())) << "and PostgreSQL's text form";
}

TEST(PgSnapshot, WithACommittedTransactionRefusesOneAlreadySeenOrTooFarAhead) {
  auto s = *mn::PgSnapshot::parse("100:105:100,103");
  EXPECT_FALSE(s.with_committed(99, 8));
  EXPECT_FALSE(s.with_committed(104, 8));
  EXPECT_FALSE(s.with_committed(114, 8));
  EXPECT_TRUE(s.with_committed(113, 8));
  auto empty = *mn::PgSnapshot::parse("200:200:");
  auto next = empty.with_committed(200, 0);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->to_string(), "200:201:");
}

TEST(PgSnapshot, WithCommittedRefusesTheLargestXidInsteadOfWrappingXmaxToZero) {
  auto top = *mn::PgSnapshot::parse("18446744073709551614:18446744073709551615:");
  EXPECT_FALSE(top.with_committed(18446744073709551615ull, 8));
  auto next = top.with_committed(18446744073709551614ull, 8);
  EXPECT_FALSE(next);  // already visible
  auto below = *mn::PgSnapshot::parse("18446744073709551613:18446744073709551614:");
  auto last = below.with_committed(18446744073709551614ull, 8);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->to_string(), "18446744073709551613:18446744073709551615:");
}
