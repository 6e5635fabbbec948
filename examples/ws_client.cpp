// A minimal client of membership-notifier's /ws endpoint, used by the demo.
//   mn-demo-client 'ws://127.0.0.1:8080/ws?access_token=<JWT>'
// Prints every frame it receives, and for channel.joined / channel.left how long after the
// change (its occurredAt, taken in the writing transaction just before it committed) the
// event arrived here. A real client keeps the last "offset" and reconnects with
// &offset=<it> to resume without losing anything (see docs/protocol.md).
#include <nlohmann/json.hpp>
#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>

#include <chrono>
#include <ctime>
#include <iomanip>
#include <iostream>

using Client = websocketpp::client<websocketpp::config::asio_client>;

static double micros_since(const std::string& iso) {
  // 2026-11-26T16:00:00.123456Z
  std::tm tm{};
  std::istringstream in(iso.substr(0, 19));
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  auto secs = static_cast<int64_t>(timegm(&tm));
  int64_t frac = iso.size() >= 26 ? std::stoll(iso.substr(20, 6)) : 0;
  auto now = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::system_clock::now().time_since_epoch()).count();
  return static_cast<double>(now - (secs * 1000000 + frac));
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " ws://host:port/ws?access_token=<JWT>\n";
    return 2;
  }
  Client c;
  c.clear_access_channels(websocketpp::log::alevel::all);
  c.clear_error_channels(websocketpp::log::elevel::all);
  c.init_asio();
  c.set_message_handler([](websocketpp::connection_hdl, Client::message_ptr m) {
    auto frame = nlohmann::json::parse(m->get_payload(), nullptr, false);
    std::string event = frame.is_object() ? frame.value("event", "") : "";
    if (event == "channel.joined" || event == "channel.left") {
      const auto& d = frame["data"];
      std::cout << std::left << std::setw(15) << event << " channel=" << d["channelId"].get<std::string>()
                << " xType=" << (d["xType"].is_null() ? "null" : d["xType"].get<std::string>())
                << "  (" << std::fixed << std::setprecision(2) << micros_since(d["occurredAt"]) / 1000.0
                << " ms after the change)" << std::endl;
    } else {
      std::cout << m->get_payload() << std::endl;
    }
  });
  c.set_fail_handler([&c](websocketpp::connection_hdl h) {
    auto con = c.get_con_from_hdl(h);
    std::cerr << "connect failed: HTTP " << con->get_response_code() << " " << con->get_response().get_body() << "\n";
  });
  c.set_close_handler([&c](websocketpp::connection_hdl h) {
    auto con = c.get_con_from_hdl(h);
    std::cerr << "closed: " << con->get_remote_close_code() << " " << con->get_remote_close_reason() << "\n";
  });
  websocketpp::lib::error_code ec;
  auto con = c.get_connection(argv[1], ec);
  if (ec) {
    std::cerr << "bad URL: " << ec.message() << "\n";
    return 2;
  }
  c.connect(con);
  c.run();
  return 1;
}
