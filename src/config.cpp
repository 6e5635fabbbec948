#include "config.h"

#include "origin_policy.h"
#include "tls_context.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace mn {
namespace {

std::string env_name(const std::string& name) {
  std::string out = "MEMBERSHIP_NOTIFIER_";
  for (char c : name) out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

// One row of the table: flag, environment variable and config key all come from `name`.
template <typename T>
CLI::Option* add(CLI::App& app, const std::string& name, T& var, const std::string& help,
                 bool reloadable = false) {
  auto* opt = app.add_option("--" + name, var, help + (reloadable ? " [reloads on SIGHUP]" : ""));
  opt->envname(env_name(name))->capture_default_str();
  return opt;
}

CLI::Option* add_flag(CLI::App& app, const std::string& name, bool& var, const std::string& help) {
  auto* opt = app.add_option("--" + name, var, help + " (true/false)");
  opt->envname(env_name(name))->capture_default_str();
  return opt;
}

CLI::Option* add_duration(CLI::App& app, const std::string& name, std::chrono::milliseconds& var,
                          const std::string& help, bool reloadable = false) {
  auto* opt = app.add_option_function<std::string>(
      "--" + name,
      [&var, name](const std::string& text) {
        auto d = parse_duration(text);
        if (!d) throw CLI::ValidationError("--" + name, "not a duration (e.g. 500ms, 5s, 10m, 24h): " + text);
        var = *d;
      },
      help + " (duration, e.g. 500ms, 5s, 24h)" + (reloadable ? " [reloads on SIGHUP]" : ""));
  opt->envname(env_name(name))->default_str(format_duration(var));
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
  add(app, "database-url", database_url,
      "PostgreSQL connection: a libpq URI or key=value string; empty uses the PG* environment "
      "variables. Several hosts with target_session_attrs=read-write follow a failover");
}

void register_serve_options(CLI::App& app, Config& c) {
  app.set_config("--config", "", "Read settings from this file (INI/TOML: name = value)");
  register_database_option(app, c.database_url);
  add(app, "listen", c.listen, "Address to serve WebSocket and HTTP on (host:port; port 0: any)");
  add_flag(app, "reuse-port", c.reuse_port, "Set SO_REUSEPORT so several processes share the port");
  add(app, "reuse-port-group", c.reuse_port_group,
      "How many processes share the port (all given the same number); 2 or more steers each "
      "client address to one of them, as Socket.IO long-polling needs (0: the kernel's hash)");
  add(app, "admin-listen", c.admin_listen,
      "Also serve /healthz, /readyz and /metrics (only) on this host:port, for probes that must get "
      "through when the public port is full (empty: none)");

  add(app, "tls-cert-file", c.tls_cert_file,
      "Serve wss:// with this PEM certificate chain (TLS 1.2+; with --tls-key-file; empty: plain ws://)", true);
  add(app, "tls-key-file", c.tls_key_file, "PEM private key of --tls-cert-file", true);
  add(app, "jwt-algorithm", c.jwt_algorithm, "The one JWT algorithm accepted: HS256, RS256 or ES256", true);
  add(app, "jwt-secret-file", c.jwt_secret_file,
      "File holding the HS256 secret (or set MEMBERSHIP_NOTIFIER_JWT_SECRET)", true);
  add(app, "jwt-public-key-file", c.jwt_public_key_file, "PEM public key for RS256/ES256", true);
  add(app, "jwt-audience", c.jwt_audience, "Required `aud` (empty: not checked)", true);
  add(app, "jwt-issuer", c.jwt_issuer, "Required `iss` (empty: not checked)", true);
  add(app, "jwt-user-claim", c.jwt_user_claim, "Claim that holds the user id", true);
  add_flag(app, "jwt-require-exp", c.jwt_require_exp, "Refuse tokens without `exp`");
  add_duration(app, "jwt-leeway", c.jwt_leeway, "Clock skew allowed on exp and nbf", true);

  add(app, "max-connections", c.max_connections,
      "Connections served at once; must stay below the open-file limit");
  add(app, "max-message-bytes", c.max_message_bytes, "Largest message a client may send");
  add(app, "max-buffered-bytes", c.max_buffered_bytes,
      "Unsent bytes a client may have outstanding; over it for --slow-client-grace, or a further "
      "budget behind, it is closed (1013) and resumes from its offset");
  add_duration(app, "slow-client-grace", c.slow_client_grace,
               "How long a client may stay over --max-buffered-bytes before it is closed");
  add(app, "socket-send-buffer", c.socket_send_buffer,
      "Kernel send buffer per client socket (SO_SNDBUF), so a stalled client shows as unsent data");
  add_duration(app, "handshake-timeout", c.handshake_timeout, "Time allowed for the WebSocket handshake");
  add_duration(app, "ping-interval", c.ping_interval, "Keepalive ping interval");
  add_duration(app, "ping-timeout", c.ping_timeout, "A peer that does not answer a ping within this is dropped");
  add_duration(app, "auth-timeout", c.auth_timeout, "Socket.IO: time allowed to send CONNECT");
  add(app, "client-message-rate", c.client_message_rate,
      "Messages per second a client may send, control frames (ping, pong, close) and Socket.IO packets "
      "included, on average; a client over it (past --client-message-burst) is closed with 4029");
  add(app, "client-message-burst", c.client_message_burst,
      "Messages a client may send at once before --client-message-rate applies");
  add(app, "max-unauthenticated", c.max_unauthenticated,
      "Connections not yet authenticated held at once (HTTP handshake, Socket.IO before CONNECT); past "
      "it the oldest is cut. 0: a tenth of --max-connections, at least 16");
  add(app, "max-unauthenticated-per-address", c.max_unauthenticated_per_address,
      "Connections not yet authenticated held at once per remote address; past it that address's "
      "oldest is cut");
  add(app, "max-connections-per-user", c.max_connections_per_user,
      "Sockets one user may hold; more are refused (429 on /ws, connect_error on Socket.IO)");
  add(app, "allowed-origins", c.allowed_origins,
      "Comma-separated Origins allowed to open a socket: exact (https://app.example.com) or patterns "
      "(https://*.example.com, *.example.com); others get 403. Empty: any; requests without Origin "
      "(non-browser clients) are always allowed");

  add(app, "wake-mode", c.wake_mode_name,
      "How commits wake the sidecar: adaptive (NOTIFY only while this sidecar is idle), "
      "notify (always), poll (never; read every --poll-interval)");
  add_duration(app, "poll-interval", c.poll_interval,
               "Read the log at least this often (the only wake-up in poll mode)");
  add_duration(app, "busy-poll-interval", c.busy_poll_interval,
               "Adaptive mode: while changes come faster than --adaptive-notify-max-rate, read this often "
               "instead of being woken");
  add(app, "adaptive-notify-max-rate", c.adaptive_notify_max_rate,
      "Adaptive mode: below this many committing transactions with membership changes per second, each one "
      "wakes the sidecar (lowest latency; each holds a cluster-wide lock through its WAL flush); 0: only "
      "the first after an idle spell");
  add_duration(app, "retention", c.retention, "Keep log rows this long; clients can resume within it");
  add(app, "max-replay-rows", c.max_replay_rows,
      "A client further behind than this many log rows (anyone's) gets a snapshot instead of a replay, "
      "which would read them all; 0: no limit");
  add_duration(app, "prune-interval", c.prune_interval, "How often to prune the log");
  add(app, "durable-standbys", c.durable_standbys_list,
      "Comma-separated application_names of standbys that must have flushed a change before it is "
      "delivered (for failover to asynchronous standbys; needs pg_read_all_stats); empty: the primary's flush");
  add_duration(app, "db-timeout", c.db_timeout,
               "A database connect or query unanswered this long counts as a dead connection");
  add_duration(app, "reconnect-max", c.reconnect_max, "Longest pause between reconnect attempts");
  add(app, "log-level", c.log_level, "trace, debug, info, warn, error", true);
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

}  // namespace

std::vector<std::string> load(Config& c) {
  std::vector<std::string> errors;
  parse_address("listen", c.listen, c.listen_host, c.listen_port, errors);
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
  else errors.push_back("--wake-mode must be notify, adaptive or poll, got '" + c.wake_mode_name + "'");

  auto alg = parse_jwt_algorithm(c.jwt_algorithm);
  if (!alg) errors.push_back("--jwt-algorithm must be HS256, RS256 or ES256, got '" + c.jwt_algorithm + "'");
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
      if (c.jwt_secret.empty())
        if (const char* env = std::getenv("MEMBERSHIP_NOTIFIER_JWT_SECRET")) c.jwt_secret = env;
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
  if (errors.empty()) {
    try {
      JwtVerifier check(c.jwt);
    } catch (const std::exception& e) {
      errors.push_back(std::string("JWT key: ") + e.what());
    }
  }

  if (c.max_connections == 0) errors.push_back("--max-connections must be at least 1");
  if (c.reuse_port_group == 1 || c.reuse_port_group > 1024)
    errors.push_back("--reuse-port-group must be 0 (off) or 2-1024");
  if (c.reuse_port_group >= 2 && !c.reuse_port) errors.push_back("--reuse-port-group needs --reuse-port");
  if (!(c.client_message_rate > 0) || c.client_message_rate > 1e6)
    errors.push_back("--client-message-rate must be above 0 and at most 1000000");
  if (c.client_message_burst < 1 || c.client_message_burst > 1000000)
    errors.push_back("--client-message-burst must be between 1 and 1000000");
  if (c.max_unauthenticated == 0) c.max_unauthenticated = std::max<size_t>(16, c.max_connections / 10);
  if (c.max_unauthenticated_per_address == 0)
    errors.push_back("--max-unauthenticated-per-address must be at least 1");
  if (c.max_connections_per_user == 0) errors.push_back("--max-connections-per-user must be at least 1");
  if (c.auth_timeout.count() < 100) errors.push_back("--auth-timeout must be at least 100ms");
  c.allowed_origin_list.clear();
  {
    std::string item;
    std::istringstream list(c.allowed_origins);
    while (std::getline(list, item, ',')) {
      item.erase(0, item.find_first_not_of(" \t"));
      item.erase(item.find_last_not_of(" \t") + 1);
      if (item.empty()) continue;
      if (auto why = origin_pattern_error(item)) errors.push_back("--allowed-origins: " + *why);
      else c.allowed_origin_list.push_back(item);
    }
  }
  if (c.max_message_bytes < 64) errors.push_back("--max-message-bytes must be at least 64");
  if (c.max_buffered_bytes < 4096) errors.push_back("--max-buffered-bytes must be at least 4096");
  if (c.socket_send_buffer < 4096 || c.socket_send_buffer > (64u << 20))
    errors.push_back("--socket-send-buffer must be between 4096 and 64 MiB");
  if (c.ping_interval.count() <= 0 || c.ping_timeout.count() <= 0)
    errors.push_back("--ping-interval and --ping-timeout must be positive");
  c.durable_standbys.clear();
  for (size_t start = 0; start <= c.durable_standbys_list.size();) {
    auto comma = std::min(c.durable_standbys_list.find(',', start), c.durable_standbys_list.size());
    std::string name = c.durable_standbys_list.substr(start, comma - start);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    if (!name.empty()) c.durable_standbys.push_back(name);
    start = comma + 1;
  }
  if (c.poll_interval.count() < 1) errors.push_back("--poll-interval must be at least 1ms");
  if (!(c.adaptive_notify_max_rate >= 0) || c.adaptive_notify_max_rate > 1e6)
    errors.push_back("--adaptive-notify-max-rate must be between 0 and 1000000");
  if (c.busy_poll_interval.count() < 1 || c.busy_poll_interval > c.poll_interval)
    errors.push_back("--busy-poll-interval must be between 1ms and --poll-interval");
  if (c.db_timeout.count() < 100) errors.push_back("--db-timeout must be at least 100ms");
  static const char* levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (std::find(std::begin(levels), std::end(levels), c.log_level) == std::end(levels))
    errors.push_back("--log-level must be one of trace, debug, info, warn, error, critical, off");
  return errors;
}

}  // namespace mn
