// Fuzzes parse_wake_payload (event.h): a NOTIFY payload on the wake-up channel, which any
// role allowed to NOTIFY can send, and map_row on what it yields.
// Properties: nothing throws; a parsed row has a non-zero xid and op "j" or "l"; written
// back in the documented format it parses to the same row; a mapped event's data is JSON.
#include "event.h"
#include "fuzz_check.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

nlohmann::json text_or_null(const std::optional<std::string>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto row = mn::parse_wake_payload(in);
  if (!row) return 0;
  FUZZ_CHECK(row->xid != 0 && (row->op == "j" || row->op == "l"));

  const nlohmann::json again = {std::to_string(row->xid), row->id, row->op, text_or_null(row->channel_id),
                                text_or_null(row->user_id), text_or_null(row->xtype), row->occurred_at_us};
  const auto back = mn::parse_wake_payload(again.dump());
  FUZZ_CHECK(back && back->xid == row->xid && back->id == row->id && back->op == row->op &&
             back->channel_id == row->channel_id && back->user_id == row->user_id &&
             back->xtype == row->xtype && back->occurred_at_us == row->occurred_at_us);

  const auto mapped = mn::map_row(*row);
  FUZZ_CHECK(mapped.event.has_value() != !mapped.error.empty());
  if (mapped.event) {
    const auto j = nlohmann::json::parse(mapped.event->data_json, nullptr, false);
    FUZZ_CHECK(j.is_object() && j["channelId"] == *row->channel_id && j["userId"] == *row->user_id);
    FUZZ_CHECK(mapped.event->user_id == *row->user_id);
  }
  return 0;
}
