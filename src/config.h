// Config: every setting of `membership-notifier serve`, declared once in the settings table
// (settings.h) with its name, default, bounds, whether SIGHUP reloads it and its help. Each is
// a flag (--name), an environment variable (MEMBERSHIP_NOTIFIER_NAME) and a key of the
// optional config file (--config, INI or TOML, `name = value`); a flag beats the environment,
// which beats the file.
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

// Every setting's value. The defaults and bounds are not here but in the settings table
// (settings.cpp), which Config() applies; the fields marked "filled by load()" are derived
// from the settings by load().
struct Config {
  Config();  // every setting at its default

  // Connection
  std::string database_url;  // libpq URI or key=value; empty: PG* environment variables
  std::string listen;
  std::string listen_host;  // filled by load()
  uint16_t listen_port = 0;  // filled by load()
  bool reuse_port{};
  // How many processes share the port (0: no steering). With N >= 2 each new connection goes
  // to the group's socket numbered (its source address mod N), so a long-polling client's
  // requests all reach the process that holds its session (reuse_port_steering.h).
  std::size_t reuse_port_group{};
  // A second address for /healthz, /readyz and /metrics only (empty: none). Probes there are
  // answered even while the public port's connection headroom is held by idle sockets.
  std::string admin_listen;
  std::string admin_host;    // filled by load()
  uint16_t admin_port = 0;   // filled by load()
  // TLS on the public port (both or neither); reloaded on SIGHUP for new connections.
  std::string tls_cert_file;
  std::string tls_key_file;

  // Authentication (reloadable)
  std::string jwt_algorithm;
  std::string jwt_secret;  // only from MEMBERSHIP_NOTIFIER_JWT_SECRET, never a flag
  std::string jwt_secret_file;
  std::string jwt_public_key_file;
  std::string jwt_audience;
  std::string jwt_issuer;
  std::string jwt_user_claim;
  bool jwt_require_exp{};
  std::chrono::milliseconds jwt_leeway;
  JwtSettings jwt;  // filled by load(): key material read from the files

  // Limits
  size_t max_connections{};
  size_t max_message_bytes{};
  size_t max_buffered_bytes{};
  std::chrono::milliseconds slow_client_grace;
  size_t socket_send_buffer{};
  std::chrono::milliseconds handshake_timeout;
  std::chrono::milliseconds ping_interval;
  std::chrono::milliseconds ping_timeout;
  std::chrono::milliseconds auth_timeout;  // Socket.IO: time to send CONNECT
  // Per client, whatever it sends (data messages, pings, pongs, Socket.IO packets): a token
  // bucket of `client_message_burst` refilled at `client_message_rate` per second; a client
  // that empties it is closed (4029). Each message may make the server queue a reply (a
  // pong, an error frame), so this bounds what a client can make the server hold.
  double client_message_rate{};
  size_t client_message_burst{};
  // Connections not yet authenticated (in the HTTP handshake, or Socket.IO before CONNECT):
  // at most this many at once (0: a tenth of max_connections, at least 16; load() puts the
  // number here), and this many per remote address. A new one past either cap pushes out the
  // oldest (of that address, or overall), so idle ones can delay an authenticating client by
  // no more than their own turnover and never keep it out.
  size_t max_unauthenticated{};
  size_t max_unauthenticated_per_address{};
  size_t max_connections_per_user{};
  // Origin allow-list (comma-separated exact origins and *.domain patterns); empty: any.
  std::string allowed_origins;
  std::vector<std::string> allowed_origin_list;  // filled by load()

  // The log and how the sidecar is woken
  std::string wake_mode_name;
  WakeMode wake_mode{};  // wake_mode_name parsed (by Config() and load())
  std::chrono::milliseconds poll_interval;
  // Adaptive mode: while commits with membership changes come faster than
  // adaptive_notify_max_rate per second, the sidecar reads every busy_poll_interval instead of
  // being woken by each.
  std::chrono::milliseconds busy_poll_interval;
  double adaptive_notify_max_rate{};
  std::chrono::milliseconds retention;
  // A client further behind than this many log rows gets a snapshot instead of a replay.
  // 0: no limit.
  uint64_t max_replay_rows{};
  std::chrono::milliseconds prune_interval;
  std::chrono::milliseconds db_timeout;  // a query or connect unanswered this long: reconnect
  // Standbys (their application_name) that must have flushed a change before any client hears of
  // it: a failover to one of them then loses nothing a client was told. Empty: the primary's own
  // flush is enough.
  std::string durable_standbys_list;
  std::vector<std::string> durable_standbys;  // filled by load()
  std::chrono::milliseconds reconnect_max;

  std::string log_level;
};

// "250ms", "5s", "10m", "24h", "1d"; a bare number is milliseconds.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view);
std::string format_duration(std::chrono::milliseconds);

// Registers every `serve` option of the settings table on `app`, writing into `cfg`.
void register_serve_options(CLI::App& app, Config& cfg);
void register_mapping_options(CLI::App& app, Mapping& mapping);
void register_database_option(CLI::App& app, std::string& database_url);

// Checks values against the settings table's bounds and the rules between settings, reads key
// files and fills the derived fields. Returns one line per problem; empty: valid.
std::vector<std::string> load(Config& cfg);

}  // namespace mn
