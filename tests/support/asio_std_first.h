// Helper of asio_handler_memory_test.cpp, compiled in a unit that includes standard headers
// before Asio (the test's own unit includes Asio first).
#pragma once

#include <asio.hpp>

namespace mn::test {

// Posts a handler too large for a recycled small block onto `io`; it adds 1 to `ran`.
void post_large_handler(asio::io_context& io, int& ran);

}  // namespace mn::test
