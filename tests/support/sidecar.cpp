#include "support/sidecar.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "support/http.h"

extern char** environ;

namespace mn::test {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// fork/exec of the binary with stdout+stderr on out_fd. The child gets SIGKILL if the
// forking thread dies, so a crashed test leaves no sidecar behind (main thread only: the
// signal fires when the forking thread exits, not the process).
pid_t spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
            int out_fd) {
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq) merged.emplace(std::string(*e, static_cast<std::size_t>(eq - *e)), eq + 1);
  }
  for (const auto& [k, v] : env) merged[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : merged) env_strings.push_back(k + "=" + v);

  std::vector<std::string> all = {MN_BINARY_PATH};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv, envp;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const bool main_thread = gettid() == getpid();
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // Async-signal-safe calls only from here on: the test process has threads.
    if (dup2(null_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0) _exit(127);
    // Test sockets must not live on in the child: a client "closed" by a test would not be.
    if (close_range(3, ~0U, 0) != 0) {
      for (int fd = 3; fd < 1024; ++fd) close(fd);
    }
    if (main_thread) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
    }
    execve(argv[0], argv.data(), envp.data());
    const char* msg = "exec " MN_BINARY_PATH " failed\n";
    (void)!write(2, msg, std::strlen(msg));
    _exit(127);
  }
  const int fork_errno = errno;
  if (null_fd >= 0) close(null_fd);
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(fork_errno));
  return pid;
}

int shell_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string read_file(const std::string& path, std::size_t from = 0) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(from));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The port of the first complete "listening on 127.0.0.1:<port>" in text, or 0.
uint16_t find_port(const std::string& text) {
  static const std::string marker = "listening on 127.0.0.1:";
  for (auto pos = text.find(marker); pos != std::string::npos; pos = text.find(marker, pos + 1)) {
    std::size_t end = pos + marker.size();
    while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
    // Digits at the very end may be a line still being written.
    if (end == pos + marker.size() || end == text.size()) continue;
    const unsigned long port = std::stoul(text.substr(pos + marker.size(), end - pos - marker.size()));
    if (port > 0 && port < 65536) return static_cast<uint16_t>(port);
  }
  return 0;
}

}  // namespace

Sidecar::Sidecar() {
  char tmpl[] = "/tmp/mnsc.XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  dir_ = tmpl;
  log_path_ = dir_ + "/sidecar.log";
}

Sidecar::~Sidecar() {
  kill9();
  if (::testing::Test::HasFailure()) {
    std::string text = log();
    if (text.size() > 16000) text = "...\n" + text.substr(text.size() - 16000);
    std::cerr << "---- sidecar log (" << log_path_ << ") ----\n" << text << "---- end of sidecar log ----\n";
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void Sidecar::start(const std::vector<std::string>& args,
                    const std::map<std::string, std::string>& env) {
  if (running()) throw std::logic_error("Sidecar::start while the previous child runs");
  const int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + log_path_ + ": " + std::strerror(errno));
  run_offset_ = static_cast<std::size_t>(::lseek(fd, 0, SEEK_END));
  port_ = 0;
  exit_status_ = -1;
  try {
    pid_ = spawn(args, env, fd);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

uint16_t Sidecar::port(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (port_ == 0) {
    port_ = find_port(read_file(log_path_, run_offset_));
    if (port_ != 0) break;
    if (!running()) {
      throw std::runtime_error("sidecar exited (status " + std::to_string(exit_status_) +
                               ") before listening; log:\n" + log());
    }
    if (Clock::now() >= deadline) {
      throw std::runtime_error("sidecar did not log \"listening on 127.0.0.1:<port>\"; log:\n" + log());
    }
    std::this_thread::sleep_for(10ms);
  }
  return port_;
}

bool Sidecar::wait_ready(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  uint16_t p = 0;
  try {
    p = port(timeout);
  } catch (const std::runtime_error&) {
    return false;
  }
  // With --admin-listen, /readyz is served there only. Its line follows the public port's and
  // may not be in the log yet: look again on every try.
  const std::string admin = "admin endpoints (/healthz, /readyz, /metrics) on 127.0.0.1:";
  while (Clock::now() < deadline && running()) {
    if (const std::string l = log(); l.find(admin, run_offset_) != std::string::npos) {
      p = static_cast<uint16_t>(std::stoi(l.substr(l.find(admin, run_offset_) + admin.size())));
    }
    if (http_get(p, "/readyz", {}, 1s).status == 200) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

bool Sidecar::wait_for_log(const std::string& needle, std::chrono::milliseconds timeout,
                           std::size_t from) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (read_file(log_path_, from).find(needle) != std::string::npos) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

void Sidecar::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int Sidecar::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (running()) {
    if (Clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(5ms);
  }
  return exit_status_;
}

void Sidecar::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exit_status_ = shell_status(status);
  pid_ = -1;
}

bool Sidecar::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  exit_status_ = r == pid_ ? shell_status(status) : -1;
  pid_ = -1;
  return false;
}

std::string Sidecar::log() const { return read_file(log_path_); }

int run_binary(const std::vector<std::string>& args, std::string* output,
               const std::map<std::string, std::string>& env, std::chrono::milliseconds timeout) {
  char tmpl[] = "/tmp/mnrun.XXXXXX";
  const int fd = mkostemp(tmpl, O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(std::string("mkostemp: ") + std::strerror(errno));
  ::unlink(tmpl);  // the open descriptor is all that is needed; nothing to clean up after
  pid_t pid = -1;
  try {
    pid = spawn(args, env, fd);
  } catch (...) {
    ::close(fd);
    throw;
  }
  const auto deadline = Clock::now() + timeout;
  int status = 0;
  int result = -1;
  for (;;) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      result = shell_status(status);
      break;
    }
    if (Clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  if (output) {
    output->clear();
    char buf[16384];
    ssize_t n = 0;
    ::lseek(fd, 0, SEEK_SET);
    while ((n = ::read(fd, buf, sizeof buf)) > 0) output->append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return result;
}

}  // namespace mn::test
