// The plain JSON protocol on /ws: every frame the server sends is one JSON text message
//   {"event":"session","data":{"userId":"u1","recovered":true}}
//   {"event":"channel.snapshot","data":{"channels":[{"channelId":"c1","xType":"dm"}]},"offset":"…"}
//   {"event":"channel.joined","data":{…},"id":"42","offset":"…"}   (channel.left alike)
// "id" names the change (its row in the event log): a client drops a frame whose id it has
// already applied. "offset" is where to resume from after this frame.
//   {"event":"error","data":{"code":"…","message":"…"}}
// Clients send one message, a new token for the open socket before its token expires:
//   {"event":"refresh","data":{"token":"…"}}
// answered {"event":"refreshed","data":{"validUntil":<unix seconds, or null>}}; a token that
// does not verify, or names another user, closes the socket (4003). Anything else gets an
// error frame. Pure string work, no I/O.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace mn {

struct Membership {
  std::string channel_id;
  std::optional<std::string> xtype;
};

namespace plain {

// `id` empty: no id field (the snapshot frame).
std::string event_frame(const std::string& name, const std::string& data_json, const std::string& id,
                        const std::string& offset);
std::string session_frame(const std::string& user_id, bool recovered);
std::string snapshot_frame(const std::vector<Membership>& channels, const std::string& offset);
std::string error_frame(const std::string& code, const std::string& message);
// {"event":"position","offset":"…"}: a newer offset for a client that has had no event for a
// while (hub.h, refresh_position). Nothing to apply; keep the offset.
std::string position_frame(const std::string& offset);

// {"event":"refreshed","data":{"validUntil":…}}: the new token is in force, and the socket is
// closed (4001) at `expires_at` (its exp plus the allowed clock skew, seconds since the
// epoch) unless refreshed again; none if the token has no exp.
std::string refreshed_frame(std::optional<double> expires_at);

// What a client message asks for.
struct ClientMessage {
  enum Kind { refresh, unknown, invalid } kind = unknown;
  std::string token;  // refresh: the new token (a "Bearer " prefix removed)
  std::string error;  // invalid: why, short, never echoing the message
};
ClientMessage parse_client_message(const std::string& text);

// {"channels":[...]} as used by the snapshot frame in both protocols.
std::string snapshot_data(const std::vector<Membership>& channels);

}  // namespace plain
}  // namespace mn
