// The reuse-port steering program on real loopback sockets (no server, no database): three
// listeners share a port as three processes would, and connections from several loopback
// source addresses (Linux routes all of 127/8 to lo) land where the program says.
#include "reuse_port_steering.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace mn {
namespace {

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

sockaddr_in address(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

// Listeners on one port, in the order they start listening (the group's order).
std::vector<Fd> listeners(size_t n, uint16_t& port) {
  std::vector<Fd> out;
  port = 0;
  for (size_t i = 0; i < n; ++i) {
    Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    int one = 1;
    ::setsockopt(s.fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    auto a = address("127.0.0.1", port);
    if (::bind(s.fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s.fd, 64) != 0)
      throw std::runtime_error("cannot listen");
    socklen_t len = sizeof a;
    ::getsockname(s.fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    out.push_back(std::move(s));
  }
  return out;
}

// Connects from `source` and returns the index of the listener that accepted it.
int landed(const std::vector<Fd>& group, const std::string& source, uint16_t port) {
  Fd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto from = address(source, 0), to = address("127.0.0.1", port);
  if (::bind(c.fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      ::connect(c.fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0)
    throw std::runtime_error("cannot connect from " + source);
  std::vector<pollfd> fds;
  for (const auto& l : group) fds.push_back({l.fd, POLLIN, 0});
  if (::poll(fds.data(), fds.size(), 2000) <= 0) return -1;
  for (size_t i = 0; i < fds.size(); ++i) {
    if (fds[i].revents & POLLIN) {
      Fd accepted(::accept4(group[i].fd, nullptr, nullptr, SOCK_CLOEXEC));
      return static_cast<int>(i);
    }
  }
  return -1;
}

uint32_t host_order(const std::string& ip) { return ntohl(address(ip, 0).sin_addr.s_addr); }

TEST(ReusePortSteeringTest, EveryConnectionFromOneAddressReachesTheListenerItsAddressModTheGroupSizeNames) {
  uint16_t port = 0;
  auto group = listeners(3, port);
  ASSERT_EQ(attach_steering(group[1].fd, false, 3), "");  // one attach serves the whole group
  std::set<int> used;
  for (int host = 2; host <= 9; ++host) {
    const std::string source = "127.0.0." + std::to_string(host);
    const int expected = static_cast<int>(host_order(source) % 3);
    for (int k = 0; k < 6; ++k) EXPECT_EQ(landed(group, source, port), expected) << source << " connection " << k;
    used.insert(expected);
  }
  EXPECT_EQ(used.size(), 3u) << "eight consecutive addresses spread over all three";
}

TEST(ReusePortSteeringTest, WithoutTheProgramOneAddresssConnectionsSpreadOverTheGroup) {
  // What the program is for: the kernel's own choice hashes the whole connection (the source
  // port too), so a client's successive requests reach different processes.
  uint16_t port = 0;
  auto group = listeners(3, port);
  std::map<int, int> count;
  for (int k = 0; k < 30; ++k) ++count[landed(group, "127.0.0.2", port)];
  EXPECT_EQ(count.count(-1), 0u);
  EXPECT_GE(count.size(), 2u);
}

TEST(ReusePortSteeringTest, AGroupOfFewerThanTwoIsRefused) {
  uint16_t port = 0;
  auto group = listeners(1, port);
  EXPECT_NE(attach_steering(group[0].fd, false, 1), "");
}

TEST(ReusePortSteeringTest, TheProgramLoadsTheSourceWordOfEitherFamilyAndReturnsItModN) {
  auto v4 = steering_program(false, 5);
  ASSERT_EQ(v4.size(), 3u);
  EXPECT_EQ(v4[0].code, BPF_LD | BPF_W | BPF_ABS);
  EXPECT_EQ(static_cast<int32_t>(v4[0].k), SKF_NET_OFF + 12);
  EXPECT_EQ(v4[1].code, BPF_ALU | BPF_MOD | BPF_K);
  EXPECT_EQ(v4[1].k, 5u);
  EXPECT_EQ(v4[2].code, BPF_RET | BPF_A);
  EXPECT_EQ(static_cast<int32_t>(steering_program(true, 5)[0].k), SKF_NET_OFF + 20);
}

}  // namespace
}  // namespace mn
