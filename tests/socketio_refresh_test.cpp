// The Socket.IO side of an in-band token refresh (socketio_codec.h): the "refresh" event as
// socket.io-client encodes socket.emit("refresh", token, callback), and the ack it gets.
#include "socketio_codec.h"

#include <gtest/gtest.h>

namespace mn::socketio {
namespace {

TEST(SocketIoRefresh, AnEventWithAnAckIdCarriesItsNameAckIdAndTokenAsAStringOrInAnObject) {
  auto p = parse_client_frame(R"(4212["refresh","a.b.c"])");
  EXPECT_EQ(p.type, ClientPacket::event);
  EXPECT_EQ(p.event, "refresh");
  ASSERT_TRUE(p.ack_id);
  EXPECT_EQ(*p.ack_id, 12u);
  EXPECT_EQ(p.token.value_or(""), "a.b.c");
  auto q = parse_client_frame(R"(42["refresh",{"token":"x.y.z"}])");
  EXPECT_FALSE(q.ack_id);
  EXPECT_EQ(q.token.value_or(""), "x.y.z");
}

TEST(SocketIoRefresh, AnEventWithoutAUsableTokenHasNone) {
  for (const char* frame : {R"(421["refresh"])", R"(421["refresh",42])", R"(421["refresh",{"token":1}])",
                            R"(421["refresh",["a.b.c"]])"}) {
    auto p = parse_client_frame(frame);
    EXPECT_EQ(p.type, ClientPacket::event) << frame;
    EXPECT_FALSE(p.token) << frame;
  }
}

TEST(SocketIoRefresh, TheAckFrameAnswersTheClientsAckIdWithOneArgument) {
  EXPECT_EQ(ack_frame(7, R"({"ok":true})"), R"(437[{"ok":true}])");
}

}  // namespace
}  // namespace mn::socketio
