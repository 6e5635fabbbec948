// Engine.IO v4 long-polling on the wire: payloads as engine.io-parser 4 writes and reads
// them, and requests classified as the reference server (engine.io 6) does.
#include "polling_codec.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace mn::polling {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

RequestVerdict classify(std::string_view method, std::string_view target, bool upgrade = false,
                        std::string_view content_type = "text/plain;charset=UTF-8") {
  return classify_request(method, RequestTarget::parse(target), upgrade, content_type);
}

const std::string kSid = "abcdefgh12345678ABCD";

TEST(PollingCodecTest, APayloadJoinsPacketsWithTheRecordSeparator) {
  EXPECT_EQ(encode_payload({"4hello"}), "4hello");
  EXPECT_EQ(encode_payload({"4test1", "4test2", "2"}), "4test1\x1e" "4test2\x1e" "2");
  EXPECT_EQ(encode_payload({}), "");
}

TEST(PollingCodecTest, APayloadOfSeveralPacketsDecodesToThemInOrder) {
  const std::string body = "40{\"token\":\"t\"}\x1e" "3\x1e" "42[\"a\",\"\xc3\xa9\"]";
  auto d = decode_payload(body);
  ASSERT_TRUE(d.ok) << d.error;
  ASSERT_EQ(d.packets.size(), 3u);
  EXPECT_EQ(d.packets[0], "40{\"token\":\"t\"}");
  EXPECT_EQ(d.packets[1], "3");
  EXPECT_EQ(d.packets[2], "42[\"a\",\"\xc3\xa9\"]");
  EXPECT_FALSE(d.binary);
}

TEST(PollingCodecTest, ABinaryPacketIsReportedAndNotPassedOn) {
  auto d = decode_payload("4hello\x1e" "bAQIDBA==");
  ASSERT_TRUE(d.ok);
  EXPECT_TRUE(d.binary);
  ASSERT_EQ(d.packets.size(), 1u);
  EXPECT_EQ(d.packets[0], "4hello");
}

TEST(PollingCodecTest, AnEmptyBodyOrAnEmptyPacketIsRefused) {
  EXPECT_FALSE(decode_payload("").ok);
  EXPECT_FALSE(decode_payload("4a\x1e").ok);
  EXPECT_FALSE(decode_payload("\x1e" "4a").ok);
  EXPECT_FALSE(decode_payload("4a\x1e\x1e" "4b").ok);
}

TEST(PollingCodecTest, AnUnknownPacketTypeIsRefusedWithAFixedReason) {
  auto d = decode_payload("abc");
  EXPECT_FALSE(d.ok);
  EXPECT_STREQ(d.error, "unknown Engine.IO packet type in payload");
  EXPECT_FALSE(decode_payload("4ok\x1e" "7").ok);
}

TEST(PollingCodecTest, TextThatIsNotUtf8IsRefused) {
  EXPECT_FALSE(decode_payload("4\xff").ok);
  EXPECT_FALSE(decode_payload("4\xc0\xaf").ok);          // overlong '/'
  EXPECT_FALSE(decode_payload("4\xed\xa0\x80").ok);      // a surrogate
  EXPECT_FALSE(decode_payload("4\xf4\x90\x80\x80").ok);  // past U+10FFFF
  EXPECT_FALSE(decode_payload("4\xe2\x82").ok);          // cut short
  EXPECT_TRUE(decode_payload("4\xe2\x82\xac\xf0\x9f\x98\x80").ok);
}

TEST(PollingCodecTest, MoreThanTheAllowedNumberOfPacketsIsRefused) {
  EXPECT_TRUE(decode_payload("3\x1e" "3\x1e" "3", 3).ok);
  EXPECT_FALSE(decode_payload("3\x1e" "3\x1e" "3\x1e" "3", 3).ok);
}

TEST(PollingCodecTest, TheOpenPacketOffersTheUpgradeToWebSocket) {
  const std::string f = open_packet(kSid, 300ms, 200ms, 1000000);
  ASSERT_EQ(f[0], '0');
  EXPECT_EQ(Json::parse(f.substr(1)),
            Json::parse(R"({"sid":"abcdefgh12345678ABCD","upgrades":["websocket"],"pingInterval":300,)"
                        R"("pingTimeout":200,"maxPayload":1000000})"));
}

TEST(PollingCodecTest, ErrorsAreTheReferenceServersJsonAndStatus) {
  EXPECT_EQ(error_body(ErrorCode::transport_unknown), R"({"code":0,"message":"Transport unknown"})");
  EXPECT_EQ(error_body(ErrorCode::session_id_unknown), R"({"code":1,"message":"Session ID unknown"})");
  EXPECT_EQ(error_body(ErrorCode::bad_handshake_method), R"({"code":2,"message":"Bad handshake method"})");
  EXPECT_EQ(error_body(ErrorCode::bad_request), R"({"code":3,"message":"Bad request"})");
  EXPECT_EQ(error_body(ErrorCode::forbidden), R"({"code":4,"message":"Forbidden"})");
  EXPECT_EQ(error_body(ErrorCode::unsupported_protocol_version),
            R"({"code":5,"message":"Unsupported protocol version"})");
  EXPECT_EQ(error_status(ErrorCode::forbidden), 403);
  EXPECT_EQ(error_status(ErrorCode::session_id_unknown), 400);
}

TEST(PollingCodecTest, AGetWithoutSidOpensAPollingSession) {
  EXPECT_EQ(classify("GET", "/socket.io/?EIO=4&transport=polling&t=N8hyd6w").kind, RequestKind::open);
}

TEST(PollingCodecTest, AGetOrPostWithSidPollsOrSends) {
  auto get = classify("GET", "/socket.io/?EIO=4&transport=polling&sid=" + kSid);
  EXPECT_EQ(get.kind, RequestKind::poll);
  EXPECT_EQ(get.sid, kSid);
  auto post = classify("POST", "/socket.io/?EIO=4&transport=polling&sid=" + kSid);
  EXPECT_EQ(post.kind, RequestKind::send);
  EXPECT_EQ(post.sid, kSid);
}

TEST(PollingCodecTest, AWebSocketRequestWithSidIsAnUpgradeAndWithoutOneAWebSocketSession) {
  auto up = classify("GET", "/socket.io/?EIO=4&transport=websocket&sid=" + kSid, true);
  EXPECT_EQ(up.kind, RequestKind::upgrade);
  EXPECT_EQ(up.sid, kSid);
  EXPECT_EQ(classify("GET", "/socket.io/?EIO=4&transport=websocket", true).kind, RequestKind::websocket_open);
}

TEST(PollingCodecTest, AMissingOrUnknownTransportIsTransportUnknown) {
  for (auto t : {"/socket.io/?EIO=4", "/socket.io/?EIO=4&transport=abc",
                 "/socket.io/?EIO=4&transport=polling&transport=polling"}) {
    auto v = classify("GET", t);
    EXPECT_EQ(v.kind, RequestKind::refused) << t;
    EXPECT_EQ(v.error, ErrorCode::transport_unknown) << t;
  }
}

TEST(PollingCodecTest, AHandshakeOtherThanGetIsABadHandshakeMethod) {
  for (auto m : {"POST", "PUT", "DELETE"}) {
    auto v = classify(m, "/socket.io/?EIO=4&transport=polling");
    EXPECT_EQ(v.kind, RequestKind::refused);
    EXPECT_EQ(v.error, ErrorCode::bad_handshake_method);
  }
}

TEST(PollingCodecTest, AHandshakeWithoutEio4IsAnUnsupportedProtocolVersion) {
  for (auto t : {"/socket.io/?transport=polling", "/socket.io/?EIO=abc&transport=polling",
                 "/socket.io/?EIO=3&transport=polling"}) {
    auto v = classify("GET", t);
    EXPECT_EQ(v.kind, RequestKind::refused) << t;
    EXPECT_EQ(v.error, ErrorCode::unsupported_protocol_version) << t;
  }
  EXPECT_EQ(classify("GET", "/socket.io/?EIO=3&transport=websocket", true).error,
            ErrorCode::unsupported_protocol_version);
}

TEST(PollingCodecTest, TheWebSocketTransportOverPlainHttpOrPollingOverAnUpgradeIsABadRequest) {
  EXPECT_EQ(classify("GET", "/socket.io/?EIO=4&transport=websocket").error, ErrorCode::bad_request);
  EXPECT_EQ(classify("GET", "/socket.io/?EIO=4&transport=polling", true).error, ErrorCode::bad_request);
}

TEST(PollingCodecTest, ASidThatCannotBeOursIsUnknownWithoutALookup) {
  for (auto t : {"/socket.io/?EIO=4&transport=polling&sid=", "/socket.io/?EIO=4&transport=polling&sid=a%20b",
                 "/socket.io/?EIO=4&transport=polling&sid=x&sid=y"}) {
    auto v = classify("GET", t);
    EXPECT_EQ(v.kind, RequestKind::refused) << t;
    EXPECT_EQ(v.error, ErrorCode::session_id_unknown) << t;
  }
}

TEST(PollingCodecTest, OnASessionOnlyGetAndPostAreServed) {
  auto v = classify("PUT", "/socket.io/?EIO=4&transport=polling&sid=" + kSid);
  EXPECT_EQ(v.kind, RequestKind::refused);
  EXPECT_EQ(v.error, ErrorCode::bad_request);
}

TEST(PollingCodecTest, APostOfAnEngineIoV3BinaryPayloadIsABadRequest) {
  auto v = classify("POST", "/socket.io/?EIO=4&transport=polling&sid=" + kSid, false, "application/octet-stream");
  EXPECT_EQ(v.kind, RequestKind::refused);
  EXPECT_EQ(v.error, ErrorCode::bad_request);
  EXPECT_EQ(classify("POST", "/socket.io/?EIO=4&transport=polling&sid=" + kSid, false, "").kind, RequestKind::send);
}

}  // namespace
}  // namespace mn::polling
