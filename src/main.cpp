// membership-notifier: pushes channel_members changes to each user's WebSocket connections.
//
//   membership-notifier serve [options]          run the sidecar
//   membership-notifier migrate up|down|status   install, remove or inspect the SQL side
//
// One io_context, one thread: every socket (WebSocket clients, the PostgreSQL connections)
// and every signal is an event of this loop. Start-up order matters and is spelled out in
// serve() below.
#include "config.h"
#include "event_log_reader.h"
#include "history.h"
#include "hub.h"
#include "janitor.h"
#include "metrics_text.h"
#include "migrate.h"
#include "ws_server.h"

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <sys/resource.h>

#include <iostream>
#include <memory>

namespace mn {
namespace {

// File descriptors needed beyond client sockets: PostgreSQL connections, the listening
// socket, logs, and the sockets between accept and refusal.
constexpr size_t kReservedFds = 128;

// Makes sure max_connections sockets can be open at once; below the fd limit websocketpp
// never meets EMFILE (on which its accept loop spins).
std::string check_fd_limit(const Config& cfg, bool raise) {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return "";
  if (raise && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    getrlimit(RLIMIT_NOFILE, &lim);
  }
  rlim_t need = cfg.max_connections + cfg.max_unauthenticated + SessionHost::kHandshakeHeadroom + kReservedFds;
  rlim_t have = raise ? lim.rlim_cur : lim.rlim_max;
  if (have < need)
    return "--max-connections " + std::to_string(cfg.max_connections) + " needs an open-file limit of at least " +
           std::to_string(need) + " (have " + std::to_string(have) + "; raise LimitNOFILE or lower the cap)";
  return "";
}

int serve(const Config& cfg_in, const std::function<std::optional<Config>()>& reparse) {
  Config cfg = cfg_in;
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));
  if (auto err = check_fd_limit(cfg, true); !err.empty()) {
    spdlog::critical("{}", err);
    return 2;
  }
  asio::io_context io(1);

  // Order matters: the server and hub exist before the reader can deliver anything; the
  // port is bound before the reader starts, so clients can connect (and be caught up by
  // snapshot) while the listener is still connecting; READY=1 only once the listener has
  // LISTENed and caught up.
  History history(io, cfg);
  Hub hub(history, cfg);
  WsServer server(io, cfg, hub);  // attaches itself to the hub as its transport
  server.set_jwt(std::make_shared<const JwtVerifier>(cfg.jwt));
  EventLogReader reader(io, cfg, [&hub](const Batch& b) { hub.on_batch(b); });
  Janitor janitor(io, cfg);
  server.set_ready_probe([&reader] { return reader.ready(); });
  server.set_started_probe([&reader] { return reader.position().has_value(); });
  server.set_metrics([&] { return metrics_text(server, hub, history, reader, janitor); });
  bool notified_ready = false;
  reader.on_ready([&notified_ready] {
    if (!std::exchange(notified_ready, true)) sd_notify(0, "READY=1\nSTATUS=serving");
  });

  try {
    server.listen();
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  reader.start();
  janitor.start();

  // Signals are events of the loop like any other.
  asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  std::function<void(const asio::error_code&, int)> on_signal = [&](const asio::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      sd_notify(0, "RELOADING=1");
      if (auto fresh = reparse()) {
        cfg.jwt = fresh->jwt;
        server.set_jwt(std::make_shared<const JwtVerifier>(fresh->jwt));
        if (!cfg.tls_cert_file.empty()) {
          try {
            server.reload_tls(fresh->tls_cert_file, fresh->tls_key_file);
            spdlog::info("reloaded the TLS certificate for new connections");
          } catch (const std::exception& e) {
            spdlog::error("TLS reload failed, keeping the running certificate: {}", e.what());
          }
        }
        spdlog::set_level(spdlog::level::from_str(fresh->log_level));
        spdlog::info("reloaded JWT settings and log level");
      } else {
        spdlog::error("reload failed; keeping the running configuration");
      }
      sd_notify(0, "READY=1");
      signals.async_wait(on_signal);
      return;
    }
    spdlog::info("{} received: closing connections and stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    sd_notify(0, "STOPPING=1");
    signals.async_wait([&io](const asio::error_code& e, int) {
      if (!e) io.stop();  // a second signal: stop now
    });
    // Clients are closed while the reader clears its wake-up mark; both, then stop.
    auto pending = std::make_shared<int>(2);
    auto finish = [&, pending] {
      if (--*pending > 0) return;
      reader.stop();
      history.stop();
      janitor.stop();
      io.stop();
    };
    reader.stand_down(std::chrono::seconds(1), finish);
    server.shutdown(1001, "server shutting down", std::chrono::seconds(5), finish);
  };
  signals.async_wait(on_signal);

  // Environmental failures are handled where they happen (reconnect, close a session); an
  // exception reaching this point is a bug, and the process says so and exits non-zero.
  try {
    io.run();
  } catch (const std::exception& e) {
    spdlog::critical("internal error: {}", e.what());
    return 70;
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace
}  // namespace mn

int main(int argc, char** argv) {
  using namespace mn;
  auto logger = spdlog::stderr_logger_st("membership-notifier");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");

  CLI::App app{"membership-notifier: pushes channel membership changes from PostgreSQL to WebSocket clients"};
  app.set_version_flag("--version", std::string("membership-notifier ") + MN_VERSION);
  app.require_subcommand(1);

  Config cfg;
  bool check_config = false;
  auto* serve_cmd = app.add_subcommand("serve", "Run the sidecar");
  register_serve_options(*serve_cmd, cfg);
  serve_cmd->add_flag("--check-config", check_config, "Validate the configuration and exit (0: valid)");

  auto* migrate_cmd = app.add_subcommand("migrate", "Install, remove or inspect the database side");
  migrate_cmd->require_subcommand(1);
  std::string migrate_url;
  Mapping mapping;
  auto* up = migrate_cmd->add_subcommand("up", "Create or update schema membership_notifier and the triggers");
  auto* down = migrate_cmd->add_subcommand("down", "Remove the triggers and schema membership_notifier");
  auto* status = migrate_cmd->add_subcommand("status", "Show what is installed");
  for (auto* c : {up, down, status}) register_database_option(*c, migrate_url);
  register_mapping_options(*up, mapping);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (migrate_cmd->parsed()) {
    if (up->parsed()) return migrate_up(migrate_url, mapping, std::cout);
    if (down->parsed()) return migrate_down(migrate_url, std::cout);
    return migrate_status(migrate_url, std::cout);
  }

  auto errors = load(cfg);
  for (const auto& e : errors) std::cerr << "config error: " << e << "\n";
  if (!errors.empty()) return 2;
  if (check_config) {
    if (auto err = check_fd_limit(cfg, false); !err.empty()) {
      std::cerr << "config error: " << err << "\n";
      return 2;
    }
    std::cout << "configuration ok: listen " << cfg.listen << ", jwt " << cfg.jwt_algorithm << ", wake-mode "
              << cfg.wake_mode_name << ", max-connections " << cfg.max_connections << "\n";
    return 0;
  }
  // SIGHUP re-reads flags, environment and config file; only reloadable settings are applied.
  auto reparse = [argc, argv]() -> std::optional<Config> {
    CLI::App again;
    Config fresh;
    auto* s = again.add_subcommand("serve");
    register_serve_options(*s, fresh);
    bool ignored = false;
    s->add_flag("--check-config", ignored);
    try {
      again.parse(argc, argv);
    } catch (const CLI::ParseError&) {
      return std::nullopt;
    }
    auto errs = load(fresh);
    for (const auto& e : errs) spdlog::error("config: {}", e);
    if (!errs.empty()) return std::nullopt;
    return fresh;
  };
  return serve(cfg, reparse);
}
