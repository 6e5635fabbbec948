// DatabaseTest: a test with a database of its own in the shared cluster, named after the test
// (so a failed run's leftovers say whose they are), and the calls such tests make on it.
#pragma once

#include "support/pg_cluster.h"
#include "support/sidecar.h"

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <cctype>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace mn::test {

class DatabaseTest : public ::testing::Test {
 protected:
  // `prefix` starts the database's name ("sql_", "bulk_").
  explicit DatabaseTest(std::string prefix) : prefix_(std::move(prefix)) {}

  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    const std::string full = std::string(info->test_suite_name()) + "." + info->name();
    db_ = prefix_;
    for (char c : full.substr(0, 40)) {
      db_ += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_';
    }
    db_ += "_" + std::to_string(std::hash<std::string>{}(full) % 100000000);
    pg().exec("DROP DATABASE IF EXISTS " + db_ + " WITH (FORCE)");
    pg().create_database(db_);
  }

  PgCluster& pg() { return shared_cluster(); }
  std::string conninfo() { return pg().conninfo(db_); }
  void sql(const std::string& statements) { pg().exec(statements, db_); }
  pqxx::result query(const std::string& statement) { return pg().query(statement, db_); }
  std::string one(const std::string& statement) {
    auto r = query(statement);
    return r.at(0).at(0).is_null() ? "<null>" : r.at(0).at(0).as<std::string>();
  }
  static std::string one(pqxx::connection& c, const std::string& statement) {
    pqxx::nontransaction tx{c};
    return tx.exec(statement).at(0).at(0).as<std::string>();
  }

  // `membership-notifier migrate <verb> --database-url <this db> <args…>`; the exit status.
  int migrate(const std::string& verb, const std::vector<std::string>& args = {}, std::string* out = nullptr,
              const std::string& url = "") {
    std::vector<std::string> argv = {"migrate", verb, "--database-url", url.empty() ? conninfo() : url};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string captured;
    const int status = run_binary(argv, &captured);
    if (out) *out = captured;
    if (status != 0) std::fprintf(stderr, "migrate %s exited %d:\n%s\n", verb.c_str(), status, captured.c_str());
    return status;
  }

  std::string db_;

 private:
  std::string prefix_;
};

}  // namespace mn::test
