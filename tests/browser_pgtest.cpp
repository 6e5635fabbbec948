// The browser example (examples/browser) in a real browser: headless Chromium loads each page
// from the example's static server, memberships change in PostgreSQL, and the page's channel
// list (its DOM) must come to equal the table's, live, while the sidecar is down and after it
// restarts. tests/node/browser.mjs drives Chromium over the DevTools Protocol; each test saves a
// screenshot in the working directory (the build's tests/ under ctest) and prints its path.
//
// MN_BROWSER_SIO_TRANSPORTS (e.g. "websocket") is passed to the default-options Socket.IO test's
// page as ?transports=; unset, the page uses socket.io-client's default options, as a stock
// application does.
#include "node/node_client.h"
#include "support/notifier_fixture.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace mn::test {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

const char* kChromium = "/usr/bin/chromium";  // Debian's chromium package

class Browser : public NotifierFixture {
 protected:
  void SetUp() override {
    NotifierFixture::SetUp();
    ASSERT_EQ(access(kChromium, X_OK), 0) << kChromium << " is missing: run scripts/install-deps.sh";
    browser_ = std::make_unique<NodeClient>("-", Json{{"chromium", kChromium}}, "browser.mjs");
    // Chromium's first start on a loaded machine can take seconds.
    origin_ = browser_->expect("ready", 60s).value("origin", "");
    ASSERT_FALSE(origin_.empty()) << browser_->transcript();
    port_ = free_port();
  }
  void TearDown() override {
    if (browser_) {
      browser_->command(R"({"cmd":"exit"})");
      browser_->expect("exited", 10s);
    }
    NotifierFixture::TearDown();
  }

  // The sidecar on a fixed port (a restart must come back on it), accepting the pages' origin only.
  void start() { start_sidecar({"--listen", "127.0.0.1:" + std::to_string(port_), "--allowed-origins", origin_}); }
  void stop() {
    sidecar().signal(SIGTERM);
    ASSERT_EQ(sidecar().wait_exit(), 0);
  }

  // Opens `page` in a new tab named `tab`, with the sidecar's address and a token for `user` in
  // the fragment, as examples/browser/README.md says.
  void open(const std::string& tab, const std::string& page, const std::string& user, const std::string& query = "",
            const std::string& origin = "") {
    const std::string url = (origin.empty() ? origin_ : origin) + "/" + page + query +
                            "#server=http://127.0.0.1:" + std::to_string(port_) + "&token=" + token(user);
    browser_->command(Json{{"cmd", "open"}, {"tab", tab}, {"url", url}}.dump());
    browser_->expect("opened", 20s);
  }

  // Waits until the tab's channel list is `channels` and its #status has the data-* attributes
  // in `status`; fails the test, with the page's state and console, if that does not happen.
  Json wait(const std::string& tab, const Json& channels, const Json& status, std::chrono::milliseconds timeout = 20s) {
    if (HasFailure()) return Json::object();  // the first failure explains; the rest would only wait
    browser_->command(Json{{"cmd", "wait"}, {"tab", tab}, {"channels", channels}, {"status", status},
                           {"timeout", timeout.count()}}
                          .dump());
    Json dom = browser_->expect("dom", timeout + 10s);
    EXPECT_EQ(dom.value("matched", false), true)
        << "the page shows " << dom.value("channels", Json()).dump() << " with status " << dom.value("status", Json()).dump()
        << " (\"" << dom.value("text", "") << "\"), expected " << channels.dump() << " with " << status.dump()
        << "\npage console:\n"
        << dom.value("console", Json::array()).dump(2);
    return dom;
  }

  void screenshot(const std::string& tab, const std::string& name) {
    const std::string path = (std::filesystem::current_path() / name).string();
    browser_->command(Json{{"cmd", "screenshot"}, {"tab", tab}, {"path", path}}.dump());
    Json r = browser_->expect("screenshot", 20s);
    EXPECT_GT(r.value("bytes", 0), 1000) << r.dump();
    std::printf("screenshot: %s\n", path.c_str());
  }

  // The user's channels as the table has them, sorted.
  Json table_channels(const std::string& user) {
    Json out = Json::array();
    for (const auto& row : query("SELECT channel_id FROM channel_members WHERE user_id = '" + user +
                                 "' ORDER BY channel_id"))
      out.push_back(row[0].as<std::string>());
    return out;
  }

  void stock_page_follows_the_table(const std::string& transports, const std::string& transport,
                                    const std::string& screenshot_name);

  std::unique_ptr<NodeClient> browser_;
  std::string origin_;
  uint16_t port_ = 0;
};

TEST_F(Browser, TheLibraryPageShowsTheTablesChannelsLiveThroughASidecarRestartAndResumesAfterAReload) {
  sql("INSERT INTO channel_members VALUES ('general', 'u1'), ('random', 'u2')");
  start();
  open("library", "library.html", "u1");
  wait("library", Json::array({"general"}), {{"state", "connected"}, {"recovered", "false"}});

  sql("INSERT INTO channel_members VALUES ('design', 'u1'), ('ops', 'u2'), ('support', 'u1')");
  sql("DELETE FROM channel_members WHERE channel_id = 'general' AND user_id = 'u1'");
  wait("library", table_channels("u1"), {{"state", "connected"}});

  stop();
  wait("library", table_channels("u1"), {{"state", "disconnected"}});
  sql("INSERT INTO channel_members VALUES ('while-down', 'u1'), ('random', 'u1')");
  sql("DELETE FROM channel_members WHERE channel_id = 'design'");
  ASSERT_EQ(table_channels("u1"), Json::array({"random", "support", "while-down"}));
  start();
  // The library reconnects with its offset and is given every change it missed.
  wait("library", table_channels("u1"), {{"state", "connected"}, {"recovered", "true"}});

  sql("INSERT INTO channel_members VALUES ('after-restart', 'u1')");
  sql("DELETE FROM channel_members WHERE channel_id = 'support'");
  wait("library", table_channels("u1"), {{"state", "connected"}});
  screenshot("library", "browser-library.png");

  // localStorage kept the offset with the channel set: a reload resumes instead of taking a snapshot.
  sql("INSERT INTO channel_members VALUES ('before-reload', 'u1')");
  wait("library", table_channels("u1"), {{"state", "connected"}});
  browser_->command(R"({"cmd":"reload","tab":"library"})");
  browser_->expect("reloaded");
  wait("library", table_channels("u1"), {{"state", "connected"}, {"recovered", "true"}});
  sql("DELETE FROM channel_members WHERE channel_id = 'random' AND user_id = 'u1'");
  wait("library", table_channels("u1"), {{"state", "connected"}});
}

// The stock socket.io-client page with ?transports=<transports> (its default options when
// empty): it follows the table, and after a sidecar restart it reconnects by itself, with its
// session id and last offset, and recovers what changed meanwhile. `transport` is the one it
// must end on.
void Browser::stock_page_follows_the_table(const std::string& transports, const std::string& transport,
                                            const std::string& screenshot_name) {
  sql("INSERT INTO channel_members VALUES ('general', 'u1'), ('random', 'u2')");
  start();
  open("socketio", "socketio.html", "u1", transports.empty() ? "" : "?transports=" + transports);
  wait("socketio", Json::array({"general"}), {{"state", "connected"}, {"recovered", "false"}, {"transport", transport}});

  sql("INSERT INTO channel_members VALUES ('design', 'u1'), ('ops', 'u2'), ('support', 'u1')");
  sql("DELETE FROM channel_members WHERE channel_id = 'general' AND user_id = 'u1'");
  wait("socketio", table_channels("u1"), {{"state", "connected"}});

  stop();
  wait("socketio", table_channels("u1"), {{"state", "disconnected"}});
  sql("INSERT INTO channel_members VALUES ('while-down', 'u1'), ('random', 'u1')");
  sql("DELETE FROM channel_members WHERE channel_id = 'design'");
  ASSERT_EQ(table_channels("u1"), Json::array({"random", "support", "while-down"}));
  start();
  wait("socketio", table_channels("u1"), {{"state", "connected"}, {"recovered", "true"}});

  sql("INSERT INTO channel_members VALUES ('after-restart', 'u1')");
  sql("DELETE FROM channel_members WHERE channel_id = 'support'");
  wait("socketio", table_channels("u1"), {{"state", "connected"}, {"transport", transport}});
  screenshot("socketio", screenshot_name);
}

TEST_F(Browser, TheStockSocketIoPageWithDefaultOptionsUpgradesToWebSocketFollowsTheTableAndRecoversAfterARestart) {
  // Long-polling first, then the upgrade. MN_BROWSER_SIO_TRANSPORTS replaces the defaults.
  const char* env = std::getenv("MN_BROWSER_SIO_TRANSPORTS");
  const std::string transports = env ? env : "";
  stock_page_follows_the_table(transports,
                               transports.empty() || transports.find("websocket") != std::string::npos ? "websocket"
                                                                                                       : "polling",
                               "browser-socketio.png");
}

TEST_F(Browser, TheStockSocketIoPageOnLongPollingOnlyFollowsTheTableAndRecoversAfterARestart) {
  // What a browser behind a proxy that blocks WebSocket does: every request cross-origin XHR.
  stock_page_follows_the_table("polling", "polling", "browser-socketio-polling.png");
}

TEST_F(Browser, APageFromAnOriginNotInAllowedOriginsGetsNoSocket) {
  sql("INSERT INTO channel_members VALUES ('general', 'u1')");
  start();
  // The same server by another name is another origin to the browser and to the sidecar.
  const std::string other = "http://localhost:" + origin_.substr(origin_.rfind(':') + 1);
  open("refused", "library.html", "u1", "", other);
  wait("refused", Json::array(), {{"state", "disconnected"}});
  EXPECT_GE(metric(metrics(), "membership_notifier_refused_origin_total"), 1);
  open("allowed", "library.html", "u1");
  wait("allowed", Json::array({"general"}), {{"state", "connected"}});
}

}  // namespace
}  // namespace mn::test
