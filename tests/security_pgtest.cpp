// Who may connect to /ws and what they may see, against the real sidecar, a real PostgreSQL
// and real clients on 127.0.0.1: every bad token is refused at the handshake with 401 and a
// JSON error and never reaches a room; the room is the verified user's alone; tokens never
// reach the log; SIGHUP swaps the keys for new handshakes.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "support/http.h"
#include "support/jwt_mint.h"
#include "support/notifier_fixture.h"
#include "support/sidecar.h"
#include "support/ws_client.h"

namespace mn::test {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// How the handshake went and what came back, for assertion messages.
std::string refusal(const WsClient& c) {
  return "status " + std::to_string(c.handshake_status()) + ", body: " + c.handshake_body() + ", error: " + c.error();
}

// The "code" of a refusal's JSON body ({"event":"error","data":{"code":…}}), or what was wrong.
std::string refusal_code(const WsClient& c) {
  try {
    const Json body = Json::parse(c.handshake_body());
    return body.at("data").at("code").get<std::string>();
  } catch (const std::exception& e) {
    return std::string("<not a JSON error body: ") + e.what() + ">";
  }
}

// One way to get a token wrong, and the code the refusal must carry.
struct BadToken {
  BadToken(std::string w, std::string p, HeaderList h = {}, std::string c = "invalid_token")
      : what(std::move(w)), path(std::move(p)), headers(std::move(h)), code(std::move(c)) {}
  std::string what;
  std::string path;    // request target
  HeaderList headers;  // e.g. Authorization
  std::string code;
};

class SecurityTest : public NotifierFixture {
 protected:
  // A sidecar with exactly these flags besides the database and the listen address (the
  // fixture's start_sidecar always adds its own HS256 secret file).
  Sidecar& serve(const std::vector<std::string>& flags) {
    std::vector<std::string> args = {"serve", "--database-url", conninfo(), "--listen", "127.0.0.1:0",
                                     "--poll-interval", "200ms"};
    args.insert(args.end(), flags.begin(), flags.end());
    sidecar().start(args);
    EXPECT_TRUE(sidecar().wait_ready()) << sidecar().log();
    return sidecar();
  }

  std::string write_file(const std::string& name, const std::string& content) {
    const std::string path = testing::TempDir() + "/mn_" + db() + "_" + name;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
    return path;
  }


  // Opens /ws with `token` in the query and takes the session frame and the snapshot.
  std::unique_ptr<WsClient> open_with(const std::string& token, Json* session = nullptr,
                                      const HeaderList& headers = {}, const std::string& path = "") {
    auto c = WsClient::connect(port(), path.empty() ? "/ws?access_token=" + token : path, headers);
    EXPECT_EQ(c->handshake_status(), 101) << refusal(*c);
    if (!c->is_open()) return c;
    auto first = c->next_json();
    EXPECT_TRUE(first && first->value("event", "") == "session") << (first ? first->dump() : "nothing");
    if (first && session) *session = *first;
    auto snap = c->next_json();
    EXPECT_TRUE(snap && snap->value("event", "") == "channel.snapshot") << (snap ? snap->dump() : "nothing");
    return c;
  }

  // Each bad token is refused with 401 and its code, opens nothing and receives nothing.
  void expect_all_refused(const std::vector<BadToken>& cases) {
    std::vector<std::unique_ptr<WsClient>> refused;
    for (const auto& bad : cases) {
      auto c = WsClient::connect(port(), bad.path, bad.headers);
      EXPECT_EQ(c->handshake_status(), 401) << bad.what << ": " << refusal(*c);
      EXPECT_FALSE(c->is_open()) << bad.what;
      EXPECT_EQ(refusal_code(*c), bad.code) << bad.what << ": " << c->handshake_body();
      refused.push_back(std::move(c));
    }
    for (size_t i = 0; i < refused.size(); ++i) {
      EXPECT_FALSE(refused[i]->next(10ms).has_value()) << cases[i].what << " received a message";
    }
  }
};

// ---- Authentication at the handshake ------------------------------------------------------

TEST_F(SecurityTest, AValidTokenInTheBearerHeaderOrInTheAccessTokenQueryOpensASessionForItsUser) {
  start_sidecar();
  Json by_header_session, by_query_session;
  auto by_header = open_with("", &by_header_session, {{"Authorization", "Bearer " + token("u1")}}, "/ws");
  auto by_query = open_with(token("u1"), &by_query_session);
  ASSERT_TRUE(by_header->is_open());
  ASSERT_TRUE(by_query->is_open());
  EXPECT_EQ(by_header_session["data"]["userId"], "u1");
  EXPECT_EQ(by_query_session["data"]["userId"], "u1");

  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  EXPECT_EQ(events(*by_header), std::vector<std::string>{"joined c1 u1"});
  EXPECT_EQ(events(*by_query), std::vector<std::string>{"joined c1 u1"});
}

TEST_F(SecurityTest, EveryBadHs256TokenGets401WithAJsonCodeAndNeverReachesTheRoomOfItsUser) {
  const std::string secret_file = write_file("secret", kTestSecret);
  serve({"--jwt-secret-file", secret_file, "--jwt-audience", "notifier", "--jwt-issuer", "https://chat.example"});
  const Json good = {{"sub", "u1"}, {"exp", now_s() + 3600}, {"aud", "notifier"}, {"iss", "https://chat.example"}};
  auto with = [&good](const Json& changes) {
    Json c = good;
    for (const auto& [k, v] : changes.items()) {
      if (v.is_null()) c.erase(k);
      else c[k] = v;
    }
    return c;
  };
  const std::string valid = mint_hs256(kTestSecret, good);
  const Json hs_header = {{"alg", "HS256"}, {"typ", "JWT"}};
  const std::string valid_signature = valid.substr(valid.rfind('.') + 1);
  const std::string u2_payload = base64url(with({{"sub", "u2"}}).dump());
  const std::string tampered =
      valid.substr(0, valid.find('.')) + "." + u2_payload + "." + valid_signature;
  auto q = [](const std::string& t) { return "/ws?access_token=" + t; };

  // A valid client of the same user, connected first: it is how we see where events go.
  Json session;
  auto witness = open_with(valid, &session);
  ASSERT_TRUE(witness->is_open());
  EXPECT_EQ(session["data"]["userId"], "u1");

  const std::vector<BadToken> cases = {
      {"no token at all", "/ws", {}, "missing_token"},
      {"an empty access_token", q(""), {}, "missing_token"},
      {"an Authorization header that is not Bearer", "/ws", {{"Authorization", "Basic " + valid}}, "missing_token"},
      {"two access_token parameters", q(valid) + "&access_token=" + valid, {}, "missing_token"},
      {"signed with another secret", q(mint_hs256("another-secret-0123456789abcdef-0123", good))},
      {"claims changed after signing", q(tampered)},
      {"signature cut off", q(valid.substr(0, valid.rfind('.') + 1))},
      {"expired an hour ago", q(mint_hs256(kTestSecret, with({{"exp", now_s() - 3600}})))},
      {"not valid for another hour (nbf)", q(mint_hs256(kTestSecret, with({{"nbf", now_s() + 3600}})))},
      {"no exp", q(mint_hs256(kTestSecret, with({{"exp", nullptr}})))},
      {"alg none, unsigned", q(mint_raw({{"alg", "none"}, {"typ", "JWT"}}, good, ""))},
      {"alg none, with the valid token's signature", q(mint_raw({{"alg", "none"}, {"typ", "JWT"}}, good, valid_signature))},
      {"alg None, unsigned", q(mint_raw({{"alg", "None"}, {"typ", "JWT"}}, good, ""))},
      {"alg none in the header", "/ws", {{"Authorization", "Bearer " + mint_raw({{"alg", "none"}}, good, "")}}},
      {"alg HS512 over the right secret", q(hmac_sha256_token({{"alg", "HS512"}, {"typ", "JWT"}}, good, kTestSecret))},
      {"wrong audience", q(mint_hs256(kTestSecret, with({{"aud", "someone-else"}})))},
      {"no audience", q(mint_hs256(kTestSecret, with({{"aud", nullptr}})))},
      {"wrong issuer", q(mint_hs256(kTestSecret, with({{"iss", "https://evil.example"}})))},
      {"no issuer", q(mint_hs256(kTestSecret, with({{"iss", nullptr}})))},
      {"an empty user", q(mint_hs256(kTestSecret, with({{"sub", ""}})))},
      {"no user claim", q(mint_hs256(kTestSecret, with({{"sub", nullptr}})))},
      {"garbage", q("garbage")},
      {"three dots of garbage", q("a.b.c")},
      {"a JSON object instead of a JWT", q("%7B%22sub%22%3A%22u1%22%7D")},
      {"garbage in the header", "/ws", {{"Authorization", "Bearer not.a.jwt"}}},
      {"a 9 KiB token", "/ws", {{"Authorization", "Bearer " + std::string(9 * 1024, 'A')}}},
      {"a valid header and payload with base64 garbage as signature", q(mint_raw(hs_header, good, "!!!!"))},
  };
  expect_all_refused(cases);

  // The change is for u1, the user every refused token named: only the valid socket gets it.
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  EXPECT_EQ(events(*witness), std::vector<std::string>{"joined c1 u1"});
  const std::string m = metrics();
  EXPECT_EQ(metric(m, "membership_notifier_sessions"), 1) << m;
  EXPECT_EQ(metric(m, "membership_notifier_refused_unauthorized_total"), static_cast<double>(cases.size())) << m;
}

TEST_F(SecurityTest, AnRs256SidecarAcceptsRs256TokensAndRefusesAnHs256TokenSignedWithItsPublicKey) {
  const KeyPair rsa = generate_rsa_keypair();
  const KeyPair other = generate_rsa_keypair();
  const KeyPair ec = generate_ec_p256_keypair();
  const std::string pem_file = write_file("rsa.pem", rsa.public_pem);
  serve({"--jwt-algorithm", "RS256", "--jwt-public-key-file", pem_file});

  const Json claims = claims_for("u1");
  Json session;
  auto valid = open_with(mint_rs256(rsa.private_pem, claims), &session);
  ASSERT_TRUE(valid->is_open());
  EXPECT_EQ(session["data"]["userId"], "u1");

  std::string pem_trimmed = rsa.public_pem;
  while (!pem_trimmed.empty() && pem_trimmed.back() == '\n') pem_trimmed.pop_back();
  auto q = [](const std::string& t) { return "/ws?access_token=" + t; };
  const std::vector<BadToken> cases = {
      {"HS256 signed with the public key PEM (alg confusion)", q(mint_hs256(rsa.public_pem, claims))},
      {"HS256 signed with the PEM minus its newline", q(mint_hs256(pem_trimmed, claims))},
      {"HS256 signed with the PEM, in the header", "/ws", {{"Authorization", "Bearer " + mint_hs256(rsa.public_pem, claims)}}},
      {"alg RS256 but an HMAC made with the PEM", q(hmac_sha256_token({{"alg", "RS256"}, {"typ", "JWT"}}, claims, rsa.public_pem))},
      {"RS256 signed by another key", q(mint_rs256(other.private_pem, claims))},
      {"ES256 token", q(mint_es256(ec.private_pem, claims))},
      {"alg none", q(mint_raw({{"alg", "none"}, {"typ", "JWT"}}, claims, ""))},
      {"expired RS256", q(mint_rs256(rsa.private_pem, claims_for("u1", -2h)))},
  };
  expect_all_refused(cases);

  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  EXPECT_EQ(events(*valid), std::vector<std::string>{"joined c1 u1"});
  EXPECT_EQ(metric(metrics(), "membership_notifier_sessions"), 1);
}

TEST_F(SecurityTest, AnEs256SidecarAcceptsEs256TokensOfItsKeyAndNothingElse) {
  const KeyPair ec = generate_ec_p256_keypair();
  const KeyPair other_ec = generate_ec_p256_keypair();
  const KeyPair rsa = generate_rsa_keypair();
  const std::string pem_file = write_file("ec.pem", ec.public_pem);
  serve({"--jwt-algorithm", "ES256", "--jwt-public-key-file", pem_file});

  const Json claims = claims_for("u1");
  Json session;
  auto valid = open_with(mint_es256(ec.private_pem, claims), &session);
  ASSERT_TRUE(valid->is_open());
  EXPECT_EQ(session["data"]["userId"], "u1");
  auto by_header = open_with("", nullptr, {{"Authorization", "Bearer " + mint_es256(ec.private_pem, claims)}}, "/ws");
  ASSERT_TRUE(by_header->is_open());

  auto q = [](const std::string& t) { return "/ws?access_token=" + t; };
  const std::vector<BadToken> cases = {
      {"ES256 signed by another key", q(mint_es256(other_ec.private_pem, claims))},
      {"HS256 signed with the public key PEM (alg confusion)", q(mint_hs256(ec.public_pem, claims))},
      {"RS256 token", q(mint_rs256(rsa.private_pem, claims))},
      {"alg none", q(mint_raw({{"alg", "none"}, {"typ", "JWT"}}, claims, ""))},
  };
  expect_all_refused(cases);

  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  EXPECT_EQ(events(*valid), std::vector<std::string>{"joined c1 u1"});
  EXPECT_EQ(events(*by_header), std::vector<std::string>{"joined c1 u1"});
}

TEST_F(SecurityTest, WithJwtUserClaimUidTheRoomIsTheUidClaimNotTheSubject) {
  start_sidecar({"--jwt-user-claim", "uid"});
  Json session;
  auto c = open_with(mint_hs256(kTestSecret, {{"uid", "u7"}, {"sub", "u8"}, {"exp", now_s() + 3600}}), &session);
  ASSERT_TRUE(c->is_open());
  EXPECT_EQ(session["data"]["userId"], "u7");
  // A token with a subject but no uid proves no user here.
  expect_all_refused({{"only sub, no uid", "/ws?access_token=" + token("u7")}});

  sql("INSERT INTO channel_members VALUES ('c1', 'u8'), ('c2', 'u7')");
  EXPECT_EQ(events(*c), std::vector<std::string>{"joined c2 u7"});
}

// ---- Rooms --------------------------------------------------------------------------------

TEST_F(SecurityTest, NoQueryParameterOrClientMessageMovesASocketIntoAnotherUsersRoom) {
  start_sidecar();
  auto u2 = connect("u2");
  Json session;
  auto u1 = open_with("", &session, {},
                      "/ws?access_token=" + token("u1") + "&user=u2&userId=u2&room=user%3Au2&sub=u2&uid=u2");
  ASSERT_TRUE(u1->is_open());
  EXPECT_EQ(session["data"]["userId"], "u1");

  const std::vector<std::string> attempts = {
      R"({"join":"user:u2"})",
      R"({"event":"join","data":{"room":"user:u2"}})",
      R"({"event":"subscribe","data":{"userId":"u2"}})",
      Json({{"access_token", token("u2")}}).dump(),
      "40" + Json({{"token", token("u2")}}).dump(),  // a Socket.IO CONNECT with u2's token
      "user:u2",
  };
  for (const auto& text : attempts) {
    u1->send_text(text);
    auto reply = u1->next_json();
    ASSERT_TRUE(reply.has_value()) << "no answer to " << text;
    EXPECT_EQ(reply->value("event", ""), "error") << reply->dump();
    EXPECT_EQ((*reply)["data"].value("code", ""), "unexpected_message") << reply->dump();
  }
  ASSERT_TRUE(u1->is_open());

  sql("INSERT INTO channel_members VALUES ('c1', 'u2')");
  sql("INSERT INTO channel_members VALUES ('c2', 'u1'), ('c3', 'u2')");
  sql("DELETE FROM channel_members WHERE channel_id = 'c1'");
  EXPECT_EQ(events(*u1), std::vector<std::string>{"joined c2 u1"});
  EXPECT_EQ(events(*u2), (std::vector<std::string>{"joined c1 u2", "joined c3 u2", "left c1 u2"}));
}

TEST_F(SecurityTest, TwoUsersEachSeeOnlyTheirOwnChangesIncludingAnUpdateThatMovesARowBetweenThem) {
  start_sidecar();
  auto u1 = connect("u1");
  auto u2 = connect("u2");
  sql("INSERT INTO channel_members VALUES ('a', 'u1'), ('b', 'u2')");
  sql("BEGIN; INSERT INTO channel_members VALUES ('c', 'u2'); INSERT INTO channel_members VALUES ('d', 'u1'); COMMIT");
  sql("UPDATE channel_members SET user_id = 'u2' WHERE channel_id = 'a'");
  sql("DELETE FROM channel_members WHERE channel_id IN ('b', 'd')");
  EXPECT_EQ(events(*u1), (std::vector<std::string>{"joined a u1", "joined d u1", "left a u1", "left d u1"}));
  EXPECT_EQ(events(*u2), (std::vector<std::string>{"joined b u2", "joined c u2", "joined a u2", "left b u2"}));
}

TEST_F(SecurityTest, EverySocketOfOneUserReceivesEveryEventInTheSameOrder) {
  start_sidecar();
  std::vector<std::unique_ptr<WsClient>> sockets;
  for (int i = 0; i < 3; ++i) sockets.push_back(connect("u1"));
  sockets.push_back(open_with("", nullptr, {{"Authorization", "Bearer " + token("u1")}}, "/ws"));
  auto other = connect("u2");

  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  sql("INSERT INTO channel_members VALUES ('c2', 'u1'), ('c3', 'u1'), ('c3', 'u2')");
  sql("DELETE FROM channel_members WHERE channel_id = 'c1'");
  const std::vector<std::string> expected = {"joined c1 u1", "joined c2 u1", "joined c3 u1", "left c1 u1"};
  for (size_t i = 0; i < sockets.size(); ++i) EXPECT_EQ(events(*sockets[i]), expected) << "socket " << i;
  EXPECT_EQ(events(*other), std::vector<std::string>{"joined c3 u2"});

  // One of them leaving changes nothing for the rest.
  sockets[0]->close();
  ASSERT_TRUE(sockets[0]->wait_closed());
  sql("INSERT INTO channel_members VALUES ('c4', 'u1')");
  for (size_t i = 1; i < sockets.size(); ++i)
    EXPECT_EQ(events(*sockets[i]), std::vector<std::string>{"joined c4 u1"}) << "socket " << i;
  EXPECT_TRUE(sockets[0]->drain(100ms).empty());
}

TEST_F(SecurityTest, AChangeForAUserWithNoSocketIsANoOpAndALaterConnectSeesItOnlyInItsSnapshot) {
  start_sidecar();
  auto u1 = connect("u1");
  sql("INSERT INTO channel_members VALUES ('c9', 'u9')");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  EXPECT_EQ(events(*u1), std::vector<std::string>{"joined c1 u1"});
  const std::string m = metrics();
  EXPECT_EQ(metric(m, "membership_notifier_users"), 1) << m;

  Json snapshot;
  auto u9 = connect("u9", "", 0, nullptr, &snapshot);
  ASSERT_TRUE(u9->is_open());
  ASSERT_EQ(snapshot["data"]["channels"].size(), 1u) << snapshot.dump();
  EXPECT_EQ(snapshot["data"]["channels"][0]["channelId"], "c9");
  EXPECT_TRUE(events(*u9).empty()) << "the change before the connect must not also come as an event";
  EXPECT_TRUE(sidecar().running());
  EXPECT_EQ(sidecar().log().find(" error "), std::string::npos) << sidecar().log();
}

// ---- Logs and reloads ---------------------------------------------------------------------

TEST_F(SecurityTest, NoTokenGoodOrBadEverAppearsInTheSidecarLog) {
  start_sidecar();
  const Json claims = claims_for("u1");
  const std::vector<std::string> good = {token("u1"), mint_hs256(kTestSecret, claims_for("u2"))};
  const std::vector<std::string> bad = {
      mint_hs256("another-secret-0123456789abcdef-0123", claims),
      mint_hs256(kTestSecret, claims_for("u1", -2h)),
      mint_raw({{"alg", "none"}, {"typ", "JWT"}}, claims, ""),
      "garbage-token-that-must-not-be-logged-4f1c2e",
      mint_hs256(kTestSecret, {{"sub", "u1"}}),  // no exp
  };
  {
    std::vector<std::unique_ptr<WsClient>> open;
    open.push_back(open_with(good[0]));
    open.push_back(open_with("", nullptr, {{"Authorization", "Bearer " + good[1]}}, "/ws"));
    for (const auto& t : bad) {
      EXPECT_EQ(WsClient::connect(port(), "/ws?access_token=" + t)->handshake_status(), 401);
      EXPECT_EQ(WsClient::connect(port(), "/ws", {{"Authorization", "Bearer " + t}})->handshake_status(), 401);
    }
    sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
    EXPECT_EQ(events(*open[0]), std::vector<std::string>{"joined c1 u1"});
  }  // the good sockets close here: their disconnect lines are logged too
  ASSERT_TRUE(sidecar().wait_for_log("disconnect session=1"));
  ASSERT_TRUE(sidecar().wait_for_log("disconnect session=2"));
  sidecar().signal(SIGTERM);
  ASSERT_EQ(sidecar().wait_exit(), 0);

  const std::string log = sidecar().log();
  ASSERT_NE(log.find("refused"), std::string::npos) << "the refusals should be logged (without tokens)";
  std::vector<std::string> all = good;
  all.insert(all.end(), bad.begin(), bad.end());
  for (const auto& t : all) {
    EXPECT_EQ(log.find(t), std::string::npos) << "token logged: " << t;
    // No part of a token either: header, claims or signature.
    std::istringstream parts(t);
    for (std::string part; std::getline(parts, part, '.');) {
      if (part.size() < 16) continue;
      EXPECT_EQ(log.find(part), std::string::npos) << "token part logged: " << part;
    }
  }
  EXPECT_EQ(log.find(kTestSecret), std::string::npos) << "the secret was logged";
}

TEST_F(SecurityTest, AfterSighupNewHandshakesNeedTheNewSecretAndOpenSessionsCarryOn) {
  const std::string old_secret = kTestSecret;
  const std::string new_secret = "rotated-secret-fedcba9876543210-fedcba98";
  const std::string file = write_file("secret", old_secret);
  serve({"--jwt-secret-file", file});
  auto before = open_with(mint_hs256(old_secret, claims_for("u1")));
  ASSERT_TRUE(before->is_open());

  std::ofstream(file, std::ios::trunc) << new_secret << "\n";
  size_t mark = sidecar().log().size();
  sidecar().signal(SIGHUP);
  ASSERT_TRUE(sidecar().wait_for_log("reloaded JWT settings", 5s, mark)) << sidecar().log();

  Json session;
  auto after = open_with(mint_hs256(new_secret, claims_for("u2")), &session);
  ASSERT_TRUE(after->is_open());
  EXPECT_EQ(session["data"]["userId"], "u2");
  expect_all_refused({{"a token of the old secret", "/ws?access_token=" + mint_hs256(old_secret, claims_for("u1"))}});

  sql("INSERT INTO channel_members VALUES ('c1', 'u1'), ('c2', 'u2')");
  EXPECT_EQ(events(*before), std::vector<std::string>{"joined c1 u1"}) << "an open session keeps its identity";
  EXPECT_EQ(events(*after), std::vector<std::string>{"joined c2 u2"});

  // A reload that cannot be applied (no secret, or one shorter than 32 bytes) keeps the
  // running keys.
  for (const std::string& bad : {std::string(), std::string("short-secret-31-bytes-long-xxxx")}) {
    std::ofstream(file, std::ios::trunc) << bad;
    mark = sidecar().log().size();
    sidecar().signal(SIGHUP);
    ASSERT_TRUE(sidecar().wait_for_log("reload failed", 5s, mark)) << sidecar().log();
    EXPECT_TRUE(open_with(mint_hs256(new_secret, claims_for("u3")))->is_open());
    expect_all_refused({{"a token signed with the refused secret", "/ws?access_token=" + mint_hs256(bad, claims_for("u3"))}});
  }
  EXPECT_TRUE(sidecar().running());
}

// The unit's own commands, run as systemd would run them (paths moved into the test's temporary
// folder, "+" commands as this user): the key file the operator rewrites reaches the running
// sidecar on reload, and only the new key opens sessions afterwards.
TEST_F(SecurityTest, TheSystemdUnitsReloadCommandsRotateTheKeyOfTheRunningService) {
  const std::string etc = testing::TempDir() + "/mn_" + db() + "_etc";
  const std::string run = testing::TempDir() + "/mn_" + db() + "_run";
  for (const auto& dir : {etc, run}) ASSERT_TRUE(::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST) << dir;
  auto relocate = [&](std::string line) {
    for (const auto& [from, to] : {std::pair<std::string, std::string>{"/etc/membership-notifier", etc},
                                   {"/run/membership-notifier", run}}) {
      for (size_t at; (at = line.find(from)) != std::string::npos;) line.replace(at, from.size(), to);
    }
    return line;
  };
  std::vector<std::string> start_pre, reload;
  std::map<std::string, std::string> env;
  std::ifstream unit(std::string(MN_SOURCE_DIR) + "/systemd/membership-notifier.service");
  ASSERT_TRUE(unit);
  for (std::string line; std::getline(unit, line);) {
    auto value = [&line, &relocate](const std::string& key) { return relocate(line.substr(key.size())); };
    if (line.rfind("ExecStartPre=+", 0) == 0) start_pre.push_back(value("ExecStartPre=+"));
    if (line.rfind("ExecReload=", 0) == 0) reload.push_back(value("ExecReload="));
    if (line.rfind("Environment=MEMBERSHIP_NOTIFIER_JWT_", 0) == 0) {
      const std::string kv = value("Environment=");
      env[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
    }
  }
  ASSERT_EQ(env.count("MEMBERSHIP_NOTIFIER_JWT_SECRET_FILE"), 1u) << "the unit must name the key file";
  ASSERT_FALSE(reload.empty());

  const std::string old_secret = kTestSecret;
  const std::string new_secret = "rotated-by-systemctl-reload-0123456789abcdef";
  std::ofstream(etc + "/jwt-secret") << old_secret << "\n";
  for (const auto& cmd : start_pre) ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  sidecar().start({"serve", "--database-url", conninfo(), "--listen", "127.0.0.1:0", "--poll-interval", "200ms"}, env);
  ASSERT_TRUE(sidecar().wait_ready()) << sidecar().log();
  auto before = open_with(mint_hs256(old_secret, claims_for("u1")));
  ASSERT_TRUE(before->is_open());

  std::ofstream(etc + "/jwt-secret", std::ios::trunc) << new_secret << "\n";
  const size_t mark = sidecar().log().size();
  for (auto cmd : reload) {
    if (cmd[0] == '+') cmd.erase(0, 1);
    for (size_t at; (at = cmd.find("$MAINPID")) != std::string::npos;)
      cmd.replace(at, 8, std::to_string(sidecar().pid()));
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  ASSERT_TRUE(sidecar().wait_for_log("reloaded JWT settings", 5s, mark)) << sidecar().log();
  EXPECT_TRUE(open_with(mint_hs256(new_secret, claims_for("u2")))->is_open());
  expect_all_refused({{"a token of the key before the reload", "/ws?access_token=" + mint_hs256(old_secret, claims_for("u1"))}});
  EXPECT_TRUE(before->is_open()) << "an open session is not dropped by a reload";
}

}  // namespace
}  // namespace mn::test
