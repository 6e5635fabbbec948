// NodeClient: the stock socket.io-client (tests/node/sio_client.js) as a child process of a
// test. Options go to io() unchanged; each line it prints is one JSON report, which the test
// takes in order and asserts on. Header-only, for the *_pgtest binaries that include it.
//
// Needs `node` on PATH and `npm ci --prefix tests/node` done (see node_dir()). The child
// dies with the test (SIGKILL on the forking thread's exit, and in the destructor).
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace mn::test {

// Where the scripts and their node_modules are.
inline std::string node_dir() { return std::string(MN_SOURCE_DIR) + "/tests/node"; }

class NodeClient {
 public:
  using Json = nlohmann::json;
  using Clock = std::chrono::steady_clock;

  // `script`: sio_client.js (socket.io-client) or ws_client.js (ws), both in node_dir().
  NodeClient(const std::string& url, const Json& options, const std::string& script_name = "sio_client.js") {
    const std::string node = find_node(), script = node_dir() + "/" + script_name, opts = options.dump();
    std::vector<char*> argv = {const_cast<char*>(node.c_str()), const_cast<char*>(script.c_str()),
                               const_cast<char*>(url.c_str()), const_cast<char*>(opts.c_str()), nullptr};
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      // Async-signal-safe calls only: the test process has threads.
      if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0) _exit(127);
      // A socket the test closes must not live on in node.
      if (close_range(3, ~0U, 0) != 0) _exit(127);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    stdin_ = in[1];
    stdout_ = out[0];
    if (pid_ < 0) throw std::runtime_error("fork failed");
  }
  ~NodeClient() {
    close(stdin_);
    close(stdout_);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  NodeClient(const NodeClient&) = delete;
  NodeClient& operator=(const NodeClient&) = delete;

  void command(const std::string& line) {
    std::string l = line + "\n";
    ASSERT_EQ(write(stdin_, l.data(), l.size()), static_cast<ssize_t>(l.size()));
  }

  // The next report; nullopt once `timeout` passes with none.
  std::optional<Json> next(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        seen_.push_back(line);
        return Json::parse(line);
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{stdout_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      const ssize_t n = read(stdout_, buf, sizeof buf);
      if (n <= 0) return std::nullopt;
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

  // The next report of `type`; fails the test (and returns an empty object) otherwise.
  // 15 s by default: node loading socket.io-client and connecting took over 5 s now and then
  // while ctest -j2 ran the Postgres suites beside it on 2 cores (a "connect" missed so, never
  // when the suite ran alone). Only a failing test waits that long.
  Json expect(const std::string& type, std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    const auto deadline = Clock::now() + timeout;
    while (auto j = next(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()))) {
      // Pings, reconnection attempts, transports and upgrades, and position events (newer
      // offsets that come with pings) are reported, but only asserted on when asked for.
      if (j->at("type") != type && is_incidental(*j)) continue;
      if (type != "event" && is_position(*j)) continue;
      EXPECT_EQ(j->at("type"), type) << "reports so far:\n" << transcript();
      return *j;
    }
    ADD_FAILURE() << "no \"" << type << "\" report within " << timeout.count() << " ms; reports so far:\n"
                  << transcript();
    return Json::object();
  }

  // The next event, which must be `name`; returns its first argument (the data).
  Json expect_event(const std::string& name, std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    Json e = expect("event", timeout);
    while (name != "position" && !e.empty() && is_position(e)) e = expect("event", timeout);
    if (e.empty()) return e;
    EXPECT_EQ(e.at("name"), name) << transcript();
    // Every event carries its offset last, as a string, so the client can recover.
    EXPECT_EQ(e.at("args").size(), 2u);
    EXPECT_TRUE(e.at("args").back().is_string());
    return e.at("args").front();
  }

  // Everything reported until nothing has been for `quiet`, but position events, transports
  // and upgrades.
  std::vector<Json> drain(std::chrono::milliseconds quiet = std::chrono::milliseconds(300)) {
    std::vector<Json> all;
    while (auto j = next(quiet)) {
      const std::string t = j->value("type", "");
      if (!is_position(*j) && t != "transport" && t != "upgrade") all.push_back(*j);
    }
    return all;
  }

  static bool is_incidental(const Json& report) {
    const std::string t = report.value("type", "");
    return t == "ping" || t == "reconnect_attempt" || t == "transport" || t == "upgrade";
  }

  static bool is_position(const Json& report) {
    return report.value("type", "") == "event" && report.value("name", "") == "position";
  }

  // Everything reported within the next `period`.
  std::vector<Json> during(std::chrono::milliseconds period) {
    const auto deadline = Clock::now() + period;
    std::vector<Json> all;
    while (auto j = next(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())))
      all.push_back(*j);
    return all;
  }

  std::string transcript() const {
    std::string t;
    for (const auto& l : seen_) t += "  " + l + "\n";
    return t;
  }

 private:
  static std::string find_node() {
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/local/bin:/usr/bin";
    for (size_t start = 0; start <= dirs.size();) {
      size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      std::string candidate = dirs.substr(start, end - start) + "/node";
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
      start = end + 1;
    }
    throw std::runtime_error("node is not on PATH");
  }

  pid_t pid_ = -1;
  int stdin_ = -1, stdout_ = -1;
  std::string buffer_;
  std::vector<std::string> seen_;
};

}  // namespace mn::test
