// Config: flags, environment, defaults, and the checks `--check-config` runs.
#include "config.h"
#include "support/sidecar.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

using namespace std::chrono_literals;

namespace {

struct Parsed {
  mn::Config cfg;
  std::vector<std::string> errors;
  bool parse_failed = false;
};

Parsed parse(std::vector<std::string> args) {
  Parsed p;
  CLI::App app;
  mn::register_serve_options(app, p.cfg);
  std::vector<const char*> argv{"serve"};
  for (auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError&) {
    p.parse_failed = true;
    return p;
  }
  p.errors = mn::load(p.cfg);
  return p;
}

}  // namespace

TEST(Config, DurationsTakeUnitsAndBareNumbersAreMilliseconds) {
  EXPECT_EQ(mn::parse_duration("250"), 250ms);
  EXPECT_EQ(mn::parse_duration("5s"), 5000ms);
  EXPECT_EQ(mn::parse_duration("24h"), 24h);
  EXPECT_EQ(mn::parse_duration("1d"), 24h);
  EXPECT_FALSE(mn::parse_duration("5 s"));
  EXPECT_FALSE(mn::parse_duration("s"));
  EXPECT_FALSE(mn::parse_duration("-5s"));
  EXPECT_EQ(mn::format_duration(24h), "1d");
  EXPECT_EQ(mn::format_duration(1500ms), "1500ms");
}

TEST(Config, ValidSettingsLoadWithTheDocumentedDefaults) {
  auto p = parse({"--listen", "0.0.0.0:9000"});
  setenv("MEMBERSHIP_NOTIFIER_JWT_SECRET", "0123456789abcdef0123456789abcdef", 1);
  p = parse({"--listen", "0.0.0.0:9000"});
  unsetenv("MEMBERSHIP_NOTIFIER_JWT_SECRET");
  EXPECT_TRUE(p.errors.empty()) << p.errors.front();
  EXPECT_EQ(p.cfg.listen_host, "0.0.0.0");
  EXPECT_EQ(p.cfg.listen_port, 9000);
  EXPECT_EQ(p.cfg.wake_mode, mn::WakeMode::adaptive);
  EXPECT_EQ(p.cfg.retention, 24h);
  EXPECT_EQ(p.cfg.jwt.key, "0123456789abcdef0123456789abcdef");
}

TEST(Config, EnvironmentVariablesSetFlagsAndFlagsWin) {
  setenv("MEMBERSHIP_NOTIFIER_JWT_SECRET", "0123456789abcdef0123456789abcdef", 1);
  setenv("MEMBERSHIP_NOTIFIER_MAX_CONNECTIONS", "123", 1);
  setenv("MEMBERSHIP_NOTIFIER_PING_INTERVAL", "3s", 1);
  auto p = parse({"--ping-interval", "4s"});
  unsetenv("MEMBERSHIP_NOTIFIER_MAX_CONNECTIONS");
  unsetenv("MEMBERSHIP_NOTIFIER_PING_INTERVAL");
  unsetenv("MEMBERSHIP_NOTIFIER_JWT_SECRET");
  EXPECT_TRUE(p.errors.empty());
  EXPECT_EQ(p.cfg.max_connections, 123u);
  EXPECT_EQ(p.cfg.ping_interval, 4s);
}

TEST(Config, AConfigFileSetsWhatFlagsAndEnvironmentDoNot) {
  std::string path = testing::TempDir() + "/mn_config_test.ini";
  std::ofstream(path) << "wake-mode = poll\nmax-message-bytes = 2048\n";
  setenv("MEMBERSHIP_NOTIFIER_JWT_SECRET", "0123456789abcdef0123456789abcdef", 1);
  auto p = parse({"--config", path});
  unsetenv("MEMBERSHIP_NOTIFIER_JWT_SECRET");
  EXPECT_TRUE(p.errors.empty());
  EXPECT_EQ(p.cfg.wake_mode, mn::WakeMode::poll);
  EXPECT_EQ(p.cfg.max_message_bytes, 2048u);
}

TEST(Config, EveryBadValueIsReportedClearly) {
  auto p = parse({"--listen", "nope", "--wake-mode", "sometimes", "--jwt-algorithm", "none",
                  "--adaptive-notify-max-rate", "-1"});
  ASSERT_FALSE(p.parse_failed);
  std::string all;
  for (auto& e : p.errors) all += e + "\n";
  EXPECT_NE(all.find("--listen"), std::string::npos) << all;
  EXPECT_NE(all.find("--adaptive-notify-max-rate"), std::string::npos) << all;
  EXPECT_NE(all.find("--wake-mode"), std::string::npos) << all;
  EXPECT_NE(all.find("--jwt-algorithm"), std::string::npos) << all;
  EXPECT_TRUE(parse({"--ping-interval", "soon"}).parse_failed);
}

TEST(Config, AReusePortGroupIsOffOrTwoOrMoreAndNeedsReusePort) {
  auto errors_of = [](std::vector<std::string> args) {
    args.push_back("--jwt-secret-file");
    args.push_back("/dev/null");
    std::string all;
    for (auto& e : parse(args).errors) all += e + "\n";
    return all;
  };
  EXPECT_EQ(errors_of({"--reuse-port-group", "3"}).find("--reuse-port-group"), std::string::npos);
  EXPECT_NE(errors_of({"--reuse-port-group", "1"}).find("--reuse-port-group must be 0 (off) or 2 or more"),
            std::string::npos);
  EXPECT_NE(errors_of({"--reuse-port-group", "3", "--reuse-port", "false"}).find("--reuse-port-group needs --reuse-port"),
            std::string::npos);
  EXPECT_NE(errors_of({"--reuse-port-group", "5000"}).find("--reuse-port-group"), std::string::npos);
}

TEST(Config, HS256WithoutASecretAndRS256WithoutAKeyAreRefused) {
  unsetenv("MEMBERSHIP_NOTIFIER_JWT_SECRET");
  auto hs = parse({});
  ASSERT_FALSE(hs.errors.empty());
  EXPECT_NE(hs.errors[0].find("secret"), std::string::npos);
  auto rs = parse({"--jwt-algorithm", "RS256"});
  ASSERT_FALSE(rs.errors.empty());
  EXPECT_NE(rs.errors[0].find("public-key"), std::string::npos);
  auto missing = parse({"--jwt-secret-file", "/nonexistent/secret"});
  ASSERT_FALSE(missing.errors.empty());
  EXPECT_NE(missing.errors[0].find("cannot read"), std::string::npos);
}

TEST(Config, AnHs256SecretShorterThan32BytesIsRefusedByCheckConfigAndByServe) {
  for (const std::string& weak : {std::string("a"), std::string("change-me"), std::string(31, 's')}) {
    const std::map<std::string, std::string> env{{"MEMBERSHIP_NOTIFIER_JWT_SECRET", weak}};
    std::string out;
    EXPECT_EQ(mn::test::run_binary({"serve", "--check-config", "--max-connections", "100"}, &out, env), 2);
    EXPECT_NE(out.find("at least 32"), std::string::npos) << out;
    EXPECT_EQ(out.find(weak + " "), std::string::npos) << "the secret itself must not be printed: " << out;
    out.clear();
    // serve checks before it connects anywhere: no database is needed to see it refuse.
    EXPECT_EQ(mn::test::run_binary({"serve", "--listen", "127.0.0.1:0", "--max-connections", "100"}, &out, env), 2);
    EXPECT_NE(out.find("at least 32"), std::string::npos) << out;
  }
  std::string out;
  EXPECT_EQ(mn::test::run_binary({"serve", "--check-config", "--max-connections", "100"}, &out,
                                 {{"MEMBERSHIP_NOTIFIER_JWT_SECRET", std::string(32, 's')}}),
            0)
      << out;
}

TEST(Config, TheSampleEnvironmentFileAloneCannotStartAServer) {
  std::ifstream in(std::string(MN_SOURCE_DIR) + "/systemd/membership-notifier.env");
  ASSERT_TRUE(in) << "systemd/membership-notifier.env is missing";
  std::map<std::string, std::string> env;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto eq = line.find('=');
    ASSERT_NE(eq, std::string::npos) << line;
    env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  EXPECT_EQ(env.count("MEMBERSHIP_NOTIFIER_JWT_SECRET"), 0u) << "a secret in the sample would be a shared one";
  env["MEMBERSHIP_NOTIFIER_MAX_CONNECTIONS"] = "100";
  std::string out;
  EXPECT_EQ(mn::test::run_binary({"serve", "--check-config"}, &out, env), 2) << out;
  EXPECT_NE(out.find("HS256 needs a secret"), std::string::npos) << out;
}
