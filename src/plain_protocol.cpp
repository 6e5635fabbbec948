#include "plain_protocol.h"

#include <nlohmann/json.hpp>

namespace mn::plain {
namespace {

// Offsets are made of URL-safe characters (see offset.h): no escaping is needed, but a JSON
// string must not be built from anything else.
std::string quoted_offset(const std::string& offset) { return nlohmann::json(offset).dump(); }

}  // namespace

std::string event_frame(const std::string& name, const std::string& data_json, const std::string& id,
                        const std::string& offset) {
  std::string out;
  out.reserve(48 + name.size() + data_json.size() + id.size() + offset.size());
  out += "{\"event\":\"";
  out += name;
  out += "\",\"data\":";
  out += data_json;
  if (!id.empty()) {
    out += ",\"id\":\"";
    out += id;  // digits only
    out += '"';
  }
  out += ",\"offset\":";
  out += quoted_offset(offset);
  out += '}';
  return out;
}

std::string position_frame(const std::string& offset) {
  return "{\"event\":\"position\",\"offset\":" + quoted_offset(offset) + '}';
}

std::string session_frame(const std::string& user_id, bool recovered) {
  nlohmann::ordered_json j = {{"event", "session"},
                              {"data", {{"userId", user_id}, {"recovered", recovered}}}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string snapshot_data(const std::vector<Membership>& channels) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& m : channels) {
    list.push_back({{"channelId", m.channel_id},
                    {"xType", m.xtype ? nlohmann::ordered_json(*m.xtype) : nlohmann::ordered_json(nullptr)}});
  }
  nlohmann::ordered_json data = {{"channels", std::move(list)}};
  return data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string snapshot_frame(const std::vector<Membership>& channels, const std::string& offset) {
  return event_frame("channel.snapshot", snapshot_data(channels), "", offset);
}

std::string error_frame(const std::string& code, const std::string& message) {
  nlohmann::ordered_json j = {{"event", "error"}, {"data", {{"code", code}, {"message", message}}}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string refreshed_frame(std::optional<double> expires_at) {
  nlohmann::ordered_json j = {{"event", "refreshed"},
                              {"data", {{"validUntil", expires_at ? nlohmann::ordered_json(static_cast<long long>(std::min(*expires_at, 1e15)))
                                                                 : nlohmann::ordered_json(nullptr)}}}};
  return j.dump();
}

ClientMessage parse_client_message(const std::string& text) {
  ClientMessage m;
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return m;
  auto event = j.find("event");
  if (event == j.end() || !event->is_string() || *event != "refresh") return m;
  m.kind = ClientMessage::invalid;
  auto data = j.find("data");
  if (data == j.end() || !data->is_object()) {
    m.error = "refresh without data";
    return m;
  }
  auto token = data->find("token");
  if (token == data->end() || !token->is_string() || token->get_ref<const std::string&>().empty()) {
    m.error = "refresh without a token";
    return m;
  }
  m.token = token->get<std::string>();
  static const std::string prefix = "Bearer ";
  if (m.token.size() > prefix.size() && m.token.compare(0, prefix.size(), prefix) == 0)
    m.token.erase(0, prefix.size());
  m.kind = ClientMessage::refresh;
  return m;
}

}  // namespace mn::plain
