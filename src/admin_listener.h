// AdminListener: the admin address (--admin-listen), plain HTTP always: /healthz, /readyz and
// /metrics (http_endpoints.h) for probes and monitoring, and nothing else: an upgrade request
// gets 404. It serves probes, one short request each: past kMaxSockets open at once a new
// connection is closed at accept, so it cannot be used to exhaust descriptors.
#pragma once

#include "config.h"
#include "http_endpoints.h"

#include <asio/io_context.hpp>

#include <cstdint>
#include <memory>

namespace mn {

class AdminListener {
 public:
  static constexpr size_t kMaxSockets = 16;

  // `probes` is read at each request, and must outlive this.
  AdminListener(asio::io_context& io, const Config& cfg, const HttpProbes& probes);
  ~AdminListener();

  // Binds and starts accepting. Throws std::runtime_error when the address cannot be bound.
  void listen();
  void stop();
  uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mn
