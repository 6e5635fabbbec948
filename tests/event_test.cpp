// Row -> event mapping: the exact frame contents clients see.
#include "event.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using mn::EventKind;
using mn::LogRow;
using mn::map_row;

namespace {

LogRow row(std::string op, std::optional<std::string> ch, std::optional<std::string> user,
           std::optional<std::string> xtype = std::nullopt) {
  LogRow r;
  r.id = 42;
  r.xid = 777;
  r.op = std::move(op);
  r.channel_id = std::move(ch);
  r.user_id = std::move(user);
  r.xtype = std::move(xtype);
  r.occurred_at_us = 1795708800123456;  // 2026-11-26T16:00:00.123456Z
  return r;
}

}  // namespace

TEST(EventMapping, AJoinedRowBecomesChannelJoinedWithExactlyTheFourFieldsInOrder) {
  auto out = map_row(row("j", "c1", "u1", "dm"));
  ASSERT_TRUE(out.event) << out.error;
  EXPECT_EQ(out.event->kind, EventKind::joined);
  EXPECT_EQ(out.event->name, "channel.joined");
  EXPECT_EQ(out.event->user_id, "u1");
  EXPECT_EQ(out.event->data_json,
            R"({"channelId":"c1","userId":"u1","xType":"dm","occurredAt":"2026-11-26T16:00:00.123456Z"})");
}

TEST(EventMapping, ALeftRowBecomesChannelLeftWithNullXTypeWhenNoneIsConfigured) {
  auto out = map_row(row("l", "c1", "u1"));
  ASSERT_TRUE(out.event);
  EXPECT_EQ(out.event->name, "channel.left");
  auto j = nlohmann::json::parse(out.event->data_json);
  EXPECT_TRUE(j["xType"].is_null());
}

TEST(EventMapping, ATruncateRowIsATruncatedEventForEveryone) {
  auto out = map_row(row("t", std::nullopt, std::nullopt));
  ASSERT_TRUE(out.event);
  EXPECT_EQ(out.event->kind, EventKind::truncated);
  EXPECT_TRUE(out.event->user_id.empty());
}

TEST(EventMapping, IdsWithQuotesAndUnicodeAreEscapedIntoValidJson) {
  auto out = map_row(row("j", "c\"1\\", "ü\n"));
  ASSERT_TRUE(out.event);
  auto j = nlohmann::json::parse(out.event->data_json);
  EXPECT_EQ(j["channelId"], "c\"1\\");
  EXPECT_EQ(j["userId"], "ü\n");
}

TEST(EventMapping, WithoutEncodingARowIsStillCheckedButItsDataIsLeftEmpty) {
  auto out = map_row(row("j", "c1", "u1", "dm"), false);
  ASSERT_TRUE(out.event) << out.error;
  EXPECT_EQ(out.event->user_id, "u1");
  EXPECT_EQ(out.event->data_json, "");
  EXPECT_FALSE(map_row(row("j", "c", ""), false).event);
  EXPECT_TRUE(map_row(row("j", "c", "\xff"), false).event) << "invalid UTF-8 shows only when encoded";
  EXPECT_FALSE(map_row(row("j", "c", "\xff")).event);
}

TEST(EventMapping, RowsThatCannotBeMappedSayWhyInsteadOfThrowing) {
  EXPECT_FALSE(map_row(row("x", "c", "u")).event);
  EXPECT_NE(map_row(row("x", "c", "u")).error.find("unknown op"), std::string::npos);
  EXPECT_FALSE(map_row(row("j", std::nullopt, "u")).event);
  EXPECT_FALSE(map_row(row("j", "c", std::nullopt)).event);
  EXPECT_FALSE(map_row(row("j", "c", "")).event);
  EXPECT_FALSE(map_row(row("j", std::string(2000, 'c'), "u")).event);
  auto bad_utf8 = map_row(row("j", "c", std::string("\xff\xfe")));
  EXPECT_FALSE(bad_utf8.event);
  EXPECT_NE(bad_utf8.error.find("JSON"), std::string::npos);
}

TEST(EventMapping, TimestampsAreIso8601UtcWithMicroseconds) {
  EXPECT_EQ(mn::format_utc_micros(0), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(mn::format_utc_micros(1795708800123456), "2026-11-26T16:00:00.123456Z");
  EXPECT_EQ(mn::format_utc_micros(-1), "1969-12-31T23:59:59.999999Z");
}

// --- times made distinct within a transaction --------------------------------------------------

namespace {
mn::LogRow at(int64_t id, uint64_t xid, int64_t us) {
  mn::LogRow r;
  r.id = id;
  r.xid = xid;
  r.op = "j";
  r.occurred_at_us = us;
  return r;
}
std::vector<int64_t> times(const std::vector<mn::LogRow>& rows) {
  std::vector<int64_t> out;
  for (const auto& r : rows) out.push_back(r.occurred_at_us);
  return out;
}
}  // namespace

TEST(TimesOfATransaction, RowsSharingAMicrosecondGetOneMicrosecondEachInIdOrder) {
  std::vector<mn::LogRow> rows{at(1, 7, 100), at(2, 7, 100), at(3, 7, 100)};
  mn::make_times_distinct(rows);
  EXPECT_EQ(times(rows), (std::vector<int64_t>{100, 101, 102}));
}

TEST(TimesOfATransaction, ARowWhoseOwnTimeIsLaterKeepsItAndTheNextOnesFollowIt) {
  std::vector<mn::LogRow> rows{at(1, 7, 100), at(2, 7, 100), at(3, 7, 500), at(4, 7, 500), at(5, 7, 501)};
  mn::make_times_distinct(rows);
  EXPECT_EQ(times(rows), (std::vector<int64_t>{100, 101, 500, 501, 502}));
}

TEST(TimesOfATransaction, AClockThatStepsBackStillGivesIncreasingTimes) {
  std::vector<mn::LogRow> rows{at(1, 7, 1000), at(2, 7, 10), at(3, 7, 20)};
  mn::make_times_distinct(rows);
  EXPECT_EQ(times(rows), (std::vector<int64_t>{1000, 1001, 1002}));
}

TEST(TimesOfATransaction, InterleavedTransactionsAreEachRankedOnTheirOwn) {
  // Two transactions' ids interleave; each keeps its own sequence and other's rows do not
  // push its times.
  std::vector<mn::LogRow> rows{at(1, 7, 100), at(2, 8, 100), at(3, 7, 100), at(4, 8, 300), at(5, 7, 100)};
  mn::make_times_distinct(rows);
  EXPECT_EQ(times(rows), (std::vector<int64_t>{100, 100, 101, 300, 102}));
}

TEST(CountingTransactions, InterleavedRowsOfTwoTransactionsCountTwoNotFive) {
  std::vector<mn::LogRow> rows{at(1, 7, 100), at(2, 8, 100), at(3, 7, 100), at(4, 8, 300), at(5, 7, 100)};
  EXPECT_EQ(mn::count_transactions(rows, [](uint64_t) { return false; }), 2u);
  EXPECT_EQ(mn::count_transactions(rows, [](uint64_t xid) { return xid == 8; }), 1u);
  EXPECT_EQ(mn::count_transactions({}, [](uint64_t) { return false; }), 0u);
}
