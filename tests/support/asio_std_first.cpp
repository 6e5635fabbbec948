// A standard header before Asio on purpose: see asio_std_first.h.
#include <array>

#include "support/asio_std_first.h"

namespace mn::test {

void post_large_handler(asio::io_context& io, int& ran) {
  std::array<char, 512> payload{};
  payload[0] = 1;
  asio::post(io, [&ran, payload] { ran += payload[0]; });
}

}  // namespace mn::test
