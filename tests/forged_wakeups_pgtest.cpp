// The database side of trust: other roles of the database are hostile. NOTIFY and LISTEN need
// no privilege, so a role with no grants at all (`nobody`) can send on the sidecar's channel and
// listen to it. What it sends must reach no one, move nothing and hide no real change; what it
// hears must name no user and no channel. The migration here is run by a role that is not a
// superuser (`owner`, owning the application's table), as in production.
#include "node/node_client.h"
#include "support/notifier_fixture.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace mn::test {
namespace {

using namespace std::chrono_literals;

class ForgedWakeUps : public EveryWakeModeFixture {
 protected:
  ForgedWakeUps() : EveryWakeModeFixture(false) {}

  void SetUp() override {
    EveryWakeModeFixture::SetUp();
    std::string out;
    ASSERT_EQ(run_binary({"migrate", "down", "--database-url", conninfo()}, &out), 0) << out;
    pg().exec("DO $$ BEGIN"
              "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nobody') THEN CREATE ROLE nobody LOGIN; END IF;"
              "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'owner') THEN CREATE ROLE owner LOGIN; END IF;"
              " END $$");
    sql("GRANT CREATE ON DATABASE " + db() + " TO owner");
    sql("ALTER TABLE channel_members OWNER TO owner");
    ASSERT_EQ(run_binary({"migrate", "up", "--database-url", as("owner")}, &out), 0) << out;
    start_sidecar();
  }

  std::string as(const std::string& role) { return conninfo() + " user=" + role; }

  // What `nobody` can send: every shape a forger might try, the triggers' old row format, and
  // well-formed payloads with a MAC it cannot make. Returns how many NOTIFYs it sent.
  int forge(const std::string& target_user) {
    pqxx::connection c{as("nobody")};
    pqxx::nontransaction tx{c};
    const std::string next = tx.exec("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")[0][0].as<std::string>();
    const std::string past = std::to_string(std::stoull(next) - 1);
    const std::string future = std::to_string(std::stoull(next) + 1000);
    const std::string mac(64, '0');
    std::vector<std::string> payloads = {
        // A whole row, the payload earlier versions' triggers sent: never delivered from a wake-up.
        "[\"" + next + "\", 999999, \"j\", \"fake-channel\", \"" + target_user + "\", \"forged\", 1795708800000000]",
        "[\"" + past + "\", 1, \"j\", \"fake-channel\", \"" + target_user + "\", null, 1795708800000000]",
        "[\"" + next + "\", 9223372036854775807, \"l\", \"c-real\", \"" + target_user + "\", null, 1]",
        next + ".9223372036854775807." + mac,
        past + ".1." + mac,
        future + ".1." + mac,
        next + ".-1." + mac,
        next + ".1",
        next + ".1.2." + mac,
        std::string(7999, 'x'),
        "{\"not\": \"json\"",
        "",
    };
    for (const auto& p : payloads) tx.exec_params("SELECT pg_notify('membership_notifier', $1)", p);
    return static_cast<int>(payloads.size());
  }
};

TEST_P(ForgedWakeUps, NoForgedPayloadReachesAnyoneAndEveryRealChangeStillArrivesLiveAndOnResume) {
  std::string before_offset;
  auto ws = connect("u1");
  sql("INSERT INTO channel_members VALUES ('c-before', 'u1')");
  auto first = events(*ws, 400ms, &before_offset);
  ASSERT_EQ(first, (std::vector<std::string>{"joined c-before u1"}));
  NodeClient sio("http://127.0.0.1:" + std::to_string(port()),
                 {{"auth", {{"token", token("u1")}}}, {"transports", {"websocket"}}});
  sio.expect("connect");
  sio.expect_event("channel.snapshot");

  const int sent = forge("u1");
  // A real change right behind the forgeries: one of them named the next transaction with the
  // largest id, which must not hide it.
  sql("INSERT INTO channel_members VALUES ('c-real', 'u1')");
  const int sent_again = forge("u1");

  EXPECT_EQ(events(*ws), (std::vector<std::string>{"joined c-real u1"}));
  EXPECT_EQ(sio.expect_event("channel.joined").at("channelId"), "c-real");
  auto rest = sio.drain();
  for (const auto& r : rest) EXPECT_EQ(r.dump().find("fake-channel"), std::string::npos) << r.dump();
  for (const auto& r : rest) EXPECT_NE(r.value("name", ""), "channel.left") << r.dump();

  nlohmann::json session;
  auto resumed = connect("u1", "&offset=" + before_offset, 0, &session);
  EXPECT_EQ(session["data"]["recovered"], true);
  EXPECT_EQ(events(*resumed), (std::vector<std::string>{"joined c-real u1"}));

  const std::string m = metrics();
  // Poll mode does not LISTEN: it hears nothing at all.
  EXPECT_EQ(metric(m, "membership_notifier_forged_wakeups_total"), GetParam() == "poll" ? 0 : sent + sent_again) << m;
  if (GetParam() != "poll") {
    EXPECT_TRUE(sidecar().wait_for_log("that the triggers did not send was ignored")) << sidecar().log();
  }
}

TEST_P(ForgedWakeUps, AFloodOfForgedWakeUpsCausesNoReads) {
  auto ws = connect("u1");
  std::this_thread::sleep_for(300ms);
  const double reads_before = metric(metrics(), "membership_notifier_db_reads_total");
  int sent = 0;
  for (int i = 0; i < 20; ++i) sent += forge("u1");
  std::this_thread::sleep_for(300ms);
  const std::string m = metrics();
  // The reads of 0.6 s of settling or polling at most, not one per forged NOTIFY.
  EXPECT_LT(metric(m, "membership_notifier_db_reads_total") - reads_before, sent / 4) << m;
  EXPECT_TRUE(events(*ws).empty());
}

TEST_P(ForgedWakeUps, ARoleWithNoGrantsThatListensHearsNoUserOrChannelAndCannotReadTheKey) {
  pqxx::connection spy{as("nobody")};
  std::vector<std::string> heard;
  struct Receiver final : pqxx::notification_receiver {
    Receiver(pqxx::connection_base& c, std::vector<std::string>& out)
        : pqxx::notification_receiver(c, "membership_notifier"), out_(out) {}
    void operator()(const std::string& payload, int) override { out_.push_back(payload); }
    std::vector<std::string>& out_;
  } receiver{spy, heard};
  auto ws = connect("u-secret-user");
  std::this_thread::sleep_for(300ms);
  sql("INSERT INTO channel_members VALUES ('secret-channel', 'u-secret-user')");
  sql("DELETE FROM channel_members WHERE channel_id = 'secret-channel'");
  EXPECT_EQ(events(*ws).size(), 2u);
  while (spy.await_notification(0, 300000) > 0) {
  }
  if (GetParam() != "poll") {
    EXPECT_EQ(heard.size(), 2u) << "the spy hears that something changed, and when";
  }
  for (const auto& p : heard) {
    EXPECT_EQ(p.find("secret"), std::string::npos) << p;
    EXPECT_EQ(p.find("u-"), std::string::npos) << p;
  }
  pqxx::nontransaction tx{spy};
  EXPECT_THROW(tx.exec("SELECT key FROM membership_notifier.wake_key"), pqxx::sql_error);
}

MN_EVERY_WAKE_MODE(ForgedWakeUps);

}  // namespace
}  // namespace mn::test
