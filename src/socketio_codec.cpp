#include "socketio_codec.h"

#include <nlohmann/json.hpp>

namespace mn::socketio {

std::string event_frame(const std::string& name, const std::string& data_json, const std::string& offset) {
  std::string out = "42[";
  out += nlohmann::json(name).dump();
  out += ',';
  out += data_json;
  out += ',';
  out += nlohmann::json(offset).dump();
  out += ']';
  return out;
}

}  // namespace mn::socketio
