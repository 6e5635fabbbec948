#include "reuse_port_steering.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace mn {

std::vector<sock_filter> steering_program(bool ipv6, uint32_t group_size) {
  // Offsets from the network header (SKF_NET_OFF): IPv4's source address is at 12; IPv6's is
  // at 8 and 16 bytes long, of which the last word is taken (an IPv4-mapped address's IPv4
  // part, so both families map one client alike).
  const int32_t source_word = SKF_NET_OFF + (ipv6 ? 8 + 12 : 12);
  return {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(source_word)),
      BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, group_size),
      BPF_STMT(BPF_RET | BPF_A, 0),
  };
}

std::string attach_steering(int fd, bool ipv6, uint32_t group_size) {
  if (group_size < 2) return "a reuse-port group needs at least 2 processes";
  auto program = steering_program(ipv6, group_size);
  sock_fprog prog{};
  prog.len = static_cast<unsigned short>(program.size());
  prog.filter = program.data();
  if (::setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) != 0)
    return std::string("SO_ATTACH_REUSEPORT_CBPF: ") + std::strerror(errno);
  return {};
}

}  // namespace mn
