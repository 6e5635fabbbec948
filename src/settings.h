// The settings table: one row per setting of `serve`, holding everything about it (name, the
// Config field it fills, default, bounds, whether SIGHUP reloads it, help). The flags, the
// environment variables, the config file's keys, Config's defaults, `--help` and the bounds
// `load()` checks all come from these rows, so a setting is stated in one place.
// Pure: no I/O, no CLI11.
#pragma once

#include "config.h"

#include <chrono>
#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace mn {

// The row's counts hold row numbers too (max-replay-rows is a uint64_t field).
static_assert(std::is_same_v<std::uint64_t, std::size_t>, "settings assume an LP64 platform");

// The Config field a row fills; its type decides how a value is parsed.
using SettingSlot = std::variant<std::string Config::*, bool Config::*, std::size_t Config::*, double Config::*,
                                 std::chrono::milliseconds Config::*>;

// What values a setting accepts: a numeric range (durations in milliseconds), or for text a
// list of choices. The default accepts anything.
struct Bounds {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_excluded = false;
  bool is_duration = false;        // lo and hi are milliseconds, shown as durations
  const char* choices = nullptr;   // text: one of these, comma-separated
};

constexpr Bounds at_least(double lo) { return {lo}; }
constexpr Bounds at_least(std::chrono::milliseconds lo) {
  return {static_cast<double>(lo.count()), std::numeric_limits<double>::infinity(), false, true};
}
constexpr Bounds between(double lo, double hi) { return {lo, hi}; }
// Above lo (excluded), at most hi.
constexpr Bounds above(double lo, double hi) { return {lo, hi, true}; }
constexpr Bounds one_of(const char* choices) {
  return {-std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity(), false, false, choices};
}

enum class Source {
  flag,         // --name, MEMBERSHIP_NOTIFIER_NAME, or `name = value` in the config file
  environment,  // MEMBERSHIP_NOTIFIER_NAME only: a secret never goes on a command line
};

struct Setting {
  const char* name;           // the flag without "--"
  SettingSlot slot;
  const char* default_value;  // written as an operator would write it; empty: none
  Bounds bounds;
  bool reloadable;            // SIGHUP applies a new value
  const char* help;           // one line for --help
  Source source = Source::flag;
};

// Every setting of `serve`, in the order --help and docs/operating.md list them.
const std::vector<Setting>& settings();
const Setting* find_setting(std::string_view name);

// "max-connections" -> "MEMBERSHIP_NOTIFIER_MAX_CONNECTIONS".
std::string env_name(std::string_view name);

// Parses `text` as the row's type into cfg's field; false when it does not parse.
bool set_value(const Setting& row, const std::string& text, Config& cfg);
// The row's value in cfg as text, formatted as its default would be.
std::string value_text(const Setting& row, const Config& cfg);
// "--name must be ..." when cfg's value is outside the row's bounds.
std::optional<std::string> bounds_error(const Setting& row, const Config& cfg);
// The bounds in words ("between 1 and 1000000"); empty when there are none.
std::string describe_bounds(const Bounds& bounds);
// One end of a range as describe_bounds() writes it ("100ms", "64 MiB", "4096").
std::string bound_text(double value, const Bounds& bounds);

}  // namespace mn
