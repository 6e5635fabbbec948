#include "settings.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <sstream>

namespace mn {

using namespace std::chrono_literals;

const std::vector<Setting>& settings() {
  using C = Config;
  static const std::vector<Setting> rows = {
      // Connection and listeners
      {"database-url", &C::database_url, "", {}, false,
       "PostgreSQL connection: a libpq URI or key=value string; empty uses the PG* environment "
       "variables. Several hosts with target_session_attrs=read-write follow a failover"},
      {"listen", &C::listen, "127.0.0.1:8080", {}, false,
       "Address to serve WebSocket and HTTP on (host:port; port 0: any)"},
      {"reuse-port", &C::reuse_port, "true", {}, false, "Set SO_REUSEPORT so several processes share the port"},
      {"reuse-port-group", &C::reuse_port_group, "0", between(0, 1024), false,
       "How many processes share the port (each given the same number); 2 or more steers each "
       "client address to one of them, as Socket.IO long-polling needs (0: the kernel's hash)"},
      {"admin-listen", &C::admin_listen, "", {}, false,
       "Also serve /healthz, /readyz and /metrics (only) on this host:port, for probes that must get "
       "through when the public port is full (empty: none)"},
      {"tls-cert-file", &C::tls_cert_file, "", {}, true,
       "Serve wss:// with this PEM certificate chain (TLS 1.2+; with --tls-key-file; empty: plain ws://)"},
      {"tls-key-file", &C::tls_key_file, "", {}, true, "PEM private key of --tls-cert-file"},

      // Authentication
      {"jwt-algorithm", &C::jwt_algorithm, "HS256", one_of("HS256, RS256, ES256"), true,
       "The one JWT algorithm accepted"},
      {"jwt-secret", &C::jwt_secret, "", {}, true, "The HS256 secret itself (environment only, never a flag)",
       Source::environment},
      {"jwt-secret-file", &C::jwt_secret_file, "", {}, true,
       "File holding the HS256 secret (or set MEMBERSHIP_NOTIFIER_JWT_SECRET)"},
      {"jwt-public-key-file", &C::jwt_public_key_file, "", {}, true, "PEM public key for RS256/ES256"},
      {"jwt-audience", &C::jwt_audience, "", {}, true, "Required `aud` (empty: not checked)"},
      {"jwt-issuer", &C::jwt_issuer, "", {}, true, "Required `iss` (empty: not checked)"},
      {"jwt-user-claim", &C::jwt_user_claim, "sub", {}, true, "Claim that holds the user id"},
      {"jwt-require-exp", &C::jwt_require_exp, "true", {}, true, "Refuse tokens without `exp`"},
      {"jwt-leeway", &C::jwt_leeway, "30s", {}, true, "Clock skew allowed on exp and nbf"},

      // Limits
      {"max-connections", &C::max_connections, "10000", at_least(1), false,
       "Connections served at once; must stay below the open-file limit"},
      {"max-message-bytes", &C::max_message_bytes, "4096", at_least(64), false, "Largest message a client may send"},
      {"max-buffered-bytes", &C::max_buffered_bytes, "1048576", at_least(4096), false,
       "Unsent bytes a client may have outstanding; over it for --slow-client-grace, or a further "
       "budget behind, it is closed (1013) and resumes from its offset"},
      {"slow-client-grace", &C::slow_client_grace, "2s", {}, false,
       "How long a client may stay over --max-buffered-bytes before it is closed"},
      {"socket-send-buffer", &C::socket_send_buffer, "65536", between(4096, 64 << 20), false,
       "Kernel send buffer per client socket (SO_SNDBUF), so a stalled client shows as unsent data"},
      {"handshake-timeout", &C::handshake_timeout, "5s", {}, false, "Time allowed for the WebSocket handshake"},
      {"ping-interval", &C::ping_interval, "25s", at_least(1ms), false, "Keepalive ping interval"},
      {"ping-timeout", &C::ping_timeout, "20s", at_least(1ms), false,
       "A peer that does not answer a ping within this is dropped"},
      {"auth-timeout", &C::auth_timeout, "5s", at_least(100ms), false, "Socket.IO: time allowed to send CONNECT"},
      {"client-message-rate", &C::client_message_rate, "10", above(0, 1e6), false,
       "Messages per second a client may send, control frames (ping, pong, close) and Socket.IO packets "
       "included, on average; a client over it (past --client-message-burst) is closed with 4029"},
      {"client-message-burst", &C::client_message_burst, "50", between(1, 1e6), false,
       "Messages a client may send at once before --client-message-rate applies"},
      {"max-unauthenticated", &C::max_unauthenticated, "0", {}, false,
       "Connections not yet authenticated held at once (HTTP handshake, Socket.IO before CONNECT); past "
       "it the oldest is cut. 0: a tenth of --max-connections, at least 16"},
      {"max-unauthenticated-per-address", &C::max_unauthenticated_per_address, "16", at_least(1), false,
       "Connections not yet authenticated held at once per remote address; past it that address's "
       "oldest is cut"},
      {"max-connections-per-user", &C::max_connections_per_user, "32", at_least(1), false,
       "Sockets one user may hold; more are refused (429 on /ws, connect_error on Socket.IO)"},
      {"allowed-origins", &C::allowed_origins, "", {}, false,
       "Comma-separated Origins allowed to open a socket: exact (https://app.example.com) or patterns "
       "(https://*.example.com, *.example.com); others get 403. Empty: any; requests without Origin "
       "(non-browser clients) are always allowed"},

      // The log and how the sidecar is woken
      {"wake-mode", &C::wake_mode_name, "adaptive", one_of("notify, adaptive, poll"), false,
       "How commits wake the sidecar: adaptive (NOTIFY only while this sidecar is idle), "
       "notify (always), poll (never; read every --poll-interval)"},
      {"poll-interval", &C::poll_interval, "1s", at_least(1ms), false,
       "Read the log at least this often (the only wake-up in poll mode)"},
      // 20 ms, not less: reads every 5 ms cost a busy application measurably more write
      // throughput than reads every 20 ms (docs/wake-up.md); under such a load latency is this
      // plus a read.
      {"busy-poll-interval", &C::busy_poll_interval, "20ms", at_least(1ms), false,
       "Adaptive mode: while changes come faster than --adaptive-notify-max-rate, the wait after a "
       "read that found nothing (one that returned rows is followed 1 ms later); at most --poll-interval"},
      {"adaptive-notify-max-rate", &C::adaptive_notify_max_rate, "2000", between(0, 1e6), false,
       "Adaptive mode: below this many committing transactions with membership changes per second, each one "
       "wakes the sidecar (lowest latency; each holds a cluster-wide lock through its WAL flush); 0: only "
       "the first after an idle spell"},
      {"retention", &C::retention, "24h", {}, false, "Keep log rows this long; clients can resume within it"},
      // A replay reads every row it is behind (about half a second per million rows).
      {"max-replay-rows", &C::max_replay_rows, "2000000", {}, false,
       "A client further behind than this many log rows (anyone's) gets a snapshot instead of a replay, "
       "which would read them all; 0: no limit"},
      {"prune-interval", &C::prune_interval, "1m", {}, false, "How often to prune the log"},
      {"durable-standbys", &C::durable_standbys_list, "", {}, false,
       "Comma-separated application_names of standbys that must have flushed a change before it is "
       "delivered (for failover to asynchronous standbys; needs pg_read_all_stats); empty: the primary's flush"},
      {"db-timeout", &C::db_timeout, "5s", at_least(100ms), false,
       "A database connect or query unanswered this long counts as a dead connection"},
      {"reconnect-max", &C::reconnect_max, "10s", {}, false, "Longest pause between reconnect attempts"},
      {"log-level", &C::log_level, "info", one_of("trace, debug, info, warn, error, critical, off"), true,
       "How much to log"},
  };
  return rows;
}

const Setting* find_setting(std::string_view name) {
  for (const auto& row : settings())
    if (name == row.name) return &row;
  return nullptr;
}

Config::Config() {
  for (const auto& row : settings()) set_value(row, row.default_value, *this);
  if (auto mode = parse_wake_mode(wake_mode_name)) wake_mode = *mode;
}

std::string env_name(std::string_view name) {
  std::string out = "MEMBERSHIP_NOTIFIER_";
  for (char c : name) out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

namespace {

template <typename T>
bool parse_number(const std::string& text, T& out) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return false;
  out = value;
  return true;
}

std::string number_text(double v) {
  if (std::fabs(v) < 1e15 && std::trunc(v) == v) return std::to_string(static_cast<long long>(v));
  std::ostringstream out;
  out << v;
  return out.str();
}

// Whole mebibytes read as such (64 MiB), other numbers as they are.
std::string bound_number_text(double v) {
  if (v >= (1 << 20) && std::fmod(v, 1 << 20) == 0) return std::to_string(static_cast<long long>(v) >> 20) + " MiB";
  return number_text(v);
}

std::vector<std::string> choice_list(const char* choices) {
  std::vector<std::string> out;
  std::istringstream in(choices);
  for (std::string item; std::getline(in, item, ',');) {
    item.erase(0, item.find_first_not_of(' '));
    out.push_back(item);
  }
  return out;
}

}  // namespace

bool set_value(const Setting& row, const std::string& text, Config& cfg) {
  return std::visit(
      [&](auto field) -> bool {
        auto& var = cfg.*field;
        using T = std::decay_t<decltype(var)>;
        if constexpr (std::is_same_v<T, std::string>) {
          var = text;
          return true;
        } else if constexpr (std::is_same_v<T, bool>) {
          if (text != "true" && text != "false") return false;
          var = text == "true";
          return true;
        } else if constexpr (std::is_same_v<T, std::chrono::milliseconds>) {
          auto d = parse_duration(text);
          if (d) var = *d;
          return d.has_value();
        } else {
          return parse_number(text, var);
        }
      },
      row.slot);
}

std::string value_text(const Setting& row, const Config& cfg) {
  return std::visit(
      [&](auto field) -> std::string {
        const auto& var = cfg.*field;
        using T = std::decay_t<decltype(var)>;
        if constexpr (std::is_same_v<T, std::string>) return var;
        else if constexpr (std::is_same_v<T, bool>) return var ? "true" : "false";
        else if constexpr (std::is_same_v<T, std::chrono::milliseconds>) return format_duration(var);
        else if constexpr (std::is_same_v<T, double>) return number_text(var);
        else return std::to_string(var);
      },
      row.slot);
}

std::string bound_text(double v, const Bounds& b) {
  return b.is_duration ? format_duration(std::chrono::milliseconds(static_cast<long long>(v))) : bound_number_text(v);
}

std::string describe_bounds(const Bounds& b) {
  if (b.choices) {
    auto list = choice_list(b.choices);
    std::string out = "one of ";
    for (size_t i = 0; i < list.size(); ++i) out += (i ? ", " : "") + list[i];
    return out;
  }
  const bool has_lo = std::isfinite(b.lo), has_hi = std::isfinite(b.hi);
  if (b.lo_excluded)
    return "above " + bound_text(b.lo, b) + (has_hi ? " and at most " + bound_text(b.hi, b) : "");
  if (has_lo && has_hi) return "between " + bound_text(b.lo, b) + " and " + bound_text(b.hi, b);
  if (has_lo) return "at least " + bound_text(b.lo, b);
  if (has_hi) return "at most " + bound_text(b.hi, b);
  return "";
}

std::optional<std::string> bounds_error(const Setting& row, const Config& cfg) {
  const Bounds& b = row.bounds;
  const std::string flag = std::string("--") + row.name;
  if (b.choices) {
    const std::string value = value_text(row, cfg);
    auto list = choice_list(b.choices);
    if (std::find(list.begin(), list.end(), value) != list.end()) return std::nullopt;
    return flag + " must be " + describe_bounds(b) + ", got '" + value + "'";
  }
  double v = 0;
  bool numeric = std::visit(
      [&](auto field) {
        using T = std::decay_t<decltype(cfg.*field)>;
        if constexpr (std::is_same_v<T, std::chrono::milliseconds>) v = static_cast<double>((cfg.*field).count());
        else if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) v = static_cast<double>(cfg.*field);
        else return false;
        return true;
      },
      row.slot);
  if (!numeric) return std::nullopt;
  // Written so that NaN fails every test.
  const bool low_ok = b.lo_excluded ? v > b.lo : v >= b.lo;
  if (low_ok && v <= b.hi) return std::nullopt;
  return flag + " must be " + describe_bounds(b);
}

}  // namespace mn
