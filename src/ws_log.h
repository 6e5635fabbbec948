// WsLog: websocketpp's logging policy, through spdlog, so that the process writes one log in one
// format. Everything websocketpp reports concerns one connection (a write to a peer that has
// just gone, a handshake that failed), and each connection's end is already logged by the server
// with its reason: so its messages go out at debug, never as websocketpp's own "[fatal]" lines
// that would set off anyone's log alerts.
#pragma once

#include <spdlog/spdlog.h>
#include <websocketpp/logger/levels.hpp>

#include <ostream>
#include <string>

namespace mn {

template <typename Names>
class WsLog {
 public:
  using level = websocketpp::log::level;
  using hint = websocketpp::log::channel_type_hint;

  explicit WsLog(hint::value = hint::access) {}
  WsLog(level channels, hint::value) : channels_(channels) {}
  explicit WsLog(std::ostream*) {}
  WsLog(level channels, std::ostream*) : channels_(channels) {}

  void set_ostream(std::ostream* = nullptr) {}
  void set_channels(level channels) { channels_ |= channels; }
  void clear_channels(level channels) { channels_ &= ~channels; }
  void write(level channel, const std::string& msg) { write(channel, msg.c_str()); }
  void write(level channel, const char* msg) {
    if (dynamic_test(channel)) spdlog::debug("websocketpp {}: {}", Names::channel_name(channel), msg);
  }
  constexpr bool static_test(level) const { return true; }
  bool dynamic_test(level channel) const { return (channel & channels_) != 0; }

 private:
  level channels_ = 0;
};

}  // namespace mn
