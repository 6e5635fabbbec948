// The test support itself: if these fail, every other test's verdict is suspect.
// A small websocketpp server stands in for the sidecar so the clients are tested against a
// real peer without depending on the code they are meant to test.
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include <gtest/gtest.h>

#include <thread>

#include "support/http.h"
#include "support/pg_cluster.h"
#include "support/ws_client.h"

namespace mn::test {
namespace {

using namespace std::chrono_literals;

// Bound but never listening: connecting is refused, and no one else can take the port.
uint16_t closed_port() {
  static const uint16_t port = [] {
    static asio::io_context io;
    static asio::ip::tcp::socket s(io);
    s.open(asio::ip::tcp::v4());
    s.bind({asio::ip::make_address("127.0.0.1"), 0});
    return s.local_endpoint().port();
  }();
  return port;
}

TEST(PgClusterTest, TheSharedClusterAnswersQueriesBeforeAndAfterAnImmediateRestart) {
  PgCluster& pg = shared_cluster();
  EXPECT_EQ(pg.query("SELECT 1").at(0).at(0).as<int>(), 1);
  const pid_t before = pg.pid();
  pg.restart_immediate();
  EXPECT_NE(pg.pid(), before);
  EXPECT_EQ(pg.query("SELECT 1").at(0).at(0).as<int>(), 1);
}

TEST(PgClusterTest, ACreatedDatabaseIsReachableThroughConninfoAndUri) {
  PgCluster& pg = shared_cluster();
  // --gtest_repeat keeps the shared cluster (and this database) from the previous round.
  pg.exec("DROP DATABASE IF EXISTS support_smoke");
  pg.create_database("support_smoke");
  EXPECT_EQ(pg.query("SELECT current_database()", "support_smoke").at(0).at(0).as<std::string>(),
            "support_smoke");
  pqxx::connection c{pg.uri("support_smoke")};
  EXPECT_EQ(std::string(c.dbname()), "support_smoke");
}

TEST(PgClusterTest, ATcpClusterListensOnTheLoopbackPortItReports) {
  PgCluster pg(PgCluster::Options{true, false, {"application_name=smoke"}});
  pg.start();
  ASSERT_NE(pg.tcp_port(), 0);
  pqxx::connection c{pg.tcp_conninfo()};
  pqxx::nontransaction tx{c};
  EXPECT_EQ(tx.exec("SELECT inet_server_addr()::text").at(0).at(0).as<std::string>(), "127.0.0.1/32");
  EXPECT_EQ(tx.exec("SHOW fsync").at(0).at(0).as<std::string>(), "off");
}

TEST(PgClusterTest, StoppingTheServerRemovesItsProcessAndStartAgainBringsItBack) {
  PgCluster pg;
  pg.start();
  const pid_t pid = pg.pid();
  pg.stop();
  EXPECT_FALSE(pg.running());
  EXPECT_NE(::kill(pid, 0), 0) << "postmaster " << pid << " still exists";
  pg.start_again();
  EXPECT_EQ(pg.query("SELECT 2").at(0).at(0).as<int>(), 2);
}

TEST(ClientTest, AWebSocketClientToAPortWithNothingListeningReportsStatusZero) {
  auto ws = WsClient::connect(closed_port(), "/ws", {}, 2s);
  EXPECT_EQ(ws->handshake_status(), 0);
  EXPECT_FALSE(ws->is_open());
  EXPECT_FALSE(ws->next(50ms).has_value());
}

TEST(ClientTest, AnHttpGetToAPortWithNothingListeningReportsStatusZero) {
  EXPECT_EQ(http_get(closed_port(), "/readyz", {}, 2s).status, 0);
}

// An echo server: "/deny" is refused with 401, "/readyz" answers over plain HTTP, the text
// "close-me" is answered with close code 4001.
class EchoServer {
 public:
  using Server = websocketpp::server<websocketpp::config::asio>;
  EchoServer() {
    server_.clear_access_channels(websocketpp::log::alevel::all);
    server_.clear_error_channels(websocketpp::log::elevel::all);
    server_.init_asio();
    server_.set_validate_handler([this](websocketpp::connection_hdl h) {
      auto con = server_.get_con_from_hdl(h);
      if (con->get_resource() != "/deny") return true;
      con->set_status(websocketpp::http::status_code::unauthorized);
      con->set_body("no token");
      return false;
    });
    server_.set_http_handler([this](websocketpp::connection_hdl h) {
      auto con = server_.get_con_from_hdl(h);
      con->set_status(websocketpp::http::status_code::ok);
      con->append_header("X-Path", con->get_resource());
      con->set_body("ready");
    });
    server_.set_message_handler([this](websocketpp::connection_hdl h, Server::message_ptr msg) {
      if (msg->get_payload() == "close-me") {
        server_.close(h, 4001, "bye");
      } else {
        server_.send(h, msg->get_payload(), msg->get_opcode());
      }
    });
    server_.listen(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    server_.start_accept();
    websocketpp::lib::error_code ec;
    port_ = server_.get_local_endpoint(ec).port();
    thread_ = std::thread([this] { server_.run(); });
  }
  ~EchoServer() {
    server_.stop();
    thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  Server server_;
  uint16_t port_ = 0;
  std::thread thread_;
};

TEST(ClientTest, AWebSocketClientExchangesMessagesAndSeesTheServersCloseCode) {
  EchoServer server;
  auto ws = WsClient::connect(server.port(), "/ws?x=1", {{"Authorization", "Bearer t"}});
  ASSERT_EQ(ws->handshake_status(), 101) << ws->error();
  ASSERT_TRUE(ws->is_open());
  ws->send_text(R"({"hello":"world"})");
  ws->send_text("second");
  const auto json = ws->next_json();
  ASSERT_TRUE(json.has_value());
  EXPECT_EQ(json->at("hello"), "world");
  EXPECT_EQ(ws->drain(), std::vector<std::string>{"second"});
  ws->send_text("close-me");
  ASSERT_TRUE(ws->wait_closed());
  EXPECT_EQ(ws->close_code(), 4001);
  EXPECT_EQ(ws->close_reason(), "bye");
  EXPECT_FALSE(ws->next(50ms).has_value());
}

TEST(ClientTest, ARefusedHandshakeReportsTheServersStatusAndBody) {
  EchoServer server;
  auto ws = WsClient::connect(server.port(), "/deny");
  EXPECT_EQ(ws->handshake_status(), 401);
  EXPECT_FALSE(ws->is_open());
  EXPECT_EQ(ws->handshake_body(), "no token");
}

TEST(ClientTest, HttpGetReturnsStatusLowercasedHeadersAndBody) {
  EchoServer server;
  const HttpResponse r = http_get(server.port(), "/readyz?probe=1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ready");
  ASSERT_EQ(r.headers.count("x-path"), 1u);
  EXPECT_EQ(r.headers.at("x-path"), "/readyz?probe=1");
}

TEST(ClientTest, ARawClientSeesAProtocolErrorCloseAfterSendingAnUnmaskedFrame) {
  EchoServer server;
  auto raw = RawTcpWsClient::connect(server.port(), "/ws", {}, 4096);
  ASSERT_TRUE(raw->handshake_ok()) << raw->handshake_response();
  ASSERT_TRUE(raw->send_frame(0x1, "masked"));
  const auto echo = raw->read_frame();
  ASSERT_TRUE(echo.has_value());
  EXPECT_EQ(echo->opcode, 0x1);
  EXPECT_EQ(echo->payload, "masked");
  ASSERT_TRUE(raw->send_frame(0x1, "unmasked", true, false));
  const auto close = raw->read_frame();
  ASSERT_TRUE(close.has_value());
  EXPECT_EQ(close->opcode, 0x8);
  EXPECT_EQ(close->close_code(), 1002);
  EXPECT_TRUE(raw->peer_closed());
}

TEST(ClientTest, APausedClientReceivesWhatWasHeldBackOnceItResumes) {
  EchoServer server;
  auto ws = WsClient::connect(server.port(), "/ws");
  ASSERT_TRUE(ws->is_open());
  ws->stop_reading();
  // The read already in flight when the pause lands still completes: it takes "first".
  ws->send_text("first");
  EXPECT_EQ(ws->next().value_or(""), "first");
  ws->send_text("held");
  EXPECT_FALSE(ws->next(300ms).has_value());
  ws->resume_reading();
  EXPECT_EQ(ws->next().value_or(""), "held");
}

}  // namespace
}  // namespace mn::test
