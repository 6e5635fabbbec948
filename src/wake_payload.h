// WakePayload: what the triggers' NOTIFY says, and how the sidecar knows it was them.
//
// NOTIFY and LISTEN need no privilege: any role that can connect to the database can send on
// the sidecar's channel and read what is sent there. So a wake-up carries no user or channel,
// only the log row it names, "<xid>.<id>", and an HMAC-SHA256 of that under the installation's
// key (membership_notifier.wake_key, readable by the migration's owner and the sidecar's role):
//   "7781.42.3f0c…" (64 lowercase hex digits)
// A wake-up only makes the sidecar read the log sooner; what is delivered always comes from
// the log. One whose HMAC does not verify is not acted on at all, and is counted.
// Pure code, no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mn {

struct WakeUp {
  uint64_t xid = 0;
  int64_t id = 0;  // 0 for a TRUNCATE
};

// The key as membership_notifier.wake_key holds it, from its hex text; nullopt unless 32 bytes.
std::optional<std::string> parse_wake_key(std::string_view hex);

// The wake-up a payload names, if its HMAC verifies under `key`; nullopt for anything else.
std::optional<WakeUp> verify_wake_payload(std::string_view payload, std::string_view key);

// The payload the triggers would send (for tests and tools; the triggers build it in SQL).
std::string sign_wake_payload(const WakeUp& w, std::string_view key);

}  // namespace mn
