// The settings that bound what clients can do (issue 24): their defaults and their bounds.
#include "config.h"

#include <gtest/gtest.h>

#include <cstdlib>

using namespace std::chrono_literals;

namespace {

struct Loaded {
  mn::Config cfg;
  std::vector<std::string> errors;
};

Loaded load(std::vector<std::string> args) {
  Loaded l;
  CLI::App app;
  mn::register_serve_options(app, l.cfg);
  args.insert(args.begin(), "serve");
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
  setenv("MEMBERSHIP_NOTIFIER_JWT_SECRET", "0123456789abcdef0123456789abcdef", 1);
  l.errors = mn::load(l.cfg);
  unsetenv("MEMBERSHIP_NOTIFIER_JWT_SECRET");
  return l;
}

bool mentions(const std::vector<std::string>& errors, const std::string& flag) {
  for (const auto& e : errors)
    if (e.find(flag) != std::string::npos) return true;
  return false;
}

TEST(ClientSettings, DefaultsBoundEveryClientAndTheUnauthenticatedCapIsATenthOfTheConnectionsAtLeast16) {
  auto l = load({});
  ASSERT_TRUE(l.errors.empty()) << l.errors.front();
  EXPECT_EQ(l.cfg.client_message_rate, 10);
  EXPECT_EQ(l.cfg.client_message_burst, 50u);
  EXPECT_EQ(l.cfg.max_connections_per_user, 32u);
  EXPECT_EQ(l.cfg.max_unauthenticated, 1000u);
  EXPECT_EQ(l.cfg.max_unauthenticated_per_address, 16u);
  EXPECT_EQ(l.cfg.auth_timeout, 5s);
  EXPECT_TRUE(l.cfg.allowed_origin_list.empty());
  EXPECT_EQ(load({"--max-connections", "50"}).cfg.max_unauthenticated, 16u);
  EXPECT_EQ(load({"--max-unauthenticated", "7"}).cfg.max_unauthenticated, 7u);
}

TEST(ClientSettings, OutOfBoundsValuesAreErrorsNamingTheirFlag) {
  EXPECT_TRUE(mentions(load({"--client-message-rate", "0"}).errors, "--client-message-rate"));
  EXPECT_TRUE(mentions(load({"--client-message-burst", "0"}).errors, "--client-message-burst"));
  EXPECT_TRUE(mentions(load({"--max-unauthenticated-per-address", "0"}).errors, "--max-unauthenticated-per-address"));
  EXPECT_TRUE(mentions(load({"--max-connections-per-user", "0"}).errors, "--max-connections-per-user"));
  EXPECT_TRUE(mentions(load({"--auth-timeout", "10ms"}).errors, "--auth-timeout"));
  EXPECT_TRUE(mentions(load({"--allowed-origins", "https://a.example, evil"}).errors, "--allowed-origins"));
  EXPECT_TRUE(mentions(load({"--tls-cert-file", "/nonexistent.pem"}).errors, "--tls-key-file"));
  EXPECT_TRUE(mentions(load({"--tls-cert-file", "/nonexistent.pem", "--tls-key-file", "/nonexistent.key"}).errors,
                       "--tls-cert-file"));
}

TEST(ClientSettings, AllowedOriginsAreSplitOnCommasWithBlanksIgnored) {
  auto l = load({"--allowed-origins", " https://a.example ,, *.b.example "});
  ASSERT_TRUE(l.errors.empty()) << l.errors.front();
  EXPECT_EQ(l.cfg.allowed_origin_list, (std::vector<std::string>{"https://a.example", "*.b.example"}));
}

}  // namespace
