// The settings are declared once, in config.cpp's table; the operator's settings reference
// (docs/operating.md, "Settings") must name every one of them, and nothing else.
#include "config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace {

std::set<std::string> registered_flags() {
  CLI::App app;
  mn::Config cfg;
  mn::register_serve_options(app, cfg);
  std::set<std::string> flags;
  for (const CLI::Option* opt : app.get_options()) {
    for (const auto& name : opt->get_lnames()) flags.insert("--" + name);
  }
  flags.erase("--help");
  flags.erase("--version");
  return flags;
}

// Every `--flag` in the first column of the settings tables under "## Settings".
std::set<std::string> documented_flags() {
  std::ifstream in(std::string(MN_SOURCE_DIR) + "/docs/operating.md");
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const auto from = doc.find("\n## Settings");
  const auto to = doc.find("\n## ", from + 1);
  const std::string section = doc.substr(from, to - from);
  std::set<std::string> flags;
  std::istringstream lines(section);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("| `", 0) != 0) continue;
    const std::string first = line.substr(0, line.find('|', 1));
    // Each `--flag` quoted in the first column. (No std::regex: g++ 12 warns inside it under
    // the sanitizers' build, and warnings are errors.)
    for (size_t at = first.find("`--"); at != std::string::npos; at = first.find("`--", at + 1)) {
      const size_t end = first.find('`', at + 1);
      if (end != std::string::npos) flags.insert(first.substr(at + 1, end - at - 1));
    }
  }
  return flags;
}

}  // namespace

TEST(SettingsDocs, TheOperatorsReferenceNamesEverySettingAndNoOther) {
  const auto registered = registered_flags();
  const auto documented = documented_flags();
  ASSERT_FALSE(documented.empty()) << "no settings table found in docs/operating.md";
  for (const auto& f : registered) EXPECT_TRUE(documented.count(f)) << f << " is a setting but docs/operating.md does not list it";
  for (const auto& f : documented) EXPECT_TRUE(registered.count(f)) << f << " is in docs/operating.md but is no setting";
}
