// What a /ws client may send (plain_protocol.h): a token refresh, and nothing else.
#include "plain_protocol.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace mn {
namespace {

using plain::ClientMessage;

TEST(ClientMessage, ARefreshCarriesItsTokenWithoutABearerPrefix) {
  auto m = plain::parse_client_message(R"({"event":"refresh","data":{"token":"a.b.c"}})");
  EXPECT_EQ(m.kind, ClientMessage::refresh);
  EXPECT_EQ(m.token, "a.b.c");
  EXPECT_EQ(plain::parse_client_message(R"({"event":"refresh","data":{"token":"Bearer x.y.z"}})").token, "x.y.z");
}

TEST(ClientMessage, ARefreshWithoutAStringTokenIsInvalidAndSaysWhyWithoutEchoingIt) {
  for (const char* text : {R"({"event":"refresh"})", R"({"event":"refresh","data":"tok"})",
                           R"({"event":"refresh","data":{"token":42}})", R"({"event":"refresh","data":{"token":""}})"}) {
    auto m = plain::parse_client_message(text);
    EXPECT_EQ(m.kind, ClientMessage::invalid) << text;
    EXPECT_FALSE(m.error.empty()) << text;
    EXPECT_EQ(m.error.find("tok\""), std::string::npos);
  }
}

TEST(ClientMessage, AnythingElseIsUnknown) {
  for (const char* text : {"hello", "[]", R"({"event":"ping"})", R"({"event":["refresh"]})", "", "{"}) {
    EXPECT_EQ(plain::parse_client_message(text).kind, ClientMessage::unknown) << text;
  }
}

TEST(ClientMessage, TheRefreshedFrameSaysUntilWhenTheSocketStaysOpenInUnixSecondsOrNull) {
  EXPECT_EQ(nlohmann::json::parse(plain::refreshed_frame(1700000000.0)),
            nlohmann::json::parse(R"({"event":"refreshed","data":{"validUntil":1700000000}})"));
  EXPECT_TRUE(nlohmann::json::parse(plain::refreshed_frame(std::nullopt))["data"]["validUntil"].is_null());
}

}  // namespace
}  // namespace mn
