// Fuzzes Engine.IO long-polling: every POST body on /socket.io/ reaches decode_payload before
// anything is authenticated, and a session's transport state sees whatever order of GETs,
// POSTs, probes and closes a client (or the network) makes.
// Input mode (first byte): 0 - the rest is a POST body; 1 - the rest is a script of
// operations on one PollingTransport. Properties: nothing throws; a refusal has a short fixed
// reason; a decoded payload without binary packets encodes back to the body; every packet the
// server queued leaves at most once and in order (in a GET body or, after the upgrade, over
// the WebSocket), and none is lost unless the session was closed with its queue dropped (over
// budget, a lost GET, the client's own close); the queue's packet count is exact.
#include "polling_codec.h"
#include "polling_transport.h"
#include "fuzz_check.h"

#include <cstddef>
#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <string_view>

namespace {

using namespace std::chrono_literals;
using mn::polling::PollingTransport;

void check_body(std::string_view body) {
  const auto d = mn::polling::decode_payload(body);
  if (!d.ok) {
    FUZZ_CHECK(d.error && std::string_view(d.error).size() <= 60);
    static std::set<std::string> reasons;
    reasons.insert(d.error);
    FUZZ_CHECK(reasons.size() <= 8);
  } else {
    FUZZ_CHECK(!d.packets.empty() || d.binary);
    for (auto p : d.packets) {
      FUZZ_CHECK(!p.empty() && p[0] >= '0' && p[0] <= '6');
      FUZZ_CHECK(p.find(mn::polling::kSeparator) == std::string_view::npos);
    }
    if (!d.binary) {
      std::vector<std::string> packets(d.packets.begin(), d.packets.end());
      FUZZ_CHECK(mn::polling::encode_payload(packets) == body);
    }
  }
  // The transport agrees with the codec, and a refused body closes the session.
  PollingTransport t(mn::polling::Limits{});
  const auto p = t.on_post(body, mn::polling::Clock::time_point{});
  FUZZ_CHECK(p.ok == d.ok);
  FUZZ_CHECK(p.ok || t.state() == mn::polling::State::closed);
  if (p.ok) FUZZ_CHECK(p.packets.size() <= d.packets.size());
}

// Data packets are "4<n>" with n counting up; anything else in a body is control.
struct Harness {
  PollingTransport t;
  std::deque<uint64_t> expected;  // queued, not yet delivered, in order
  uint64_t next = 1;
  uint64_t last_delivered = 0;
  bool dropped = false;  // closed with its queue dropped: what was expected is lost by design
  mn::polling::Clock::time_point now{};

  explicit Harness(mn::polling::Limits l) : t(l) {}

  void deliver(std::string_view packet) {
    if (packet.size() < 2 || packet[0] != '4') return;
    const uint64_t n = std::stoull(std::string(packet.substr(1)));
    FUZZ_CHECK(n > last_delivered);  // in order, never twice
    last_delivered = n;
    FUZZ_CHECK(!expected.empty() && expected.front() == n);  // nothing skipped
    expected.pop_front();
  }
  void deliver_body(const std::string& body) {
    FUZZ_CHECK(!body.empty());
    size_t start = 0;
    bool closed = false;
    for (;;) {
      size_t end = body.find(mn::polling::kSeparator, start);
      if (end == std::string::npos) end = body.size();
      const std::string_view packet(body.data() + start, end - start);
      FUZZ_CHECK(!closed);  // the close packet comes last
      if (packet == "1") closed = true;
      deliver(packet);
      if (end == body.size()) break;
      start = end + 1;
    }
    // A close delivers everything that was queued before it, unless dropped.
    if (closed && !dropped) FUZZ_CHECK(expected.empty());
  }
  void drop() {
    dropped = true;
    expected.clear();
  }

  void step(uint8_t op, uint8_t arg) {
    using mn::polling::State;
    const State before = t.state();
    switch (op % 12) {
      case 0: {
        const std::string packet = "4" + std::to_string(next) + std::string(arg % 64, 'x');
        const bool queued = t.push(packet);
        if (queued) expected.push_back(next);
        FUZZ_CHECK(queued == (before == State::polling || before == State::upgrading));
        ++next;
        break;
      }
      case 1: {
        const bool was_held = t.get_held();
        const auto g = t.on_get(now);
        if (g.action == PollingTransport::GetAction::answer) deliver_body(g.body);
        if (g.action == PollingTransport::GetAction::overlap) FUZZ_CHECK(was_held && t.state() == State::closed);
        if (g.action == PollingTransport::GetAction::hold) FUZZ_CHECK(!was_held && t.get_held() && !t.ready());
        break;
      }
      case 2:
        if (t.ready()) deliver_body(t.take_response());
        break;
      case 3: {
        static const char* bodies[] = {"3", "42[\"a\"]", "abc", "1", "bAQID", ("3\x1e" "3"), ""};
        const auto p = t.on_post(bodies[arg % 7], now);
        if (p.client_closed) {
          t.close(PollingTransport::CloseBy::client, now);
          drop();
        }
        break;
      }
      case 4:
        if (t.may_upgrade()) t.probe_opened(now);
        break;
      case 5: {
        static const char* packets[] = {"2probe", "5", "3", "2probe"};
        const auto a = t.on_probe_packet(packets[arg % 4]);
        if (a == PollingTransport::ProbeAction::upgraded)
          for (const auto& p : t.take_queue()) deliver(p);
        if (a == PollingTransport::ProbeAction::refuse) t.probe_lost();
        break;
      }
      case 6:
        t.probe_lost();
        break;
      case 7:
        if (before == State::polling || before == State::upgrading) {
          const bool drop_queue = arg & 1;
          t.close(PollingTransport::CloseBy::server, now, drop_queue);
          if (drop_queue) drop();
        }
        break;
      case 8:
        if (t.get_held() && (before == State::polling || before == State::upgrading)) drop();
        t.get_lost(now);
        break;
      case 9:
        now += std::chrono::milliseconds(arg * 50);
        break;
      case 10:
        if (before == State::polling || before == State::upgrading) {  // over budget
          t.close(PollingTransport::CloseBy::server, now, true);
          drop();
        }
        break;
      default:
        if (t.upgrade_expired(now)) t.probe_lost();
        break;
    }
    if (t.state() == State::upgraded) FUZZ_CHECK(t.queued_packets() == 0 || before != State::upgraded);
    FUZZ_CHECK(t.queued_packets() == expected.size() || t.state() == State::closed || t.state() == State::upgraded);
    FUZZ_CHECK(t.queued_packets() == 0 || t.state() == State::polling || t.state() == State::upgrading);
  }
};

void check_script(std::string_view script) {
  mn::polling::Limits l;
  l.upgrade_timeout = 1s;
  l.close_linger = 1s;
  Harness h(l);
  for (size_t i = 0; i + 1 < script.size(); i += 2)
    h.step(static_cast<uint8_t>(script[i]), static_cast<uint8_t>(script[i + 1]));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) check_body(rest);
  else check_script(rest);
  return 0;
}
