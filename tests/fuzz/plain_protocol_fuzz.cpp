// Fuzzes the one client message /ws parses (parse_client_message: a token refresh) with the
// whole input, and the /ws frame builders with the strings that reach them from outside: user
// ids (from tokens), channel ids and xTypes (from the application's rows), error texts. Every
// frame the server writes around such strings must be one JSON text that reads back to them,
// whatever bytes they hold.
// Input: fields separated by '\n'. Properties: nothing throws; every frame is JSON with the
// documented shape; valid UTF-8 comes back byte for byte, anything else is replaced, not
// passed through.
#include "plain_protocol.h"
#include "fuzz_check.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using nlohmann::json;

json parse_frame(const std::string& frame) {
  json j = json::parse(frame, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(j.is_object() && j.contains("event"));
  return j;
}

void check_field(const json& v, const std::string& expected) {
  FUZZ_CHECK(v.is_string());
  if (mn::fuzz::is_utf8(expected)) FUZZ_CHECK(v.get<std::string>() == expected);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> fields;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  while (true) {
    const auto nl = in.find('\n');
    fields.emplace_back(in.substr(0, nl));
    if (nl == std::string_view::npos || fields.size() == 64) break;
    in.remove_prefix(nl + 1);
  }
  // A client message: refresh with a token, unknown, or invalid with a reason that does not
  // echo it.
  const std::string whole(reinterpret_cast<const char*>(data), size);
  const auto message = mn::plain::parse_client_message(whole);
  if (message.kind == mn::plain::ClientMessage::refresh) {
    // The token is the message's own, less a "Bearer " prefix, never empty.
    FUZZ_CHECK(!message.token.empty() && whole.size() > message.token.size());
    FUZZ_CHECK(message.error.empty());
  }
  if (message.kind == mn::plain::ClientMessage::invalid) {
    FUZZ_CHECK(!message.error.empty() && message.error.size() <= 200);
    if (whole.size() >= 16) FUZZ_CHECK(message.error.find(whole) == std::string::npos);
  }

  const std::string& first = fields[0];
  const std::string& second = fields.size() > 1 ? fields[1] : first;
  // Offsets are our own URL-safe text (offset.h), never client bytes.
  const std::string offset = "1.x.1-2-.1-2-.7";

  const json session = parse_frame(mn::plain::session_frame(first, size % 2 == 0));
  FUZZ_CHECK(session["event"] == "session" && session["data"]["recovered"] == (size % 2 == 0));
  check_field(session["data"]["userId"], first);

  const json error = parse_frame(mn::plain::error_frame(first, second));
  FUZZ_CHECK(error["event"] == "error");
  check_field(error["data"]["code"], first);
  check_field(error["data"]["message"], second);

  std::vector<mn::Membership> channels;
  for (size_t i = 0; i + 1 < fields.size(); i += 2)
    channels.push_back({fields[i], fields[i + 1].empty() ? std::nullopt : std::optional(fields[i + 1])});
  const json snapshot = parse_frame(mn::plain::snapshot_frame(channels, offset));
  FUZZ_CHECK(snapshot["event"] == "channel.snapshot" && snapshot["offset"] == offset);
  const json& list = snapshot["data"]["channels"];
  FUZZ_CHECK(list.is_array() && list.size() == channels.size());
  for (size_t i = 0; i < channels.size(); ++i) {
    check_field(list[i]["channelId"], channels[i].channel_id);
    if (channels[i].xtype) check_field(list[i]["xType"], *channels[i].xtype);
    else FUZZ_CHECK(list[i]["xType"].is_null());
  }

  const json position = parse_frame(mn::plain::position_frame(offset));
  FUZZ_CHECK(position["event"] == "position" && position["offset"] == offset);
  return 0;
}
