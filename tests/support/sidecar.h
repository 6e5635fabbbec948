// Sidecar: the real membership-notifier binary (MN_BINARY_PATH) as a child process, its
// stdout and stderr in one log file that tests read to learn the bound port.
//
// If the test that owns it has failed, the destructor prints the log's tail: the sidecar's
// side of the story is usually the part that explains the failure.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mn::test {

class Sidecar {
 public:
  Sidecar();
  ~Sidecar();  // SIGKILL if still running, reap, remove the log directory
  Sidecar(const Sidecar&) = delete;
  Sidecar& operator=(const Sidecar&) = delete;

  // args exclude argv[0]; env entries are added to (or replace in) the current environment.
  // May be called again once the previous child has exited; the log is appended to.
  void start(const std::vector<std::string>& args,
             const std::map<std::string, std::string>& env = {});

  // The port from the first "listening on 127.0.0.1:<port>" line of this run, waiting up to
  // `timeout` for it. Throws std::runtime_error, with the log, on timeout or early exit.
  uint16_t port(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Polls GET /readyz until 200; false on timeout or if the child exits.
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // True once `needle` occurs in the log after `from` (a byte offset, e.g. log().size()).
  bool wait_for_log(const std::string& needle,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10),
                    std::size_t from = 0);

  void signal(int sig);
  // Exit status as a shell shows it (code, or 128+signal); -1 on timeout.
  int wait_exit(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  void kill9();
  bool running();
  pid_t pid() const { return pid_; }

  std::string log() const;  // everything the child has written so far (all runs)
  const std::string& log_path() const { return log_path_; }

 private:
  std::string dir_;
  std::string log_path_;
  std::size_t run_offset_ = 0;  // where the current run's output starts in the log
  pid_t pid_ = -1;
  int exit_status_ = -1;
  uint16_t port_ = 0;
};

// Runs the binary to completion with stdout+stderr captured into *output (if given).
// Returns the exit status as a shell shows it; -1 if it ran past `timeout` (then killed).
int run_binary(const std::vector<std::string>& args, std::string* output,
               const std::map<std::string, std::string>& env = {},
               std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace mn::test
