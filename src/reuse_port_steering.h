// Steering by source address among processes that share a port (--reuse-port with
// --reuse-port-group N): a classic BPF program on the SO_REUSEPORT group picks the listening
// socket for each new connection as (the client's IPv4 address, or the last 32 bits of its
// IPv6 address) mod N. Every connection from one address then reaches the same process, which
// long-polling needs: each of a client's requests may come on a new TCP connection, and only
// the process that holds its session can answer it.
//
// The kernel numbers a group's sockets in the order they began listening, and when one
// leaves, the last one takes its place; a restarted process joins at the end. So the mapping
// of addresses to processes holds while the group is stable and changes when a process
// restarts: polling sessions whose clients move get "Session ID unknown", and their clients
// reconnect and resume from their offsets. While fewer than N sockets are in the group, an
// index past the end makes the kernel fall back to its usual hash of the connection.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <linux/filter.h>

namespace mn {

// The program: load the source address word, mod `group_size`, return it as the index.
std::vector<sock_filter> steering_program(bool ipv6, uint32_t group_size);

// Attaches the program to `fd`, a listening socket with SO_REUSEPORT (the program then serves
// its whole group). Returns an error text, or empty on success.
std::string attach_steering(int fd, bool ipv6, uint32_t group_size);

}  // namespace mn
