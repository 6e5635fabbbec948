// TcpProxy: relays TCP connections from 127.0.0.1:<port()> to a target port, until told to
// freeze: then every relayed connection goes silent in both directions while staying open,
// as when a network path or a host vanishes without a FIN or RST (a half-open connection).
// New connections made after thaw() are relayed again. Threads, blocking sockets: test code.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace mn::test {

class TcpProxy {
 public:
  explicit TcpProxy(uint16_t target_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  uint16_t port() const { return port_; }
  // Every connection open now stops relaying for good (but stays open).
  void freeze();
  // Connections accepted from now on are relayed.
  void thaw() { frozen_ = false; }
  int accepted() const { return accepted_; }

 private:
  struct Link {
    int client;
    int server;
    std::atomic<bool> dead{false};
  };
  void accept_loop();
  void relay(Link* link);

  uint16_t target_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<bool> frozen_{false};
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::vector<Link*> links_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace mn::test
