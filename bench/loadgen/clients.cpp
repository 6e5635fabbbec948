#include "clients.h"

#include "support/jwt_mint.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>

namespace bench {
namespace {

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// waiting: dropped, a reconnect due (reconnect_ms > 0).
enum class State : uint8_t { idle, connecting, upgrading, opening, ready, waiting, closed };

constexpr size_t kMaxFrame = 16 << 20;
constexpr int kMaxLoggedLosses = 5;
constexpr int64_t kMaxRetryDelayNs = 5'000'000'000;

// Finds `"key"` then the string value after its colon; empty when absent.
std::string string_field(const std::string& text, const char* key, size_t from = 0) {
  std::string needle = std::string("\"") + key + "\"";
  size_t p = text.find(needle, from);
  if (p == std::string::npos) return {};
  p += needle.size();
  while (p < text.size() && (text[p] == ' ' || text[p] == ':')) ++p;
  if (p >= text.size() || text[p] != '"') return {};
  size_t end = text.find('"', p + 1);
  return end == std::string::npos ? std::string() : text.substr(p + 1, end - p - 1);
}

}  // namespace

struct Clients::Conn {
  int fd = -1;
  std::atomic<State> state{State::idle};
  bool want_out = false;
  int64_t started_ns = 0;
  bool reconnecting = false;  // this handshake is a reconnect, not the first connect
  int attempts = 0;           // failed reconnect attempts in a row
  std::string offset;         // the last offset received (reconnect_ms > 0)
  std::string in;
  std::string out;
  std::string fragment;
};

Clients::Clients(ClientOptions o) : opts_(std::move(o)) {
  for (int u = 0; u < opts_.users; ++u)
    tokens_.push_back(mn::test::mint_hs256(
        opts_.secret, mn::test::claims_for(opts_.user_prefix + std::to_string(u), std::chrono::hours(7 * 24))));
  for (int i = 0; i < opts_.sockets; ++i) conns_.push_back(std::make_unique<Conn>());
  others_.resize(opts_.sockets);
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  thread_ = std::thread([this] { loop(); });
}

Clients::~Clients() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  for (auto& c : conns_) {
    if (c->fd < 0) continue;
    linger l{1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(c->fd);
  }
  if (epfd_ >= 0) ::close(epfd_);
}

ConnectSummary Clients::connect_all() {
  auto start = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(conn_mu_);
  opening_ = true;  // the loop opens sockets from here on
  conn_cv_.wait(lock, [this] { return ok_ + failed_ >= opts_.sockets; });
  ConnectSummary s;
  s.ok = ok_;
  s.failed = failed_;
  s.first_error = first_error_;
  s.secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

void Clients::record(const std::string& tag) {
  std::lock_guard<std::mutex> lock(rec_mu_);
  tag_ = "P" + tag + "-";
  receipts_.clear();
  receipts_.reserve(1 << 20);
}

std::vector<Receipt> Clients::take() {
  std::lock_guard<std::mutex> lock(rec_mu_);
  tag_.clear();
  return std::move(receipts_);
}

size_t Clients::recorded() const {
  std::lock_guard<std::mutex> lock(rec_mu_);
  return receipts_.size();
}

std::vector<int> Clients::ready_per_user() const {
  std::vector<int> n(opts_.users, 0);
  for (int i = 0; i < opts_.sockets; ++i)
    if (conns_[i]->state.load() == State::ready) ++n[i % opts_.users];
  return n;
}

int Clients::ready() const {
  int n = 0;
  for (int i = 0; i < opts_.sockets; ++i) n += conns_[i]->state.load() == State::ready;
  return n;
}

std::vector<size_t> Clients::other_joined() const {
  std::lock_guard<std::mutex> lock(rec_mu_);
  std::vector<size_t> n;
  for (const auto& s : others_) n.push_back(s.size());
  return n;
}

ClientCounters Clients::counters(bool reset_stall) {
  std::lock_guard<std::mutex> lock(rec_mu_);
  ClientCounters c = counters_;
  c.frames = frames_.load();
  c.max_stall_ns = max_stall_ns_.load();
  if (reset_stall) max_stall_ns_ = 0;
  return c;
}

void Clients::loop() {
  tid_ = static_cast<int>(syscall(SYS_gettid));
  std::vector<epoll_event> events(1024);
  int64_t last_sweep = now_ns();
  while (!stop_) {
    int first = 0, count = 0;
    {
      std::lock_guard<std::mutex> lock(conn_mu_);
      if (opening_) {
        int pending = next_to_open_ - ok_ - failed_;
        count = std::max(0, std::min(opts_.max_pending - pending, opts_.sockets - next_to_open_));
        first = next_to_open_;
        next_to_open_ += count;
      }
    }
    for (int k = first; k < first + count; ++k) start_connect(k);
    if (!retries_.empty()) run_due_retries(now_ns());
    int n = epoll_wait(epfd_, events.data(), static_cast<int>(events.size()), 20);
    int64_t woke = now_ns();
    for (int k = 0; k < n; ++k) on_event(static_cast<int>(events[k].data.u32), events[k].events);
    int64_t done = now_ns();
    if (done - woke > max_stall_ns_.load(std::memory_order_relaxed)) max_stall_ns_ = done - woke;
    if (done - last_sweep > 500'000'000) {
      last_sweep = done;
      int limit;
      {
        std::lock_guard<std::mutex> lock(conn_mu_);
        limit = next_to_open_;
      }
      for (int i = 0; i < limit; ++i) {
        Conn& c = *conns_[i];
        State s = c.state.load();
        if ((s == State::connecting || s == State::upgrading || s == State::opening) &&
            done - c.started_ns > int64_t{opts_.connect_timeout_s} * 1000000000)
          fail(c, i, "handshake timed out");
      }
    }
  }
}

void Clients::run_due_retries(int64_t now) {
  size_t kept = 0;
  std::vector<int> due;
  for (const auto& r : retries_) {
    if (r.first <= now) due.push_back(r.second);
    else retries_[kept++] = r;
  }
  retries_.resize(kept);
  for (int i : due) start_connect(i);
}

void Clients::schedule_retry(Conn& c, int i) {
  // The first try after reconnect_ms plus a jitter of up to as much again (spread by socket,
  // so a dropped process's clients do not all come back in one instant); then doubling delays.
  int64_t base = int64_t{opts_.reconnect_ms} * 1'000'000;
  int64_t delay = base + (base * ((static_cast<int64_t>(i) * 7919) % 1000)) / 1000;
  for (int k = 0; k < c.attempts && delay < kMaxRetryDelayNs; ++k) delay *= 2;
  c.state = State::waiting;
  c.reconnecting = true;
  retries_.emplace_back(now_ns() + std::min(delay, kMaxRetryDelayNs), i);
}

void Clients::start_connect(int i) {
  Conn& c = *conns_[i];
  c.started_ns = now_ns();
  c.state = State::connecting;
  c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) return fail(c, i, std::string("socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!opts_.sources.empty()) {
    // Bind only the address; the port is chosen at connect, per destination.
    setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    if (inet_pton(AF_INET, opts_.sources[static_cast<size_t>(i) % opts_.sources.size()].c_str(), &src.sin_addr) != 1)
      return fail(c, i, "not an IPv4 source address: " + opts_.sources[static_cast<size_t>(i) % opts_.sources.size()]);
    if (::bind(c.fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0)
      return fail(c, i, std::string("bind: ") + std::strerror(errno));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(opts_.port);
  inet_pton(AF_INET, opts_.host.c_str(), &addr.sin_addr);
  if (::connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS)
    return fail(c, i, std::string("connect: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u32 = static_cast<uint32_t>(i);
  c.want_out = true;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev) != 0) return fail(c, i, std::string("epoll_ctl: ") + std::strerror(errno));
}

void Clients::on_event(int i, uint32_t events) {
  Conn& c = *conns_[i];
  State s = c.state.load();
  if (s == State::closed || c.fd < 0) return;
  if (s == State::connecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return fail(c, i, std::string("connect: ") + std::strerror(err));
    const std::string& token = tokens_[i % opts_.users];
    std::string path = opts_.protocol == Protocol::plain ? "/ws?access_token=" + token
                                                         : std::string("/socket.io/?EIO=4&transport=websocket");
    if (opts_.protocol == Protocol::plain && !c.offset.empty()) path += "&offset=" + c.offset;
    c.out = "GET " + path + " HTTP/1.1\r\nHost: " + opts_.host + ":" + std::to_string(opts_.port) +
            "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    c.state = State::upgrading;
    return flush(c, i);
  }
  if (events & EPOLLOUT) flush(c, i);
  if (c.state.load() == State::closed) return;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(c, i);
}

void Clients::flush(Conn& c, int i) {
  while (!c.out.empty()) {
    ssize_t w = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (w > 0) {
      c.out.erase(0, static_cast<size_t>(w));
      continue;
    }
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) break;
    return fail(c, i, std::string("send: ") + std::strerror(errno));
  }
  bool want = !c.out.empty();
  if (want == c.want_out) return;
  epoll_event ev{};
  ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
  ev.data.u32 = static_cast<uint32_t>(i);
  epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev);
  c.want_out = want;
}

void Clients::on_readable(Conn& c, int i) {
  char buf[65536];
  for (;;) {
    ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
    if (r > 0) {
      int64_t t = now_ns();  // the data was here by now: the receipt time of all it holds
      c.in.append(buf, static_cast<size_t>(r));
      if (c.state.load() == State::upgrading) {
        size_t end = c.in.find("\r\n\r\n");
        if (end == std::string::npos) {
          if (c.in.size() > 16384) return fail(c, i, "oversized HTTP response");
          continue;
        }
        if (c.in.compare(0, 12, "HTTP/1.1 101") != 0)
          return fail(c, i, "upgrade refused: " + c.in.substr(0, std::min<size_t>(c.in.size(), 300)));
        c.in.erase(0, end + 4);
        c.state = State::opening;
      }
      handle_frames(c, i, t);
      if (c.state.load() == State::closed) return;
      if (static_cast<size_t>(r) < sizeof buf) return;
      continue;
    }
    if (r == 0) return fail(c, i, "connection closed by server");
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return;
    return fail(c, i, std::string("recv: ") + std::strerror(errno));
  }
}

void Clients::handle_frames(Conn& c, int i, int64_t t) {
  size_t pos = 0;
  for (;;) {
    size_t avail = c.in.size() - pos;
    if (avail < 2) break;
    const auto* p = reinterpret_cast<const unsigned char*>(c.in.data()) + pos;
    bool fin = p[0] & 0x80;
    uint8_t op = p[0] & 0x0f;
    bool masked = p[1] & 0x80;
    uint64_t len = p[1] & 0x7f;
    size_t hdr = 2;
    if (len == 126) {
      if (avail < 4) break;
      len = (uint64_t{p[2]} << 8) | p[3];
      hdr = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int k = 0; k < 8; ++k) len = (len << 8) | p[2 + k];
      hdr = 10;
    }
    unsigned char mask[4] = {0, 0, 0, 0};
    if (masked) {
      if (avail < hdr + 4) break;
      std::memcpy(mask, p + hdr, 4);
      hdr += 4;
    }
    if (len > kMaxFrame) return fail(c, i, "oversized frame");
    if (avail < hdr + len) break;
    std::string payload(reinterpret_cast<const char*>(p + hdr), static_cast<size_t>(len));
    if (masked)
      for (size_t k = 0; k < payload.size(); ++k) payload[k] = static_cast<char>(payload[k] ^ mask[k % 4]);
    pos += hdr + static_cast<size_t>(len);
    switch (op) {
      case 0x1:
      case 0x0:
        if (op == 0x1) c.fragment.clear();
        if (fin && c.fragment.empty()) {
          on_text(c, i, payload, t);
        } else {
          c.fragment += payload;
          if (fin) on_text(c, i, std::exchange(c.fragment, std::string()), t);
        }
        break;
      case 0x8: {
        unsigned code = payload.size() >= 2 ? (static_cast<unsigned char>(payload[0]) << 8) |
                                                  static_cast<unsigned char>(payload[1])
                                            : 1005;
        return fail(c, i, "server closed the WebSocket (" + std::to_string(code) + " " +
                              (payload.size() > 2 ? payload.substr(2) : std::string()) + ")");
      }
      case 0x9:
        {
          std::lock_guard<std::mutex> lock(rec_mu_);
          ++counters_.pings;
        }
        send_frame(c, i, 0xA, payload);
        break;
      default:
        break;  // pong, binary: nothing to do
    }
    if (c.state.load() == State::closed) return;
  }
  c.in.erase(0, pos);
}

void Clients::on_text(Conn& c, int i, const std::string& text, int64_t t) {
  frames_.fetch_add(1, std::memory_order_relaxed);
  if (opts_.protocol == Protocol::plain) {
    std::string name = string_field(text, "event");
    if (opts_.reconnect_ms > 0) {
      std::string offset = string_field(text, "offset");
      if (!offset.empty()) c.offset = std::move(offset);
    }
    if (name == "channel.joined" || name == "channel.left")
      return on_membership(c, i, text, 0, name == "channel.left", t);
    if (name == "session" && c.state.load() == State::opening && text.find("\"recovered\":true") != std::string::npos)
      return mark_ready(c, true);
    if (name == "channel.snapshot" && c.state.load() == State::opening) return mark_ready(c, false);
    if (name == "error" && c.state.load() == State::opening) return fail(c, i, "error frame: " + text);
    return;
  }
  // Engine.IO v4 / Socket.IO v5.
  if (text.empty()) return;
  switch (text[0]) {
    case '0':  // OPEN: authenticate with the CONNECT packet, as socket.io-client's `auth` does
      return send_frame(c, i, 0x1, "40{\"token\":\"" + tokens_[i % opts_.users] + "\"}");
    case '2':  // server ping
      {
        std::lock_guard<std::mutex> lock(rec_mu_);
        ++counters_.pings;
      }
      return send_frame(c, i, 0x1, "3");
    case '1':
      return fail(c, i, "Engine.IO close");
    case '4':
      if (text.size() < 2) return;
      if (text[1] == '0' && c.state.load() == State::opening) return mark_ready(c, false);
      if (text[1] == '4') return fail(c, i, "CONNECT_ERROR " + text.substr(2));
      if (text[1] == '1') return fail(c, i, "Socket.IO DISCONNECT");
      if (text[1] == '2') {
        static const std::string joined = "[\"channel.joined\"", left = "[\"channel.left\"";
        if (text.compare(2, joined.size(), joined) == 0) return on_membership(c, i, text, 2 + joined.size(), false, t);
        if (text.compare(2, left.size(), left) == 0) return on_membership(c, i, text, 2 + left.size(), true, t);
      }
      return;
    default:
      return;
  }
}

void Clients::on_membership(Conn&, int i, const std::string& text, size_t name_end, bool left, int64_t t) {
  std::string cid = string_field(text, "channelId", name_end);
  std::lock_guard<std::mutex> lock(rec_mu_);
  if (!cid.empty() && cid[0] == 'P') {
    if (!tag_.empty() && cid.compare(0, tag_.size(), tag_) == 0) {
      uint32_t pair = static_cast<uint32_t>(std::strtoul(cid.c_str() + tag_.size(), nullptr, 10));
      receipts_.push_back(Receipt{pair * 2 + (left ? 1u : 0u), static_cast<uint32_t>(i), t});
    } else {
      ++counters_.stale;
    }
  } else if (!left) {
    others_[i].insert(cid);
  }
}

void Clients::send_frame(Conn& c, int i, uint8_t opcode, const std::string& payload) {
  // Client frames must be masked (RFC 6455 5.3); the key need not be secret here.
  static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
  std::string f;
  f.push_back(static_cast<char>(0x80 | opcode));
  size_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(0x80 | n));
  } else if (n < 65536) {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n & 0xff));
  } else {
    f.push_back(static_cast<char>(0x80 | 127));
    for (int k = 7; k >= 0; --k) f.push_back(static_cast<char>((uint64_t{n} >> (8 * k)) & 0xff));
  }
  f.append(reinterpret_cast<const char*>(key), 4);
  for (size_t k = 0; k < n; ++k) f.push_back(static_cast<char>(payload[k] ^ key[k % 4]));
  c.out += f;
  flush(c, i);
}

void Clients::mark_ready(Conn& c, bool recovered) {
  c.state = State::ready;
  c.attempts = 0;
  if (c.reconnecting) {
    c.reconnecting = false;
    std::lock_guard<std::mutex> lock(rec_mu_);
    ++(recovered ? counters_.recovered : counters_.resnapshots);
    counters_.last_back_ns = now_ns();
    return;
  }
  std::lock_guard<std::mutex> lock(conn_mu_);
  ++ok_;
  conn_cv_.notify_all();
}

void Clients::fail(Conn& c, int i, const std::string& why) {
  State was = c.state.exchange(State::closed);
  if (c.fd >= 0) {
    epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
    linger l{1, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(c.fd);
    c.fd = -1;
  }
  c.in.clear();
  c.out.clear();
  c.fragment.clear();
  if (was == State::ready) {
    {
      std::lock_guard<std::mutex> lock(rec_mu_);
      if (counters_.disconnects++ < kMaxLoggedLosses)
        std::fprintf(stderr, "loadgen: socket %d (%s%d) lost: %s\n", i, opts_.user_prefix.c_str(),
                     i % opts_.users, why.c_str());
      if (counters_.first_drop_ns == 0) counters_.first_drop_ns = now_ns();
    }
    if (opts_.reconnect_ms > 0 && opts_.protocol == Protocol::plain && !stop_) schedule_retry(c, i);
    return;
  }
  if (was == State::closed) return;
  if (c.reconnecting) {
    {
      std::lock_guard<std::mutex> lock(rec_mu_);
      if (counters_.retry_errors++ == 0) counters_.first_retry_error = why;
    }
    ++c.attempts;
    if (!stop_) schedule_retry(c, i);
    return;
  }
  std::lock_guard<std::mutex> lock(conn_mu_);
  ++failed_;
  if (first_error_.empty()) first_error_ = why;
  conn_cv_.notify_all();
}

}  // namespace bench
