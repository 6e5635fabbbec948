// The Socket.IO / Engine.IO codec on its own: what goes out is what socket.io-client expects
// (shapes taken from engine.io-parser and socket.io-parser 4.x), and what comes in is read
// the way socket.io-parser's decoder reads it.
#include "socketio_codec.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <random>

namespace mn::socketio {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

Json payload_of(const std::string& frame, size_t prefix) { return Json::parse(frame.substr(prefix)); }

TEST(SocketIoCodecTest, TheOpenPacketCarriesEmptyUpgradesAndTheIntervalsInMilliseconds) {
  const std::string f = open_frame("abcdefgh12345678ABCD", 25s, 20s, 4096);
  ASSERT_EQ(f[0], '0');
  EXPECT_EQ(f, R"(0{"sid":"abcdefgh12345678ABCD","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":4096})");
}

TEST(SocketIoCodecTest, TheConnectReplyNamesSidAndPid) {
  EXPECT_EQ(connect_frame("s1", "p1"), R"(40{"sid":"s1","pid":"p1"})");
}

TEST(SocketIoCodecTest, AConnectErrorOnTheMainNamespaceHasNoNamespacePrefix) {
  EXPECT_EQ(connect_error_frame("/", "unauthorized", R"({"code":"invalid_token"})"),
            R"(44{"message":"unauthorized","data":{"code":"invalid_token"}})");
}

TEST(SocketIoCodecTest, AConnectErrorOnAnotherNamespaceNamesItBeforeAComma) {
  EXPECT_EQ(connect_error_frame("/admin", "Invalid namespace"), R"(44/admin,{"message":"Invalid namespace"})");
}

TEST(SocketIoCodecTest, AConnectErrorMessageIsEscapedAsJson) {
  const std::string f = connect_error_frame("/", "say \"no\"");
  EXPECT_EQ(payload_of(f, 2).at("message"), "say \"no\"");
}

TEST(SocketIoCodecTest, AnEventPutsTheOffsetLastAsAString) {
  const std::string f = event_frame("channel.joined", R"({"channelId":"c1"})", "1.x.y.z.7");
  EXPECT_EQ(f, R"(42["channel.joined",{"channelId":"c1"},"1.x.y.z.7"])");
}

TEST(SocketIoCodecTest, ThePingIsTheBareEngineIoPingPacket) { EXPECT_EQ(ping_frame(), "2"); }

TEST(SocketIoCodecTest, APongAndAnEngineIoCloseAreRecognised) {
  EXPECT_EQ(parse_client_frame("3").type, ClientPacket::pong);
  EXPECT_EQ(parse_client_frame("1").type, ClientPacket::close);
}

TEST(SocketIoCodecTest, UpgradeAndNoopPacketsAreHarmless) {
  EXPECT_EQ(parse_client_frame("5").type, ClientPacket::ignored);
  EXPECT_EQ(parse_client_frame("6").type, ClientPacket::ignored);
}

TEST(SocketIoCodecTest, AClientPingIsRefusedBecauseV4HeartbeatsAreServerDriven) {
  const Parsed p = parse_client_frame("2");
  EXPECT_EQ(p.type, ClientPacket::invalid);
  EXPECT_NE(p.error.find("server-driven"), std::string::npos);
}

TEST(SocketIoCodecTest, AConnectWithoutPayloadHasNoAuth) {
  const Parsed p = parse_client_frame("40");
  ASSERT_EQ(p.type, ClientPacket::connect);
  EXPECT_EQ(p.nsp, "/");
  EXPECT_FALSE(p.auth.token.has_value());
  EXPECT_FALSE(p.auth.pid.has_value());
  EXPECT_FALSE(p.auth.bad_token);
}

TEST(SocketIoCodecTest, AConnectCarriesTokenPidAndOffset) {
  const Parsed p = parse_client_frame(R"(40{"pid":"sid~pos","offset":"off","token":"t.k.n"})");
  ASSERT_EQ(p.type, ClientPacket::connect);
  EXPECT_EQ(p.auth.token.value_or(""), "t.k.n");
  EXPECT_EQ(p.auth.pid.value_or(""), "sid~pos");
  EXPECT_EQ(p.auth.offset.value_or(""), "off");
}

TEST(SocketIoCodecTest, ATokenThatIsNotAStringIsMarkedBadRatherThanIgnored) {
  for (const char* f : {R"(40{"token":null})", R"(40{"token":42})", R"(40{"token":{"a":1}})"}) {
    const Parsed p = parse_client_frame(f);
    ASSERT_EQ(p.type, ClientPacket::connect) << f;
    EXPECT_TRUE(p.auth.bad_token) << f;
    EXPECT_FALSE(p.auth.token.has_value()) << f;
  }
}

TEST(SocketIoCodecTest, APidOrOffsetOfTheWrongTypeCountsAsAbsent) {
  const Parsed p = parse_client_frame(R"(40{"pid":1,"offset":[],"token":"t"})");
  ASSERT_EQ(p.type, ClientPacket::connect);
  EXPECT_FALSE(p.auth.pid.has_value());
  EXPECT_FALSE(p.auth.offset.has_value());
}

TEST(SocketIoCodecTest, AConnectToANamespaceKeepsItsNameWithoutTheComma) {
  const Parsed p = parse_client_frame(R"(40/admin,{"token":"t"})");
  ASSERT_EQ(p.type, ClientPacket::connect);
  EXPECT_EQ(p.nsp, "/admin");
  EXPECT_EQ(p.auth.token.value_or(""), "t");
  EXPECT_EQ(parse_client_frame("40/admin,").nsp, "/admin");
  EXPECT_EQ(parse_client_frame("40/admin").nsp, "/admin");
}

TEST(SocketIoCodecTest, AConnectWhosePayloadIsNotAnObjectIsInvalid) {
  EXPECT_EQ(parse_client_frame(R"(40["token"])").type, ClientPacket::invalid);
  EXPECT_EQ(parse_client_frame(R"(40"token")").type, ClientPacket::invalid);
  EXPECT_EQ(parse_client_frame(R"(40{"token":)").type, ClientPacket::invalid);
}

TEST(SocketIoCodecTest, ADisconnectIsReadWithItsNamespaceAndRefusedWithAPayload) {
  EXPECT_EQ(parse_client_frame("41").type, ClientPacket::disconnect);
  const Parsed p = parse_client_frame("41/admin,");
  EXPECT_EQ(p.type, ClientPacket::disconnect);
  EXPECT_EQ(p.nsp, "/admin");
  EXPECT_EQ(parse_client_frame(R"(41{"a":1})").type, ClientPacket::invalid);
}

TEST(SocketIoCodecTest, EventsWithAndWithoutAckIdsAreRecognised) {
  EXPECT_EQ(parse_client_frame(R"(42["hello",1])").type, ClientPacket::event);
  EXPECT_EQ(parse_client_frame(R"(4217["hello"])").type, ClientPacket::event);
  EXPECT_EQ(parse_client_frame(R"(42/admin,3["hello"])").type, ClientPacket::event);
  EXPECT_EQ(parse_client_frame(R"(42[7])").type, ClientPacket::event);
}

TEST(SocketIoCodecTest, AnEventWithAReservedOrMissingNameIsInvalid) {
  EXPECT_EQ(parse_client_frame(R"(42["connect"])").type, ClientPacket::invalid);
  EXPECT_EQ(parse_client_frame(R"(42["disconnecting"])").type, ClientPacket::invalid);
  EXPECT_EQ(parse_client_frame("42[]").type, ClientPacket::invalid);
  EXPECT_EQ(parse_client_frame(R"(42{"a":1})").type, ClientPacket::invalid);
  EXPECT_EQ(parse_client_frame("42[null]").type, ClientPacket::invalid);
}

TEST(SocketIoCodecTest, AcksNeedAnArrayPayload) {
  EXPECT_EQ(parse_client_frame(R"(433["ok"])").type, ClientPacket::ack);
  EXPECT_EQ(parse_client_frame(R"(433{"ok":1})").type, ClientPacket::invalid);
}

TEST(SocketIoCodecTest, AnAbsurdlyLongAckIdIsInvalid) {
  EXPECT_EQ(parse_client_frame("421234567890123456[\"x\"]").type, ClientPacket::invalid);
}

TEST(SocketIoCodecTest, BinaryEventsAndAcksAreFlaggedAsBinary) {
  EXPECT_EQ(parse_client_frame(R"(451-["up",{"_placeholder":true,"num":0}])").type, ClientPacket::binary);
  EXPECT_EQ(parse_client_frame(R"(461-3[{"_placeholder":true,"num":0}])").type, ClientPacket::binary);
}

TEST(SocketIoCodecTest, AConnectErrorFromTheClientIsInvalid) {
  EXPECT_EQ(parse_client_frame(R"(44{"message":"x"})").type, ClientPacket::invalid);
}

TEST(SocketIoCodecTest, FramesThatAreNotEngineIoPacketsAreInvalidWithAReasonThatDoesNotEchoThem) {
  for (const char* f : {"", "0", "7", "x", "{\"event\":\"hi\"}", "4", "47", "4x", "bAAAA"}) {
    const Parsed p = parse_client_frame(f);
    EXPECT_EQ(p.type, ClientPacket::invalid) << '"' << f << '"';
    EXPECT_FALSE(p.error.empty()) << f;
  }
  const Parsed secret = parse_client_frame(R"(40{"token":"s3cr3t.t0k3n"})" "garbage");
  EXPECT_EQ(secret.type, ClientPacket::invalid);
  EXPECT_EQ(secret.error.find("s3cr3t"), std::string::npos);
}

TEST(SocketIoCodecTest, SessionIdsAreTwentyUrlSafeCharactersAndDifferForDifferentRandomness) {
  const std::string a = session_id(1, 2), b = session_id(1, 3);
  EXPECT_EQ(a.size(), 20u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(is_session_id(a));
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100; ++i) {
    uint64_t hi = rng(), lo = rng();
    EXPECT_TRUE(is_session_id(session_id(hi, lo)));
  }
}

TEST(SocketIoCodecTest, IsSessionIdRefusesOtherCharactersAndLengths) {
  EXPECT_FALSE(is_session_id(""));
  EXPECT_FALSE(is_session_id("short"));
  EXPECT_FALSE(is_session_id("has~tilde~abcdefgh"));
  EXPECT_FALSE(is_session_id("has space abcdefgh"));
  EXPECT_FALSE(is_session_id(std::string(65, 'a')));
}

TEST(SocketIoCodecTest, APidSplitsBackIntoTheSidAndPositionItWasMadeOf) {
  const std::string sid = session_id(42, 43);
  const std::string pid = make_pid(sid, "1.uuid.10-12-.12-12-.0");
  const auto parts = split_pid(pid);
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->sid, sid);
  EXPECT_EQ(parts->position, "1.uuid.10-12-.12-12-.0");
}

TEST(SocketIoCodecTest, APidOfAnotherShapeDoesNotSplit) {
  EXPECT_FALSE(split_pid("").has_value());
  EXPECT_FALSE(split_pid("no-tilde-at-all-here").has_value());
  EXPECT_FALSE(split_pid("abcdefghij~").has_value());
  EXPECT_FALSE(split_pid("~position").has_value());
  EXPECT_FALSE(split_pid("abc~position").has_value());  // sid too short
  EXPECT_FALSE(split_pid("abcdefghij~pos~ition").has_value());
  // A pid from Socket.IO's own server (a plain base64 id) is not ours.
  EXPECT_FALSE(split_pid("mW0mNcw4ZtXXCdrzAAAB").has_value());
}

}  // namespace
}  // namespace mn::socketio

// socket.io-client records the last argument of an event, when a string, as its offset.
TEST(SocketIoCodec, APositionEventHasTheOffsetAsItsLastAndOnlyArgument) {
  EXPECT_EQ(mn::socketio::position_frame("1.abc.5-5-.5-5-.0"), "42[\"position\",\"1.abc.5-5-.5-5-.0\"]");
}
