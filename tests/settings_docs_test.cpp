// The settings are declared once, in the settings table (src/settings.h); the operator's
// settings reference (docs/operating.md, "Settings") must name every one of them and nothing
// else, and say what the table says about each: its default, its bounds, whether it reloads.
#include "settings.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

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

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(' '));
  s.erase(s.find_last_not_of(' ') + 1);
  return s;
}

std::string without_backticks(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '`'), s.end());
  return trim(s);
}

// One row of a settings table: the names in its first column (each `--flag` or environment
// variable quoted there) and its cells by column heading.
struct DocRow {
  std::vector<std::string> names;
  std::map<std::string, std::string> cells;
};

std::vector<std::string> split_cells(const std::string& line) {
  std::vector<std::string> cells;
  std::istringstream in(line.substr(1));
  for (std::string cell; std::getline(in, cell, '|');) cells.push_back(trim(cell));
  return cells;
}

// Every row of the tables under "## Settings". (No std::regex: g++ 12 warns inside it under
// the sanitizers' build, and warnings are errors.)
std::vector<DocRow> documented_rows() {
  std::ifstream in(std::string(MN_SOURCE_DIR) + "/docs/operating.md");
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const auto from = doc.find("\n## Settings");
  const auto to = doc.find("\n## ", from + 1);
  std::istringstream lines(doc.substr(from, to - from));
  std::vector<DocRow> rows;
  std::vector<std::string> headings;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("| setting |", 0) == 0) headings = split_cells(line);
    if (line.rfind("| `", 0) != 0) continue;
    DocRow row;
    const auto cells = split_cells(line);
    for (size_t i = 0; i < cells.size() && i < headings.size(); ++i) row.cells[headings[i]] = cells[i];
    const std::string& first = cells.at(0);
    for (size_t at = first.find('`'); at != std::string::npos; at = first.find('`', at + 1)) {
      const size_t end = first.find('`', at + 1);
      if (end == std::string::npos) break;
      row.names.push_back(first.substr(at + 1, end - at - 1));
      at = end;
    }
    rows.push_back(row);
  }
  return rows;
}

// The table's row for a documented name (a flag or an environment variable), or nullptr.
const mn::Setting* setting_named(const std::string& name) {
  for (const auto& row : mn::settings()) {
    if (name == std::string("--") + row.name || name == mn::env_name(row.name)) return &row;
  }
  return nullptr;
}

// Whether the docs' default `cell` is the row's default: the same value once parsed (sizes may
// be written in KiB or MiB).
bool same_value(const mn::Setting& row, std::string cell) {
  for (const auto& [unit, factor] : {std::pair<std::string, long>{" KiB", 1024}, {" MiB", 1024 * 1024}}) {
    if (cell.size() > unit.size() && cell.compare(cell.size() - unit.size(), unit.size(), unit) == 0)
      cell = std::to_string(std::stol(cell.substr(0, cell.size() - unit.size())) * factor);
  }
  mn::Config expected, documented;
  mn::set_value(row, row.default_value, expected);
  return mn::set_value(row, cell, documented) && mn::value_text(row, documented) == mn::value_text(row, expected);
}

}  // namespace

TEST(SettingsDocs, TheOperatorsReferenceNamesEverySettingAndNoOther) {
  std::set<std::string> documented;
  for (const auto& row : documented_rows())
    for (const auto& name : row.names)
      if (name.rfind("--", 0) == 0) documented.insert(name);
  const auto registered = registered_flags();
  ASSERT_FALSE(documented.empty()) << "no settings table found in docs/operating.md";
  for (const auto& f : registered) EXPECT_TRUE(documented.count(f)) << f << " is a setting but docs/operating.md does not list it";
  for (const auto& f : documented) EXPECT_TRUE(registered.count(f)) << f << " is in docs/operating.md but is no setting";
  for (const auto& row : mn::settings()) {
    if (row.source != mn::Source::environment) continue;
    bool listed = false;
    for (const auto& doc : documented_rows())
      for (const auto& name : doc.names) listed = listed || name == mn::env_name(row.name);
    EXPECT_TRUE(listed) << mn::env_name(row.name) << " (environment only) is not in docs/operating.md";
  }
}

TEST(SettingsDocs, TheOperatorsReferenceGivesEachSettingItsDefaultBoundsAndReloadability) {
  for (const auto& doc : documented_rows()) {
    std::vector<const mn::Setting*> rows;
    for (const auto& name : doc.names)
      if (const mn::Setting* row = setting_named(name)) rows.push_back(row);
    if (rows.empty()) continue;  // --config: no setting of its own
    const std::string& meaning = doc.cells.at("meaning");
    for (const mn::Setting* row : rows) {
      const std::string where = std::string("docs/operating.md, --") + row->name + ": ";
      // A default of nothing or 0 means "none" or a derived value, which the docs say in words.
      const std::string def = row->default_value;
      if (rows.size() == 1 && !def.empty() && def != "0") {
        EXPECT_TRUE(same_value(*row, without_backticks(doc.cells.at("default"))))
            << where << "default '" << doc.cells.at("default") << "', the table says " << def;
      }
      // Each end of the bounds, or each choice, is in the bounds column (or the meaning).
      const std::string bounds = doc.cells.count("bounds") ? doc.cells.at("bounds") : meaning;
      const mn::Bounds& b = row->bounds;
      std::vector<std::string> ends;
      if (b.choices) {
        std::istringstream list(b.choices);
        for (std::string c; std::getline(list, c, ',');) ends.push_back("`" + trim(c) + "`");
      }
      if (std::isfinite(b.lo)) ends.push_back(mn::bound_text(b.lo, b));
      if (std::isfinite(b.hi)) ends.push_back(mn::bound_text(b.hi, b));
      for (const auto& end : ends) {
        EXPECT_NE(bounds.find(end), std::string::npos) << where << "bounds do not say " << end << ": " << bounds;
      }
      // Reloadability: the reload column, or else the meaning mentions it for reloadable ones.
      if (doc.cells.count("reload")) {
        EXPECT_EQ(doc.cells.at("reload"), row->reloadable ? "yes" : "no") << where << "reload";
      } else {
        EXPECT_EQ(meaning.find("eload") != std::string::npos, row->reloadable) << where << "reload in: " << meaning;
      }
    }
  }
}
