// The settings table (src/settings.h): each row's default is a value the row accepts, each row
// is a setting of its own, and the bounds hold at their edges.
#include "jwt_verifier.h"
#include "settings.h"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <set>
#include <sstream>

namespace {

std::vector<std::string> choices(const mn::Setting& row) {
  std::vector<std::string> out;
  std::istringstream in(row.bounds.choices ? row.bounds.choices : "");
  for (std::string item; std::getline(in, item, ',');) out.push_back(item.substr(item.find_first_not_of(' ')));
  return out;
}

// The error for `name` set to `text`, or "" when the value is within bounds.
std::string error_for(const std::string& name, const std::string& text) {
  const mn::Setting* row = mn::find_setting(name);
  if (!row) return "no setting " + name;
  mn::Config cfg;
  if (!mn::set_value(*row, text, cfg)) return "does not parse: " + text;
  return mn::bounds_error(*row, cfg).value_or("");
}

}  // namespace

TEST(SettingsTable, EveryRowsDefaultParsesAndLiesWithinItsBounds) {
  ASSERT_GT(mn::settings().size(), 30u);
  for (const auto& row : mn::settings()) {
    mn::Config cfg;
    EXPECT_TRUE(mn::set_value(row, row.default_value, cfg)) << row.name << ": default '" << row.default_value << "'";
    EXPECT_EQ(mn::bounds_error(row, cfg), std::nullopt) << row.name;
  }
}

TEST(SettingsTable, AFreshConfigsWakeModeIsItsWakeModeNameParsed) {
  const mn::Config fresh;
  EXPECT_EQ(mn::parse_wake_mode(fresh.wake_mode_name), fresh.wake_mode);
}

TEST(SettingsTable, EachRowHasANameAndAFieldOfItsOwnAndHelp) {
  std::set<std::string> names;
  const auto& rows = mn::settings();
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_TRUE(names.insert(rows[i].name).second) << rows[i].name << " twice";
    EXPECT_FALSE(std::string(rows[i].help).empty()) << rows[i].name;
    for (size_t j = 0; j < i; ++j)
      EXPECT_FALSE(rows[i].slot == rows[j].slot) << rows[i].name << " and " << rows[j].name << " fill one field";
  }
  EXPECT_EQ(mn::env_name("max-connections-per-user"), "MEMBERSHIP_NOTIFIER_MAX_CONNECTIONS_PER_USER");
}

TEST(SettingsTable, EveryChoiceOfAChoiceSettingIsOneTheProgramUnderstands) {
  const auto modes = choices(*mn::find_setting("wake-mode"));
  ASSERT_EQ(modes.size(), 3u);
  for (const auto& m : modes) EXPECT_TRUE(mn::parse_wake_mode(m)) << m;
  const auto algorithms = choices(*mn::find_setting("jwt-algorithm"));
  ASSERT_EQ(algorithms.size(), 3u);
  for (const auto& a : algorithms) EXPECT_TRUE(mn::parse_jwt_algorithm(a)) << a;
  for (const auto& level : choices(*mn::find_setting("log-level")))
    EXPECT_TRUE(spdlog::level::from_str(level) != spdlog::level::off || level == "off") << level;
}

TEST(SettingsTable, BoundsHoldAtTheirEdgesAndTheErrorNamesTheFlagAndTheBounds) {
  EXPECT_EQ(error_for("socket-send-buffer", "4096"), "");
  EXPECT_EQ(error_for("socket-send-buffer", "67108864"), "");
  EXPECT_EQ(error_for("socket-send-buffer", "4095"), "--socket-send-buffer must be between 4096 and 64 MiB");
  EXPECT_EQ(error_for("socket-send-buffer", "67108865"), "--socket-send-buffer must be between 4096 and 64 MiB");
  EXPECT_EQ(error_for("client-message-rate", "0.001"), "");
  EXPECT_EQ(error_for("client-message-rate", "0"), "--client-message-rate must be above 0 and at most 1000000");
  EXPECT_EQ(error_for("client-message-rate", "nan"), "--client-message-rate must be above 0 and at most 1000000");
  EXPECT_EQ(error_for("adaptive-notify-max-rate", "0"), "");
  EXPECT_EQ(error_for("adaptive-notify-max-rate", "-1"), "--adaptive-notify-max-rate must be between 0 and 1000000");
  EXPECT_EQ(error_for("auth-timeout", "100ms"), "");
  EXPECT_EQ(error_for("auth-timeout", "99ms"), "--auth-timeout must be at least 100ms");
  EXPECT_EQ(error_for("ping-interval", "0"), "--ping-interval must be at least 1ms");
  EXPECT_EQ(error_for("wake-mode", "sometimes"), "--wake-mode must be one of notify, adaptive, poll, got 'sometimes'");
  EXPECT_EQ(error_for("retention", "0"), "") << "a row without bounds takes any value of its type";
  EXPECT_EQ(error_for("max-connections", "many"), "does not parse: many");
}
