// PgCluster: a throwaway PostgreSQL 15 cluster for tests, in its own /tmp directory.
//
// The server listens on a unix socket in that directory (so the fixed port number never
// collides with anything); with Options::tcp it also listens on 127.0.0.1 on a port the OS
// picked. As root (CI), initdb and postgres run as the `postgres` system user, because both
// refuse to run as root.
//
// Children die with the test process even when it crashes (PR_SET_PDEATHSIG), as long as
// the cluster was started from the main thread; otherwise the destructor is the only guard.
#pragma once

#include <sys/types.h>

#include <pqxx/pqxx>

#include <cstdint>
#include <string>
#include <vector>

namespace mn::test {

class PgCluster {
 public:
  struct Options {
    bool tcp = false;      // also listen on 127.0.0.1:tcp_port()
    bool durable = false;  // keep fsync, synchronous_commit and full_page_writes on
    std::vector<std::string> extra_settings;  // "name=value", passed as -c name=value
  };

  PgCluster();
  explicit PgCluster(Options options);
  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  // initdb into a fresh directory, then start the server and wait until it accepts
  // connections. Throws std::runtime_error with the tail of the log on failure.
  void start();
  // A hot standby of `primary` (running): pg_basebackup -R into a fresh directory, then start
  // and wait until it accepts connections.
  void start_standby_of(const PgCluster& primary);

  void stop();               // fast shutdown (SIGINT): clients are disconnected, clean
  void kill_immediate();     // immediate shutdown (SIGQUIT): like a crash, recovery on start
  void restart_immediate();  // kill_immediate() then start_again()
  void start_again();        // start the server on the existing data dir, same socket/port

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // "host=<dir> port=<port> user=postgres dbname=<db>": the unix socket.
  std::string conninfo(const std::string& dbname = "postgres") const;
  // "postgresql:///<db>?host=<dir>&port=<port>&user=postgres": the same, as a URI.
  std::string uri(const std::string& dbname = "postgres") const;
  // Over TCP to 127.0.0.1; only meaningful with Options::tcp.
  std::string tcp_conninfo(const std::string& dbname = "postgres") const;
  std::string tcp_uri(const std::string& dbname = "postgres") const;

  uint16_t port() const { return port_; }
  uint16_t tcp_port() const { return options_.tcp ? port_ : 0; }
  const std::string& dir() const { return dir_; }        // socket dir, log, data/
  std::string data_dir() const { return dir_ + "/data"; }
  std::string log_path() const { return dir_ + "/server.log"; }
  std::string log_tail(std::size_t max_bytes = 4000) const;

  // One short-lived connection each; errors surface as pqxx exceptions.
  void exec(const std::string& sql, const std::string& db = "postgres");
  pqxx::result query(const std::string& sql, const std::string& db = "postgres");
  void create_database(const std::string& name);

 private:
  void launch();
  void make_dir();
  void wait_accepting();
  void signal_and_wait(int sig);

  Options options_;
  std::string dir_;
  uint16_t port_ = 5432;
  pid_t pid_ = -1;
};

// The cluster of the whole test binary: started on first use, stopped at exit.
PgCluster& shared_cluster();

}  // namespace mn::test
