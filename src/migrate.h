// Migrate: `membership-notifier migrate up|down|status`. Runs the very SQL of sql/up.sql and
// sql/down.sql (embedded at build time) through libpqxx, blocking: a command-line tool, not
// part of the event loop. The SQL takes its own advisory lock, so concurrent runs queue.
#pragma once

#include "config.h"

#include <ostream>
#include <string>

namespace mn {

// Each returns a process exit code and prints what it did (or why it failed) to `out`.
int migrate_up(const std::string& database_url, const Mapping& mapping, std::ostream& out);
int migrate_down(const std::string& database_url, std::ostream& out);
int migrate_status(const std::string& database_url, std::ostream& out);

}  // namespace mn
