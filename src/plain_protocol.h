// The plain JSON protocol on /ws: every frame the server sends is one JSON text message
//   {"event":"session","data":{"userId":"u1","recovered":true}}
//   {"event":"channel.snapshot","data":{"channels":[{"channelId":"c1","xType":"dm"}]},"offset":"…"}
//   {"event":"channel.joined","data":{…},"id":"42","offset":"…"}   (channel.left alike)
// "id" names the change (its row in the event log): a client drops a frame whose id it has
// already applied. "offset" is where to resume from after this frame.
//   {"event":"error","data":{"code":"…","message":"…"}}
// Clients send nothing; what they send anyway gets an error frame or a close code.
// Pure string building, no I/O.
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

// {"channels":[...]} as used by the snapshot frame in both protocols.
std::string snapshot_data(const std::vector<Membership>& channels);

}  // namespace plain
}  // namespace mn
