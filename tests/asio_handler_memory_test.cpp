// Asio before any standard header, on purpose: Asio 1.22 chose its handler allocator from
// whether a standard header had been seen, so units with different include orders freed each
// other's recycled blocks with the wrong function (operator new'd memory passed to free).
// The sanitizer build (MN_SANITIZE) aborts on that; CMakeLists.txt makes one choice for every
// unit (ASIO_DISABLE_STD_ALIGNED_ALLOC).
#include <asio.hpp>

#include <gtest/gtest.h>

#include "support/asio_std_first.h"

TEST(AsioHandlerMemory, ABlockRecycledInOneUnitIsFreedByAnotherWithTheMatchingFunction) {
  asio::io_context io;
  int ran = 0;
  // A small handler allocated in this unit; Asio frees its block into the thread's cache
  // before calling it. The large handler, allocated in the other unit, cannot reuse that
  // block and frees it there.
  asio::post(io, [&io, &ran] {
    asio::post(io, [&io, &ran] {
      ++ran;
      mn::test::post_large_handler(io, ran);
    });
  });
  io.run();
  EXPECT_EQ(ran, 2);
}
