#include "config.h"

#include "origin_policy.h"
#include "settings.h"
#include "tls_context.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <type_traits>
#include <variant>

namespace mn {
namespace {

// Mapping's options (migrate up): flag and environment variable from `name`.
template <typename T>
CLI::Option* add(CLI::App& app, const std::string& name, T& var, const std::string& help) {
  auto* opt = app.add_option("--" + name, var, help);
  opt->envname(env_name(name))->capture_default_str();
  return opt;
}

// The variable a row writes to: a field of a Config, or a free one (migrate's --database-url).
using SettingRef = std::variant<std::string*, bool*, std::size_t*, double*, std::chrono::milliseconds*>;

SettingRef ref(const Setting& row, Config& cfg) {
  return std::visit([&cfg](auto field) -> SettingRef { return &(cfg.*field); }, row.slot);
}

// One row as a CLI11 option: --name, MEMBERSHIP_NOTIFIER_NAME and the config file's `name`.
CLI::Option* add_row(CLI::App& app, const Setting& row, SettingRef target) {
  const std::string flag = std::string("--") + row.name;
  const std::string bounds = describe_bounds(row.bounds);
  const std::string help = std::string(row.help) + (bounds.empty() ? "" : " (" + bounds + ")");
  CLI::Option* opt = std::visit(
      [&](auto* var) -> CLI::Option* {
        using T = std::remove_pointer_t<decltype(var)>;
        if constexpr (std::is_same_v<T, std::chrono::milliseconds>) {
          return app.add_option_function<std::string>(
              flag,
              [var, flag](const std::string& text) {
                auto d = parse_duration(text);
                if (!d) throw CLI::ValidationError(flag, "not a duration (e.g. 500ms, 5s, 10m, 24h): " + text);
                *var = *d;
              },
              std::string(row.help) + " (a duration" + (bounds.empty() ? "" : " " + bounds) +
                  ", e.g. 500ms, 5s, 24h)");
        } else if constexpr (std::is_same_v<T, bool>) {
          return app.add_option(flag, *var, help + " (true/false)");
        } else {
          return app.add_option(flag, *var, help);
        }
      },
      target);
  if (row.reloadable) opt->description(opt->get_description() + " [reloads on SIGHUP]");
  opt->envname(env_name(row.name))->default_str(row.default_value);
  return opt;
}

std::string read_file(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path;
    return {};
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::optional<WakeMode> parse_wake_mode(std::string_view s) {
  if (s == "notify") return WakeMode::notify;
  if (s == "adaptive") return WakeMode::adaptive;
  if (s == "poll") return WakeMode::poll;
  return std::nullopt;
}

const char* to_string(WakeMode m) {
  switch (m) {
    case WakeMode::notify: return "notify";
    case WakeMode::adaptive: return "adaptive";
    case WakeMode::poll: return "poll";
  }
  return "?";
}

std::string format_duration(std::chrono::milliseconds d) {
  long long ms = d.count();
  static const std::pair<long long, const char*> units[] = {
      {24LL * 3600 * 1000, "d"}, {3600LL * 1000, "h"}, {60LL * 1000, "m"}, {1000, "s"}};
  for (const auto& [factor, unit] : units)
    if (ms != 0 && ms % factor == 0) return std::to_string(ms / factor) + unit;
  return std::to_string(ms) + "ms";
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view s) {
  size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  if (digits == 0 || digits > 12) return std::nullopt;
  long long n = 0;
  std::from_chars(s.data(), s.data() + digits, n);
  std::string_view unit = s.substr(digits);
  long long factor = 0;
  if (unit.empty() || unit == "ms") factor = 1;
  else if (unit == "s") factor = 1000;
  else if (unit == "m") factor = 60 * 1000;
  else if (unit == "h") factor = 3600 * 1000;
  else if (unit == "d") factor = 24 * 3600 * 1000;
  else return std::nullopt;
  return std::chrono::milliseconds(n * factor);
}

void register_database_option(CLI::App& app, std::string& database_url) {
  add_row(app, *find_setting("database-url"), &database_url);
}

void register_serve_options(CLI::App& app, Config& c) {
  app.set_config("--config", "", "Read settings from this file (INI/TOML: name = value)");
  for (const auto& row : settings())
    if (row.source == Source::flag) add_row(app, row, ref(row, c));
}

void register_mapping_options(CLI::App& app, Mapping& m) {
  auto given = [&m](const char* name) {
    return [&m, name](const std::string&) { m.given.push_back(name); };
  };
  add(app, "table", m.table, "Membership table")->each(given("member_table"));
  add(app, "channel-column", m.channel_column, "Its channel id column")->each(given("channel_column"));
  add(app, "user-column", m.user_column, "Its user id column")->each(given("user_column"));
  add(app, "xtype-column", m.xtype_column,
      "Column holding xType: in the membership table, or in --channels-table")
      ->each(given("xtype_column"));
  add(app, "channels-table", m.channels_table, "Look xType up in this table by channel id")
      ->each(given("channels_table"));
  add(app, "channels-key-column", m.channels_key, "Channel id column of --channels-table")
      ->each(given("channels_key"));
}

namespace {

// "host:port" (host may be [v6]) into its parts, or an error naming the flag.
void parse_address(const std::string& flag, const std::string& value, std::string& host, uint16_t& port,
                   std::vector<std::string>& errors) {
  auto colon = value.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    errors.push_back("--" + flag + " must be host:port, got '" + value + "'");
    return;
  }
  host = value.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  unsigned n = 0;
  auto p = value.substr(colon + 1);
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), n);
  if (ec != std::errc() || end != p.data() + p.size() || n > 65535)
    errors.push_back("--" + flag + " port must be 0-65535, got '" + p + "'");
  port = static_cast<uint16_t>(n);
}

// Splits a comma-separated list, each item trimmed of blanks, empty items dropped.
std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream list(text);
  for (std::string item; std::getline(list, item, ',');) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace

std::vector<std::string> load(Config& c) {
  std::vector<std::string> errors;
  for (const auto& row : settings()) {
    if (row.source == Source::environment && value_text(row, c).empty())
      if (const char* env = std::getenv(env_name(row.name).c_str())) set_value(row, env, c);
    if (auto why = bounds_error(row, c)) errors.push_back(*why);
  }

  parse_address("listen", c.listen, c.listen_host, c.listen_port, errors);
  if (c.reuse_port_group == 1) errors.push_back("--reuse-port-group must be 0 (off) or 2 or more");
  if (c.reuse_port_group >= 2 && !c.reuse_port) errors.push_back("--reuse-port-group needs --reuse-port");
  if (!c.admin_listen.empty()) parse_address("admin-listen", c.admin_listen, c.admin_host, c.admin_port, errors);

  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    errors.push_back("--tls-cert-file and --tls-key-file go together");
  } else if (!c.tls_cert_file.empty()) {
    try {
      make_tls_context(c.tls_cert_file, c.tls_key_file);
    } catch (const std::exception& e) {
      errors.push_back(e.what());
    }
  }

  if (auto mode = parse_wake_mode(c.wake_mode_name)) c.wake_mode = *mode;

  const size_t before_jwt = errors.size();
  auto alg = parse_jwt_algorithm(c.jwt_algorithm);
  c.jwt = JwtSettings{};
  if (alg) c.jwt.algorithm = *alg;
  c.jwt.audience = c.jwt_audience;
  c.jwt.issuer = c.jwt_issuer;
  c.jwt.user_claim = c.jwt_user_claim;
  c.jwt.require_exp = c.jwt_require_exp;
  c.jwt.leeway = std::chrono::duration_cast<std::chrono::seconds>(c.jwt_leeway);
  std::string err;
  if (alg == JwtAlgorithm::HS256) {
    if (!c.jwt_public_key_file.empty())
      errors.push_back("--jwt-public-key-file is for RS256/ES256; HS256 takes a secret");
    if (!c.jwt_secret_file.empty()) {
      c.jwt.key = read_file(c.jwt_secret_file, err);
      // A trailing newline from `echo secret > file` is not part of the secret.
      while (!c.jwt.key.empty() && (c.jwt.key.back() == '\n' || c.jwt.key.back() == '\r')) c.jwt.key.pop_back();
    } else {
      c.jwt.key = c.jwt_secret;
    }
    if (!err.empty()) errors.push_back("--jwt-secret-file: " + err);
    else if (c.jwt.key.empty())
      errors.push_back("HS256 needs a secret: --jwt-secret-file or MEMBERSHIP_NOTIFIER_JWT_SECRET");
  } else if (alg) {
    if (c.jwt_public_key_file.empty()) errors.push_back("RS256/ES256 need --jwt-public-key-file");
    else c.jwt.key = read_file(c.jwt_public_key_file, err);
    if (!err.empty()) errors.push_back("--jwt-public-key-file: " + err);
  }
  if (alg && errors.size() == before_jwt) {
    try {
      JwtVerifier check(c.jwt);
    } catch (const std::exception& e) {
      errors.push_back(std::string("JWT key: ") + e.what());
    }
  }

  if (c.max_unauthenticated == 0) c.max_unauthenticated = std::max<size_t>(16, c.max_connections / 10);
  c.allowed_origin_list.clear();
  for (const auto& item : split_list(c.allowed_origins)) {
    if (auto why = origin_pattern_error(item)) errors.push_back("--allowed-origins: " + *why);
    else c.allowed_origin_list.push_back(item);
  }
  c.durable_standbys = split_list(c.durable_standbys_list);
  if (c.busy_poll_interval > c.poll_interval)
    errors.push_back("--busy-poll-interval must be at most --poll-interval");
  return errors;
}

}  // namespace mn
