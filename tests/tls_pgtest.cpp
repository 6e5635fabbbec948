// Built-in TLS (--tls-cert-file, --tls-key-file) with real clients: Node's `ws` and the stock
// socket.io-client over wss:// and https://, trusting a test CA that openssl makes here; a new
// certificate on SIGHUP for new connections while open ones carry on; TLS 1.1 refused.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "node/node_client.h"
#include "support/notifier_fixture.h"
#include "support/sidecar.h"

namespace mn::test {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TlsTest : public NotifierFixture {
 protected:
  void SetUp() override {
    NotifierFixture::SetUp();
    dir_ = testing::TempDir() + "/mn_tls_" + db();
    std::filesystem::create_directories(dir_);
    // A CA, and two server certificates it signed for 127.0.0.1 (CN first, CN second).
    ASSERT_EQ(sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem "
                 "-days 2 -subj '/CN=membership-notifier test CA'"),
              0);
    for (const char* cn : {"first", "second"}) {
      const std::string n(cn);
      ASSERT_EQ(sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " + n + ".key -out " + n +
                   ".csr -subj '/CN=" + n + "' && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost' > " + n +
                   ".ext && openssl x509 -req -in " + n + ".csr -CA ca.pem -CAkey ca.key -CAcreateserial -out " + n +
                   ".pem -days 2 -extfile " + n + ".ext"),
                0);
    }
    std::filesystem::copy_file(dir_ + "/first.pem", dir_ + "/server.pem");
    std::filesystem::copy_file(dir_ + "/first.key", dir_ + "/server.key");
    ca_ = slurp(dir_ + "/ca.pem");
    // /readyz is on the plain admin address: the harness's probe speaks no TLS.
    start_sidecar({"--tls-cert-file", dir_ + "/server.pem", "--tls-key-file", dir_ + "/server.key",
                   "--admin-listen", "127.0.0.1:0"});
  }
  void TearDown() override {
    NotifierFixture::TearDown();
    std::filesystem::remove_all(dir_);
  }
  int sh(const std::string& command) {
    return std::system(("cd '" + dir_ + "' && { " + command + "; } >/dev/null 2>&1").c_str());
  }
  std::unique_ptr<NodeClient> ws(const std::string& user, Json options = Json::object()) {
    options["ca"] = ca_;
    return std::make_unique<NodeClient>("wss://127.0.0.1:" + std::to_string(port()) + "/ws?access_token=" + token(user),
                                        options, "ws_client.js");
  }

  std::string dir_;
  std::string ca_;
};

TEST_F(TlsTest, ANodeWsClientTrustingTheTestCaGetsItsFramesOverWssWithTls12OrNewer) {
  EXPECT_NE(sidecar().log().find("(TLS)"), std::string::npos) << sidecar().log();
  auto c = ws("u1");
  Json open = c->expect("open");
  EXPECT_EQ(open.value("cn", ""), "first");
  EXPECT_TRUE(open.value("protocol", "") == "TLSv1.3" || open.value("protocol", "") == "TLSv1.2") << open.dump();
  EXPECT_EQ(c->expect("message")["data"].value("event", ""), "session");
  EXPECT_EQ(c->expect("message")["data"].value("event", ""), "channel.snapshot");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  Json joined = c->expect("message")["data"];
  EXPECT_EQ(joined.value("event", ""), "channel.joined");
  EXPECT_EQ(joined["data"].value("channelId", ""), "c1");
}

TEST_F(TlsTest, AClientThatDoesNotTrustTheCertificateOrOffersOnlyTls11GetsNoSocket) {
  auto untrusting = std::make_unique<NodeClient>("wss://127.0.0.1:" + std::to_string(port()) + "/ws?access_token=" + token("u1"),
                                                 Json::object(), "ws_client.js");
  EXPECT_EQ(untrusting->expect("error").value("code", ""), "UNABLE_TO_VERIFY_LEAF_SIGNATURE");
  // The server refuses TLS 1.1 (the client allows it, at OpenSSL security level 0).
  const std::string s_client = "echo | openssl s_client -connect 127.0.0.1:" + std::to_string(port()) +
                               " -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' -CAfile ca.pem";
  EXPECT_NE(sh(s_client), 0) << "a TLS 1.1 handshake succeeded";
  EXPECT_EQ(sh("echo | openssl s_client -connect 127.0.0.1:" + std::to_string(port()) + " -tls1_2 -CAfile ca.pem"), 0)
      << "TLS 1.2 should be served";
  EXPECT_EQ(sh("echo | openssl s_client -connect 127.0.0.1:" + std::to_string(port()) + " -tls1_3 -CAfile ca.pem"), 0);
}

TEST_F(TlsTest, AStockSocketIoClientConnectsOverHttpsAndReceivesEvents) {
  NodeClient c("https://127.0.0.1:" + std::to_string(port()),
               {{"auth", {{"token", token("u1")}}}, {"ca", ca_}, {"reconnection", false}});
  c.expect("connect");
  c.expect_event("channel.snapshot");
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  EXPECT_EQ(c.expect_event("channel.joined").value("channelId", ""), "c1");
}

TEST_F(TlsTest, OnSighupNewConnectionsGetTheNewCertificateWhileOpenSocketsCarryOn) {
  auto before = ws("u1");
  EXPECT_EQ(before->expect("open").value("cn", ""), "first");
  before->expect("message");  // session
  before->expect("message");  // snapshot
  NodeClient sio("https://127.0.0.1:" + std::to_string(port()),
                 {{"auth", {{"token", token("u1")}}}, {"ca", ca_}, {"reconnection", false}});
  sio.expect("connect");
  sio.expect_event("channel.snapshot");

  std::filesystem::copy_file(dir_ + "/second.pem", dir_ + "/server.pem", std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(dir_ + "/second.key", dir_ + "/server.key", std::filesystem::copy_options::overwrite_existing);
  const size_t from = sidecar().log().size();
  sidecar().signal(SIGHUP);
  ASSERT_TRUE(sidecar().wait_for_log("reloaded the TLS certificate", 5s, from)) << sidecar().log();

  auto after = ws("u1");
  EXPECT_EQ(after->expect("open").value("cn", ""), "second");
  after->expect("message");  // session
  after->expect("message");  // snapshot
  sql("INSERT INTO channel_members VALUES ('c1', 'u1')");
  EXPECT_EQ(before->expect("message")["data"].value("event", ""), "channel.joined") << "an open socket was dropped";
  EXPECT_EQ(after->expect("message")["data"].value("event", ""), "channel.joined");
  EXPECT_EQ(sio.expect_event("channel.joined").value("channelId", ""), "c1");

  // A broken pair keeps the running certificate.
  std::ofstream(dir_ + "/server.key", std::ios::trunc) << "not a key";
  const size_t from2 = sidecar().log().size();
  sidecar().signal(SIGHUP);
  ASSERT_TRUE(sidecar().wait_for_log("reload failed", 5s, from2)) << sidecar().log();
  EXPECT_EQ(ws("u2")->expect("open").value("cn", ""), "second");
}

}  // namespace
}  // namespace mn::test
