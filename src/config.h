// Config: every setting of `membership-notifier`, declared once in config.cpp's table with its
// name, type, default and whether SIGHUP reloads it. Each is a flag (--name), an environment
// variable (MEMBERSHIP_NOTIFIER_NAME) and a key of the optional config file (--config, INI or
// TOML, `name = value`); a flag beats the environment, which beats the file.
#pragma once

#include "jwt_verifier.h"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mn {

enum class WakeMode { notify, adaptive, poll };
std::optional<WakeMode> parse_wake_mode(std::string_view);
const char* to_string(WakeMode);

// Where the membership table is and what its columns are called; used by `migrate up`.
struct Mapping {
  std::string table = "public.channel_members";
  std::string channel_column = "channel_id";
  std::string user_column = "user_id";
  std::string xtype_column;    // empty: no xType
  std::string channels_table;  // set: xType is channels_table.xtype_column by channels_key
  std::string channels_key = "id";
  // Which of these were given explicitly (a later `migrate up` keeps stored values otherwise).
  std::vector<std::string> given;
};

struct Config {
  // Connection
  std::string database_url;  // libpq URI or key=value; empty: PG* environment variables
  std::string listen = "127.0.0.1:8080";
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;
  bool reuse_port = true;
  // How many processes share the port (0: no steering). With N >= 2 each new connection goes
  // to the group's socket numbered (its source address mod N), so a long-polling client's
  // requests all reach the process that holds its session (reuse_port_steering.h).
  uint32_t reuse_port_group = 0;
  // A second address for /healthz, /readyz and /metrics only (empty: none). Probes there are
  // answered even while the public port's connection headroom is held by idle sockets.
  std::string admin_listen;
  std::string admin_host;
  uint16_t admin_port = 0;
  // TLS on the public port (both or neither); reloaded on SIGHUP for new connections.
  std::string tls_cert_file;
  std::string tls_key_file;

  // Authentication (reloadable)
  std::string jwt_algorithm = "HS256";
  std::string jwt_secret;  // only from MEMBERSHIP_NOTIFIER_JWT_SECRET, never a flag
  std::string jwt_secret_file;
  std::string jwt_public_key_file;
  std::string jwt_audience;
  std::string jwt_issuer;
  std::string jwt_user_claim = "sub";
  bool jwt_require_exp = true;
  std::chrono::milliseconds jwt_leeway{30000};
  JwtSettings jwt;  // filled by load(): key material read from the files

  // Limits
  size_t max_connections = 10000;
  size_t max_message_bytes = 4096;
  size_t max_buffered_bytes = 1 << 20;
  std::chrono::milliseconds slow_client_grace{2000};
  size_t socket_send_buffer = 64 * 1024;
  std::chrono::milliseconds handshake_timeout{5000};
  std::chrono::milliseconds ping_interval{25000};
  std::chrono::milliseconds ping_timeout{20000};
  std::chrono::milliseconds auth_timeout{5000};  // Socket.IO: time to send CONNECT
  // Per client, whatever it sends (data messages, pings, pongs, Socket.IO packets): a token
  // bucket of `client_message_burst` refilled at `client_message_rate` per second; a client
  // that empties it is closed (4029). Each message may make the server queue a reply (a
  // pong, an error frame), so this bounds what a client can make the server hold.
  double client_message_rate = 10;
  size_t client_message_burst = 50;
  // Connections not yet authenticated (in the HTTP handshake, or Socket.IO before CONNECT):
  // at most this many at once (0: a tenth of max_connections, at least 16), and this many per
  // remote address. A new one past either cap pushes out the oldest (of that address, or
  // overall), so idle ones can delay an authenticating client by no more than their own
  // turnover and never keep it out.
  size_t max_unauthenticated = 0;
  size_t max_unauthenticated_per_address = 16;
  size_t max_connections_per_user = 32;
  // Origin allow-list (comma-separated exact origins and *.domain patterns); empty: any.
  std::string allowed_origins;
  std::vector<std::string> allowed_origin_list;  // filled by load()

  // The log and how the sidecar is woken
  std::string wake_mode_name = "adaptive";
  WakeMode wake_mode = WakeMode::adaptive;
  std::chrono::milliseconds poll_interval{1000};
  // 20 ms, not less: on a 2-core server with 16 durable writers, reads every 5 ms cost the
  // application measurably more write throughput (bench part B, adaptive against poll 0.78x
  // per round at 5 ms, 0.96x at 20 ms); under such a load latency is this plus a read.
  std::chrono::milliseconds busy_poll_interval{20};
  // Adaptive mode: every commit wakes the sidecar while commits with membership changes come
  // slower than this (per second); above it, the sidecar polls at busy_poll_interval instead.
  double adaptive_notify_max_rate = 2000;
  std::chrono::milliseconds retention{24 * 3600 * 1000};
  // A client further behind than this many log rows gets a snapshot instead of a replay: its
  // replay would read them all (about 0.5 s a million here). 0: no limit.
  uint64_t max_replay_rows = 2000000;
  std::chrono::milliseconds prune_interval{60000};
  std::chrono::milliseconds db_timeout{5000};  // a query or connect unanswered this long: reconnect
  // Standbys (their application_name) that must have flushed a change before any client hears of
  // it: a failover to one of them then loses nothing a client was told. Empty: the primary's own
  // flush is enough.
  std::string durable_standbys_list;
  std::vector<std::string> durable_standbys;  // filled by load()
  std::chrono::milliseconds reconnect_max{10000};

  std::string log_level = "info";
  std::string config_file;
};

// "250ms", "5s", "10m", "24h", "1d"; a bare number is milliseconds.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view);
std::string format_duration(std::chrono::milliseconds);

// Registers every `serve` option on `app`, writing into `cfg`.
void register_serve_options(CLI::App& app, Config& cfg);
void register_mapping_options(CLI::App& app, Mapping& mapping);
void register_database_option(CLI::App& app, std::string& database_url);

// Checks values and reads key files after parsing. Returns one line per problem; empty: valid.
std::vector<std::string> load(Config& cfg);

}  // namespace mn
