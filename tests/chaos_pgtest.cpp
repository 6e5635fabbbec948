// Chaos: a writer makes thousands of random joins, leaves and moves for a few hundred users
// while client sockets are dropped and resumed and the sidecar is SIGKILLed and restarted at
// random. At the end every client's view (snapshots plus events, duplicates dropped by log
// id) must equal the table, and every change committed after a client's last snapshot must
// have reached it. Bounded in time; prints the numbers it checked.
#include "offset.h"
#include "support/notifier_fixture.h"

#include <algorithm>
#include <atomic>
#include <iterator>
#include <random>
#include <thread>

using namespace mn::test;
using namespace std::chrono_literals;

namespace {

constexpr int kUsers = 300;
constexpr int kChannels = 40;
constexpr int kTracked = 30;  // users with a client
constexpr auto kDuration = 8s;  // per wake mode

struct Tracked {
  std::string user;
  std::unique_ptr<WsClient> ws;
  std::string offset;
  std::set<std::string> channels;
  std::set<int64_t> ids_since_snapshot;
  std::string snapshot_position;  // pg_snapshot text of the last snapshot
  bool synced = false;            // has had a snapshot or a resume since connecting
};

struct Totals {
  int drops = 0, kills = 0, resumes = 0, snapshots = 0, events = 0, duplicates = 0, refused = 0;
};

}  // namespace

class Chaos : public EveryWakeModeFixture {
 protected:
  Chaos() : EveryWakeModeFixture(false) {}  // the test starts its sidecar on a fixed port

  void apply(Tracked& t, const nlohmann::json& f) {
    std::string ev = f.value("event", "");
    if (ev == "session") {
      if (f["data"].value("recovered", false)) ++totals_.resumes;
      return;
    }
    auto off = mn::decode_offset(f.value("offset", ""));
    ASSERT_TRUE(off) << f.dump();
    t.offset = f["offset"];
    if (ev == "channel.snapshot") {
      ++totals_.snapshots;
      t.channels.clear();
      for (auto& ch : f["data"]["channels"]) t.channels.insert(ch["channelId"].get<std::string>());
      t.ids_since_snapshot.clear();
      t.snapshot_position = off->pos.base.to_string();
      return;
    }
    ASSERT_TRUE(ev == "channel.joined" || ev == "channel.left") << f.dump();
    EXPECT_EQ(f["data"]["userId"], t.user);
    EXPECT_EQ(f.value("id", ""), std::to_string(off->pos.last_id));
    if (!t.ids_since_snapshot.insert(off->pos.last_id).second) {
      ++totals_.duplicates;
      return;
    }
    ++totals_.events;
    if (ev == "channel.joined") t.channels.insert(f["data"]["channelId"].get<std::string>());
    else t.channels.erase(f["data"]["channelId"].get<std::string>());
  }

  static std::string ids_text(const std::vector<int64_t>& ids) {
    std::string out;
    for (auto id : ids) out += (out.empty() ? "" : " ") + std::to_string(id);
    return out;
  }

  void pump(Tracked& t, std::chrono::milliseconds wait) {
    if (!t.ws) return;
    while (auto m = t.ws->next(wait)) {
      auto f = nlohmann::json::parse(*m);
      apply(t, f);
      wait = 0ms;
    }
  }

  void reconnect(Tracked& t, uint16_t p, bool with_offset) {
    std::string q = "/ws?access_token=" + token(t.user);
    if (with_offset && !t.offset.empty()) q += "&offset=" + t.offset;
    auto ws = WsClient::connect(p, q, {}, 2s);
    if (ws->handshake_status() != 101) {
      ++totals_.refused;  // the sidecar is down right now; try again on the next visit
      return;
    }
    t.ws = std::move(ws);
  }

  Totals totals_;
};

MN_EVERY_WAKE_MODE(Chaos);

TEST_P(Chaos, EveryClientsViewEqualsTheTableAfterRandomDropsAndSidecarKills) {
  uint16_t p = free_port();
  start_sidecar({"--listen", "127.0.0.1:" + std::to_string(p)});
  std::vector<Tracked> clients(kTracked);
  for (int i = 0; i < kTracked; ++i) {
    clients[i].user = "u" + std::to_string(i);
    reconnect(clients[i], p, false);
  }

  std::atomic<bool> stop{false};
  std::atomic<int> committed{0}, failed{0};
  std::thread writer([&] {
    std::mt19937 rng(42);
    pqxx::connection conn(conninfo());
    auto user = [&] { return "'u" + std::to_string(rng() % kUsers) + "'"; };
    auto chan = [&] { return "'ch" + std::to_string(rng() % kChannels) + "'"; };
    while (!stop) {
      std::string tx = "BEGIN;";
      for (int n = 1 + rng() % 3; n > 0; --n) {
        switch (rng() % 4) {
          case 0:
          case 1: tx += "INSERT INTO channel_members VALUES (" + chan() + "," + user() + ") ON CONFLICT DO NOTHING;"; break;
          case 2: tx += "DELETE FROM channel_members WHERE channel_id = " + chan() + " AND user_id = " + user() + ";"; break;
          case 3:
            tx += "UPDATE channel_members SET user_id = " + user() + " WHERE (channel_id, user_id) IN "
                  "(SELECT channel_id, user_id FROM channel_members WHERE channel_id = " + chan() + " LIMIT 1);";
            break;
        }
      }
      try {
        pqxx::nontransaction(conn).exec(tx + "COMMIT;");
        ++committed;
      } catch (const pqxx::sql_error&) {
        ++failed;  // a move onto an existing pair: the application's own conflict
        pqxx::nontransaction(conn).exec("ROLLBACK");
      }
    }
  });

  std::mt19937 rng(7);
  auto until = std::chrono::steady_clock::now() + kDuration;
  auto next_kill = std::chrono::steady_clock::now() + 2s + std::chrono::milliseconds(rng() % 2000);
  while (std::chrono::steady_clock::now() < until) {
    Tracked& t = clients[rng() % kTracked];
    if (!t.ws || !t.ws->is_open()) {
      reconnect(t, p, rng() % 10 != 0);  // now and then a client without its offset
    } else {
      pump(t, 0ms);
      if (rng() % 25 == 0) {
        t.ws->close();
        t.ws.reset();
        ++totals_.drops;
      }
    }
    if (std::chrono::steady_clock::now() > next_kill) {
      sidecar().kill9();
      ++totals_.kills;
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 300));
      start_sidecar({"--listen", "127.0.0.1:" + std::to_string(p)});
      next_kill = std::chrono::steady_clock::now() + 2s + std::chrono::milliseconds(rng() % 2000);
    }
    std::this_thread::sleep_for(2ms);
  }
  stop = true;
  writer.join();

  // Settle: every client connected (resuming), everything delivered.
  for (auto& t : clients) {
    for (int attempt = 0; attempt < 20 && (!t.ws || !t.ws->is_open()); ++attempt) reconnect(t, p, true);
    ASSERT_TRUE(t.ws && t.ws->is_open()) << t.user;
  }
  std::this_thread::sleep_for(1500ms);
  for (auto& t : clients) pump(t, 100ms);

  int rows_checked = 0;
  for (auto& t : clients) {
    std::set<std::string> table;
    for (auto row : query("SELECT channel_id FROM channel_members WHERE user_id = '" + t.user + "'"))
      table.insert(row[0].as<std::string>());
    EXPECT_EQ(t.channels, table) << t.user;
    ASSERT_FALSE(t.snapshot_position.empty()) << t.user << " never had a snapshot";
    std::set<int64_t> committed_since;
    for (auto row : query("SELECT id FROM membership_notifier.event_log WHERE user_id = '" + t.user +
                          "' AND NOT pg_visible_in_snapshot(xid, '" + t.snapshot_position + "')"))
      committed_since.insert(row[0].as<int64_t>());
    std::vector<int64_t> missing, extra;
    std::set_difference(committed_since.begin(), committed_since.end(), t.ids_since_snapshot.begin(),
                        t.ids_since_snapshot.end(), std::back_inserter(missing));
    std::set_difference(t.ids_since_snapshot.begin(), t.ids_since_snapshot.end(), committed_since.begin(),
                        committed_since.end(), std::back_inserter(extra));
    EXPECT_TRUE(missing.empty() && extra.empty())
        << t.user << " (snapshot " << t.snapshot_position << "): " << missing.size()
        << " log rows committed since its snapshot never delivered (" << ids_text(missing) << "), " << extra.size()
        << " delivered that the log does not have since it (" << ids_text(extra) << ")";
    rows_checked += static_cast<int>(committed_since.size());
  }
  std::printf("chaos (%s): %d transactions committed (%d refused by the table), %d sidecar kills, %d socket drops, "
              "%d resumes, %d snapshots, %d events applied, %d duplicates dropped, %d connects refused while down; "
              "%d users' views equal the table, %d log rows checked delivered\n",
              GetParam().c_str(), committed.load(), failed.load(), totals_.kills, totals_.drops, totals_.resumes, totals_.snapshots,
              totals_.events, totals_.duplicates, totals_.refused, kTracked, rows_checked);
  EXPECT_GT(committed.load(), 1000);
  EXPECT_GE(totals_.kills, 1);
  EXPECT_GT(totals_.resumes, 10);
}
