#include "support/pg_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace mn::test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::string bin_dir() {
  const char* env = std::getenv("MN_PG_BINDIR");
  return env && *env ? env : "/usr/lib/postgresql/15/bin";
}

struct RunAs { bool drop = false; uid_t uid = 0; gid_t gid = 0; };

// initdb and postgres refuse to run as root, and CI runs the suite as root.
RunAs unprivileged_user() {
  if (geteuid() != 0) return {};
  for (const char* name : {"postgres", "nobody"}) {
    if (const passwd* pw = getpwnam(name)) return {true, pw->pw_uid, pw->pw_gid};
  }
  throw std::runtime_error("running as root and no 'postgres' user exists to run PostgreSQL as");
}

[[noreturn]] void child_fail(const char* what) {
  // Only async-signal-safe calls between fork and exec: the test process has threads.
  const char* err = strerror(errno);
  (void)!write(2, what, strlen(what));
  (void)!write(2, ": ", 2);
  (void)!write(2, err, strlen(err));
  (void)!write(2, "\n", 1);
  _exit(127);
}

// fork/exec with stdout+stderr appended to log_path. death_signal reaches the child if the
// forking thread dies first, so a crashed test leaves no server behind.
pid_t spawn(const std::vector<std::string>& args, const std::string& log_path,
            const std::string& cwd, const RunAs& run_as, int death_signal) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot open " + log_path + ": " + strerror(errno));
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  // Only the main thread lives as long as the process; PDEATHSIG fires on thread exit.
  const bool main_thread = gettid() == getpid();
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0) child_fail("dup2");
    // Without this a later-closed test socket would stay open in the server child.
    if (close_range(3, ~0U, 0) != 0) for (int fd = 3; fd < 1024; ++fd) close(fd);
    if (chdir(cwd.c_str()) != 0) child_fail("chdir");
    if (run_as.drop) {
      if (setgroups(1, &run_as.gid) != 0) child_fail("setgroups");
      if (setgid(run_as.gid) != 0) child_fail("setgid");
      if (setuid(run_as.uid) != 0) child_fail("setuid");
    }
    // After setuid: a credential change clears the parent-death signal.
    if (main_thread && death_signal != 0) {
      prctl(PR_SET_PDEATHSIG, death_signal);
      if (getppid() != parent) _exit(127);
    }
    execv(argv[0], argv.data());
    child_fail(argv[0]);
  }
  const int fork_errno = errno;
  close(log_fd);
  if (null_fd >= 0) close(null_fd);
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + strerror(fork_errno));
  return pid;
}

// Returns the exit status, or -1 if the child is still running at the deadline.
int wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return 0;  // not our child any more: nothing to wait for
    if (Clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(10ms);
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint16_t free_tcp_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  const bool ok = bind(fd, sa, sizeof addr) == 0 && getsockname(fd, sa, &len) == 0;
  close(fd);
  if (!ok) throw std::runtime_error("cannot find a free TCP port");
  return ntohs(addr.sin_port);
}

}  // namespace

PgCluster::PgCluster() : PgCluster(Options{}) {}
PgCluster::PgCluster(Options options) : options_(std::move(options)) {}

PgCluster::~PgCluster() {
  if (pid_ > 0) signal_and_wait(SIGINT);
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

void PgCluster::make_dir() {
  if (!dir_.empty()) throw std::logic_error("PgCluster::start called twice; use start_again");
  const RunAs run_as = unprivileged_user();
  // Short on purpose: the socket path "<dir>/.s.PGSQL.<port>" must fit in sun_path.
  char tmpl[] = "/tmp/mnpg.XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error(std::string("mkdtemp: ") + strerror(errno));
  dir_ = tmpl;
  if (run_as.drop && chown(dir_.c_str(), run_as.uid, run_as.gid) != 0) {
    throw std::runtime_error("chown " + dir_ + ": " + strerror(errno));
  }
}

void PgCluster::start_standby_of(const PgCluster& primary) {
  make_dir();
  const std::string log = dir_ + "/basebackup.log";
  const pid_t pid = spawn({bin_dir() + "/pg_basebackup", "-D", data_dir(), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast",
                           "-h", primary.dir(), "-p", std::to_string(primary.port()), "-U", "postgres"},
                          log, dir_, unprivileged_user(), SIGKILL);
  const int status = wait_for(pid, 120s);
  if (status == -1 && ::kill(pid, SIGKILL) == 0) waitpid(pid, nullptr, 0);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("pg_basebackup failed in " + dir_ + ":\n" + read_file(log));
  }
  launch();
  wait_accepting();
}

void PgCluster::start() {
  make_dir();
  const RunAs run_as = unprivileged_user();
  const std::string initdb_log = dir_ + "/initdb.log";
  const pid_t pid = spawn({bin_dir() + "/initdb", "-D", data_dir(), "-A", "trust", "-U", "postgres",
                           "-E", "UTF8", "--no-locale", "--no-sync", "--no-instructions"},
                          initdb_log, dir_, run_as, SIGKILL);
  const int status = wait_for(pid, 120s);
  if (status == -1 && ::kill(pid, SIGKILL) == 0) waitpid(pid, nullptr, 0);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("initdb failed in " + dir_ + ":\n" + read_file(initdb_log));
  }
  // The port is free only until someone else takes it, and parallel test binaries make many
  // connections from ephemeral ports: pick it at the last moment, and again if it was taken.
  for (int attempt = 1;; ++attempt) {
    if (options_.tcp) port_ = free_tcp_port();
    const std::size_t log_size = read_file(log_path()).size();
    try {
      launch();
      wait_accepting();
      return;
    } catch (const std::runtime_error&) {
      const bool taken = read_file(log_path()).find("could not bind", log_size) != std::string::npos;
      if (!options_.tcp || !taken || attempt == 5) throw;
    }
  }
}

void PgCluster::start_again() {
  if (dir_.empty()) throw std::logic_error("PgCluster::start_again before start");
  if (pid_ > 0) throw std::logic_error("PgCluster::start_again while the server runs");
  launch();
  wait_accepting();
}

void PgCluster::launch() {
  std::vector<std::string> args = {bin_dir() + "/postgres", "-D", data_dir(), "-k", dir_,
                                   "-p", std::to_string(port_), "-c", "max_connections=200"};
  args.insert(args.end(), {"-c", options_.tcp ? "listen_addresses=127.0.0.1" : "listen_addresses="});
  if (!options_.durable) {
    args.insert(args.end(), {"-c", "fsync=off", "-c", "synchronous_commit=off", "-c",
                             "full_page_writes=off"});
  }
  for (const auto& s : options_.extra_settings) args.insert(args.end(), {"-c", s});
  // SIGQUIT, not SIGKILL: the postmaster then takes its backends down with it.
  pid_ = spawn(args, log_path(), dir_, unprivileged_user(), SIGQUIT);
}

void PgCluster::wait_accepting() {
  const std::string ping = conninfo() + " connect_timeout=2";
  const auto deadline = Clock::now() + 30s;
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("postgres exited during startup; server.log:\n" + log_tail());
    }
    if (PQping(ping.c_str()) == PQPING_OK) return;
    std::this_thread::sleep_for(20ms);
  }
  signal_and_wait(SIGQUIT);
  throw std::runtime_error("postgres not accepting connections after 30 s; server.log:\n" +
                           log_tail());
}

void PgCluster::signal_and_wait(int sig) {
  if (pid_ <= 0) return;
  ::kill(pid_, sig);
  if (wait_for(pid_, 60s) == -1 && ::kill(pid_, SIGKILL) == 0) waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void PgCluster::stop() { signal_and_wait(SIGINT); }
void PgCluster::kill_immediate() { signal_and_wait(SIGQUIT); }

void PgCluster::restart_immediate() {
  kill_immediate();
  start_again();
}

std::string PgCluster::conninfo(const std::string& dbname) const {
  return "host=" + dir_ + " port=" + std::to_string(port_) + " user=postgres dbname=" + dbname;
}

std::string PgCluster::uri(const std::string& dbname) const {
  return "postgresql:///" + dbname + "?host=" + dir_ + "&port=" + std::to_string(port_) +
         "&user=postgres";
}

std::string PgCluster::tcp_conninfo(const std::string& dbname) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + dbname;
}

std::string PgCluster::tcp_uri(const std::string& dbname) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + dbname;
}

std::string PgCluster::log_tail(std::size_t max_bytes) const {
  const std::string s = read_file(log_path());
  return s.size() > max_bytes ? "..." + s.substr(s.size() - max_bytes) : s;
}

void PgCluster::exec(const std::string& sql, const std::string& db) { query(sql, db); }

pqxx::result PgCluster::query(const std::string& sql, const std::string& db) {
  pqxx::connection c{conninfo(db)};
  pqxx::nontransaction tx{c};
  return tx.exec(sql);
}

void PgCluster::create_database(const std::string& name) {
  pqxx::connection c{conninfo()};
  pqxx::nontransaction tx{c};
  tx.exec("CREATE DATABASE " + tx.quote_name(name));
}

namespace {

std::mutex g_shared_mutex;
std::unique_ptr<PgCluster> g_shared;  // destroyed at exit even if gtest never tears down
std::string g_shared_error;

// Stops the cluster before gtest's final report, while the process is still whole.
class SharedClusterEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    std::lock_guard<std::mutex> lock(g_shared_mutex);
    g_shared.reset();
  }
};

[[maybe_unused]] ::testing::Environment* const g_registered =
    ::testing::AddGlobalTestEnvironment(new SharedClusterEnvironment);

}  // namespace

PgCluster& shared_cluster() {
  std::lock_guard<std::mutex> lock(g_shared_mutex);
  // A failed start fails every later test at once instead of each waiting 30 s again.
  if (!g_shared_error.empty()) throw std::runtime_error(g_shared_error);
  if (!g_shared) {
    auto cluster = std::make_unique<PgCluster>();
    try {
      cluster->start();
    } catch (const std::exception& e) {
      g_shared_error = e.what();
      throw;
    }
    g_shared = std::move(cluster);
  }
  return *g_shared;
}

}  // namespace mn::test
