#include "support/tcp_proxy.h"

#include "support/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>

namespace mn::test {
namespace {

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

}  // namespace

TcpProxy::TcpProxy(uint16_t target_port) : target_(target_port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto addr = loopback(0);
  socklen_t len = sizeof addr;
  if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 16) != 0 || getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error(std::string("TcpProxy: ") + strerror(errno));
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  shutdown(listen_fd_, SHUT_RDWR);
  close(listen_fd_);
  acceptor_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Link* l : links_) {
      shutdown(l->client, SHUT_RDWR);
      shutdown(l->server, SHUT_RDWR);
    }
  }
  for (auto& t : threads_) t.join();
  for (Link* l : links_) {
    close(l->client);
    close(l->server);
    delete l;
  }
}

void TcpProxy::freeze() {
  frozen_ = true;
  std::lock_guard<std::mutex> lock(mu_);
  for (Link* l : links_) l->dead = true;
}

void TcpProxy::accept_loop() {
  while (!stop_) {
    const int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (stop_) return;
      continue;
    }
    const int s = connect_loopback(target_);
    if (s < 0) {
      close(c);
      continue;
    }
    ++accepted_;
    std::lock_guard<std::mutex> lock(mu_);
    auto* link = new Link{c, s};
    link->dead = frozen_.load();
    links_.push_back(link);
    threads_.emplace_back([this, link] { relay(link); });
  }
}

void TcpProxy::relay(Link* link) {
  char buf[16384];
  pollfd fds[2] = {{link->client, POLLIN, 0}, {link->server, POLLIN, 0}};
  while (!stop_) {
    if (link->dead) {  // frozen: read nothing, write nothing, keep both ends open
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (poll(fds, 2, 50) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (link->dead) break;
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        shutdown(fds[1 - i].fd, SHUT_WR);
        return;
      }
      for (ssize_t off = 0; off < n;) {
        const ssize_t w = write(fds[1 - i].fd, buf + off, static_cast<size_t>(n - off));
        if (w <= 0) return;
        off += w;
      }
    }
  }
}

}  // namespace mn::test
