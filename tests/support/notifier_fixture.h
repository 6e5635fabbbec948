// NotifierFixture: what most integration tests stand on. A database of its own in the shared
// cluster, the application's table (public.channel_members(channel_id text, user_id text)),
// the real migration applied by the real binary, a running sidecar, and clients with valid
// tokens. One database per test, so tests do not see each other's events.
#pragma once

#include "support/jwt_mint.h"
#include "support/pg_cluster.h"
#include "support/sidecar.h"
#include "support/ws_client.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mn::test {

inline const char* kTestSecret = "test-secret-0123456789abcdef-0123456789";

class NotifierFixture : public ::testing::Test {
 public:
  // "joined c1 u1" / "left c1 u1" for an event frame; the JSON text for anything else.
  static std::string describe(const nlohmann::json& frame);
  // describe() of each frame until `quiet` passes with nothing; the last offset seen goes to
  // *last_offset when given.
  static std::vector<std::string> events(WsClient& c, std::chrono::milliseconds quiet = std::chrono::milliseconds(400),
                                         std::string* last_offset = nullptr);
  // A port that was free a moment ago, for a sidecar that must come back on the same one.
  static uint16_t free_port();

 protected:
  // Creates the database and table and applies the migration (no sidecar yet).
  void SetUp() override;
  void TearDown() override;

  // Starts `db` (a cluster of the test's own) with the application's table in database "app",
  // migrated.
  void install_app(PgCluster& db);

  // Starts a sidecar on this database; extra args are appended to the defaults
  // (serve --database-url … --listen 127.0.0.1:0). Returns once /readyz says 200.
  Sidecar& start_sidecar(const std::vector<std::string>& extra = {}, Sidecar* which = nullptr);

  std::string token(const std::string& user) const { return mint_hs256(kTestSecret, claims_for(user)); }

  // A /ws client for `user`, past the session frame and its snapshot; `query` is appended
  // to the URL (e.g. "&offset=…"). Fails the test if the handshake fails.
  std::unique_ptr<WsClient> connect(const std::string& user, const std::string& query = "",
                                    uint16_t port = 0, nlohmann::json* session = nullptr,
                                    nlohmann::json* snapshot = nullptr);

  void sql(const std::string& statement) { pg().exec(statement, db_); }
  pqxx::result query(const std::string& statement) { return pg().query(statement, db_); }

  // The next event frame (skipping nothing), or a null json on timeout.
  static nlohmann::json next_event(WsClient& c, std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // The sidecar's /metrics text, and one value in it (-1 when absent).
  std::string metrics(uint16_t p = 0);
  static double metric(const std::string& metrics_text, const std::string& name);

  PgCluster& pg() { return shared_cluster(); }
  const std::string& db() const { return db_; }
  std::string conninfo() { return pg().conninfo(db_); }
  uint16_t port() { return sidecar_.port(); }
  Sidecar& sidecar() { return sidecar_; }

  // Wake-mode flags for tests run in every mode (poll mode gets a short interval).
  static std::vector<std::string> wake_mode_args(const std::string& mode) {
    return {"--wake-mode", mode, "--poll-interval", mode == "poll" ? "20ms" : "1s"};
  }

  // Set before SetUp (in the test's constructor) to change what is created.
  std::string table_ddl_ = "CREATE TABLE public.channel_members (channel_id text NOT NULL, "
                           "user_id text NOT NULL, PRIMARY KEY (channel_id, user_id))";
  std::vector<std::string> migrate_args_;
  // When set, start_sidecar() serves this database URL instead of the test's database.
  std::string database_url_override_;
  const std::string& secret_file() const { return secret_file_; }
  // Appended to every start_sidecar() (e.g. the wake mode a parameterised test runs in).
  std::vector<std::string> sidecar_defaults_;

 private:
  std::string db_;
  Sidecar sidecar_;
  std::string secret_file_;
};

// The same tests in every wake mode (each reaches the log by another path; all must deliver the
// same): derive from this, then MN_EVERY_WAKE_MODE(TheFixture). `start` says whether SetUp
// starts a sidecar.
class EveryWakeModeFixture : public NotifierFixture, public ::testing::WithParamInterface<std::string> {
 protected:
  explicit EveryWakeModeFixture(bool start = true) : start_(start) {}
  void SetUp() override {
    sidecar_defaults_ = wake_mode_args(GetParam());
    NotifierFixture::SetUp();
    if (start_) start_sidecar();
  }

 private:
  bool start_;
};

#define MN_EVERY_WAKE_MODE(fixture)                                                            \
  INSTANTIATE_TEST_SUITE_P(EveryWakeMode, fixture, ::testing::Values("adaptive", "notify", "poll"), \
                           [](const auto& param_info) { return param_info.param; })

}  // namespace mn::test
