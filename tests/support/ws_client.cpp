#include "support/ws_client.h"

#include <websocketpp/client.hpp>
#include <websocketpp/config/asio_no_tls_client.hpp>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace mn::test {

using Client = websocketpp::client<websocketpp::config::asio_client>;
using Clock = std::chrono::steady_clock;

struct WsClient::Impl {
  enum class State { connecting, open, failed, closed };

  Client client;  // declared first: connection and handlers must not outlive it
  Client::connection_ptr con;
  std::thread thread;

  mutable std::mutex mutex;
  std::condition_variable cv;
  State state = State::connecting;
  std::deque<std::string> messages;
  int status = 0;
  int close_code = 0;
  std::string close_reason;
  std::string body;
  std::string error;

  bool finished() const { return state == State::failed || state == State::closed; }

  void set_state(State s) {
    std::lock_guard<std::mutex> lock(mutex);
    state = s;
    status = con->get_response_code();
    if (s == State::failed) {
      body = con->get_response().get_body();
      error = con->get_ec().message();
    } else if (s == State::closed) {
      close_code = con->get_remote_close_code();
      close_reason = con->get_remote_close_reason();
    }
    cv.notify_all();
  }

  // Every operation runs on the client's own thread, as websocketpp expects.
  template <typename F>
  void post(F&& f) {
    asio::post(client.get_io_service(), std::forward<F>(f));
  }
};

WsClient::WsClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

std::unique_ptr<WsClient> WsClient::connect(uint16_t port, const std::string& path_and_query,
                                            const HeaderList& headers,
                                            std::chrono::milliseconds timeout) {
  WsOptions options;
  options.headers = headers;
  options.timeout = timeout;
  return connect_with(port, path_and_query, options);
}

std::unique_ptr<WsClient> WsClient::connect_with(uint16_t port, const std::string& path_and_query,
                                                 const WsOptions& options) {
  auto impl = std::make_unique<Impl>();
  Impl* p = impl.get();
  Client& c = p->client;
  c.clear_access_channels(websocketpp::log::alevel::all);
  c.clear_error_channels(websocketpp::log::elevel::all);
  c.init_asio();
  // Size limits under test are the server's; the client should accept anything.
  c.set_max_message_size(1u << 30);
  c.set_open_handshake_timeout(static_cast<long>(options.timeout.count()));

  const std::string path = path_and_query.empty() || path_and_query[0] != '/'
                               ? "/" + path_and_query
                               : path_and_query;
  websocketpp::lib::error_code ec;
  p->con = c.get_connection("ws://127.0.0.1:" + std::to_string(port) + path, ec);
  if (ec) {
    p->state = Impl::State::failed;
    p->error = ec.message();
    return std::unique_ptr<WsClient>(new WsClient(std::move(impl)));
  }
  for (const auto& [name, value] : options.headers) p->con->append_header(name, value);
  for (const auto& proto : options.subprotocols) p->con->add_subprotocol(proto);

  p->con->set_open_handler([p](websocketpp::connection_hdl) { p->set_state(Impl::State::open); });
  p->con->set_fail_handler([p](websocketpp::connection_hdl) { p->set_state(Impl::State::failed); });
  p->con->set_close_handler([p](websocketpp::connection_hdl) { p->set_state(Impl::State::closed); });
  p->con->set_message_handler([p](websocketpp::connection_hdl, Client::message_ptr msg) {
    std::lock_guard<std::mutex> lock(p->mutex);
    p->messages.push_back(msg->get_payload());
    p->cv.notify_all();
  });
  c.connect(p->con);
  // A paused connection has no read outstanding; without this, run() would return then.
  c.start_perpetual();
  p->thread = std::thread([p] {
    p->client.run();
    // run() returns only when stopped from outside: no handler will report the end then.
    std::lock_guard<std::mutex> lock(p->mutex);
    if (p->state == Impl::State::connecting) p->state = Impl::State::failed;
    if (p->state == Impl::State::open) {
      p->state = Impl::State::closed;
      p->close_code = 1006;
    }
    p->cv.notify_all();
  });

  std::unique_lock<std::mutex> lock(p->mutex);
  const bool settled = p->cv.wait_for(lock, options.timeout,
                                      [p] { return p->state != Impl::State::connecting; });
  lock.unlock();
  if (!settled) {
    p->client.stop();
    p->thread.join();
    std::lock_guard<std::mutex> relock(p->mutex);
    p->status = 0;
    p->error = "timed out";
  }
  return std::unique_ptr<WsClient>(new WsClient(std::move(impl)));
}

WsClient::~WsClient() {
  if (is_open()) {
    close(1000);
    wait_closed(std::chrono::seconds(1));
  }
  impl_->client.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int WsClient::handshake_status() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->status;
}

std::string WsClient::handshake_body() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->body;
}

std::string WsClient::response_header(const std::string& name) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  // The response is written once, before open/fail is reported; reading it after is safe.
  if (impl_->state == Impl::State::connecting || !impl_->con) return {};
  return impl_->con->get_response_header(name);
}

std::string WsClient::selected_subprotocol() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (impl_->state == Impl::State::connecting || !impl_->con) return {};
  return impl_->con->get_subprotocol();
}

std::string WsClient::error() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->error;
}

bool WsClient::is_open() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->state == Impl::State::open;
}

std::optional<std::string> WsClient::next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(impl_->mutex);
  impl_->cv.wait_for(lock, timeout, [this] { return !impl_->messages.empty() || impl_->finished(); });
  if (impl_->messages.empty()) return std::nullopt;
  std::string msg = std::move(impl_->messages.front());
  impl_->messages.pop_front();
  return msg;
}

std::optional<nlohmann::json> WsClient::next_json(std::chrono::milliseconds timeout) {
  auto msg = next(timeout);
  if (!msg) return std::nullopt;
  try {
    return nlohmann::json::parse(*msg);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error("WebSocket message is not JSON (" + std::string(e.what()) + "): " + *msg);
  }
}

std::vector<std::string> WsClient::drain(std::chrono::milliseconds quiet) {
  std::vector<std::string> out;
  while (auto msg = next(quiet)) out.push_back(std::move(*msg));
  return out;
}

std::size_t WsClient::queued() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->messages.size();
}

void WsClient::send_text(const std::string& text) {
  Impl* p = impl_.get();
  p->post([p, text] {
    websocketpp::lib::error_code ec;
    p->client.send(p->con, text, websocketpp::frame::opcode::text, ec);
  });
}

void WsClient::send_binary(const std::string& bytes) {
  Impl* p = impl_.get();
  p->post([p, bytes] {
    websocketpp::lib::error_code ec;
    p->client.send(p->con, bytes, websocketpp::frame::opcode::binary, ec);
  });
}

void WsClient::close(uint16_t code, const std::string& reason) {
  Impl* p = impl_.get();
  p->post([p, code, reason] {
    websocketpp::lib::error_code ec;
    p->con->close(code, reason, ec);
  });
}

void WsClient::stop_reading() {
  Impl* p = impl_.get();
  p->post([p] { p->con->pause_reading(); });
}

void WsClient::resume_reading() {
  Impl* p = impl_.get();
  p->post([p] { p->con->resume_reading(); });
}

bool WsClient::wait_closed(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(impl_->mutex);
  return impl_->cv.wait_for(lock, timeout, [this] { return impl_->finished(); });
}

int WsClient::close_code() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->close_code;
}

std::string WsClient::close_reason() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->close_reason;
}

}  // namespace mn::test
