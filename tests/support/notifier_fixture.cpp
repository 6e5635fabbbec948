#include "support/notifier_fixture.h"

#include "support/http.h"

#include <asio.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace mn::test {

void NotifierFixture::SetUp() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "_" + info->name();
  db_ = "t";
  for (char c : name) db_ += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_';
  db_ = db_.substr(0, 60);
  pg().exec("DROP DATABASE IF EXISTS " + db_ + " WITH (FORCE)");
  pg().create_database(db_);
  sql(table_ddl_);
  std::vector<std::string> args = {"migrate", "up", "--database-url", conninfo()};
  args.insert(args.end(), migrate_args_.begin(), migrate_args_.end());
  std::string out;
  ASSERT_EQ(run_binary(args, &out), 0) << out;
  secret_file_ = testing::TempDir() + "/mn_secret_" + db_;
  std::ofstream(secret_file_) << kTestSecret;
}

void NotifierFixture::TearDown() {
  if (sidecar_.running()) {
    sidecar_.signal(SIGTERM);
    sidecar_.wait_exit();
  }
}

Sidecar& NotifierFixture::start_sidecar(const std::vector<std::string>& extra, Sidecar* which) {
  Sidecar& s = which ? *which : sidecar_;
  std::vector<std::string> args = {"serve", "--database-url",
                                   database_url_override_.empty() ? conninfo() : database_url_override_,
                                   "--jwt-secret-file", secret_file_};
  auto given = [&extra](const char* flag) { return std::find(extra.begin(), extra.end(), flag) != extra.end(); };
  if (!given("--listen")) args.insert(args.end(), {"--listen", "127.0.0.1:0"});
  if (!given("--max-connections")) args.insert(args.end(), {"--max-connections", "2000"});
  args.insert(args.end(), extra.begin(), extra.end());
  args.insert(args.end(), sidecar_defaults_.begin(), sidecar_defaults_.end());
  s.start(args);
  s.port();
  EXPECT_TRUE(s.wait_ready()) << s.log();
  return s;
}

void NotifierFixture::install_app(PgCluster& db) {
  db.start();
  db.exec("CREATE DATABASE app");
  db.exec(table_ddl_, "app");
  std::string out;
  ASSERT_EQ(run_binary({"migrate", "up", "--database-url", db.conninfo("app")}, &out), 0) << out;
}

std::unique_ptr<WsClient> NotifierFixture::connect(const std::string& user, const std::string& query, uint16_t p,
                                                   nlohmann::json* session, nlohmann::json* snapshot) {
  auto c = WsClient::connect(p ? p : port(), "/ws?access_token=" + token(user) + query);
  EXPECT_EQ(c->handshake_status(), 101) << c->handshake_body();
  if (!c->is_open()) return c;
  auto first = c->next_json();
  EXPECT_TRUE(first && (*first)["event"] == "session") << (first ? first->dump() : "nothing");
  if (session && first) *session = *first;
  if (first && !(*first)["data"].value("recovered", false)) {
    auto snap = c->next_json();
    EXPECT_TRUE(snap && (*snap)["event"] == "channel.snapshot") << (snap ? snap->dump() : "nothing");
    if (snapshot && snap) *snapshot = *snap;
  }
  return c;
}

nlohmann::json NotifierFixture::next_event(WsClient& c, std::chrono::milliseconds timeout) {
  auto j = c.next_json(timeout);
  return j ? *j : nlohmann::json();
}

std::string NotifierFixture::describe(const nlohmann::json& f) {
  if (f.is_null()) return "nothing";
  std::string ev = f.value("event", "?");
  if (ev == "channel.joined" || ev == "channel.left") {
    return std::string(ev == "channel.joined" ? "joined " : "left ") + f["data"].value("channelId", "?") + " " +
           f["data"].value("userId", "?");
  }
  return f.dump();
}

uint16_t NotifierFixture::free_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

std::vector<std::string> NotifierFixture::events(WsClient& c, std::chrono::milliseconds quiet,
                                                 std::string* last_offset) {
  std::vector<std::string> out;
  while (auto j = c.next_json(quiet)) {
    if (last_offset && j->contains("offset")) *last_offset = (*j)["offset"];
    if ((*j)["event"] == "position") continue;  // an offset, no event (with pings)
    out.push_back(describe(*j));
  }
  return out;
}

std::string NotifierFixture::metrics(uint16_t p) { return http_get(p ? p : port(), "/metrics").body; }

double NotifierFixture::metric(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

}  // namespace mn::test
