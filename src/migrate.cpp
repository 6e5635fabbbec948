#include "migrate.h"

#include "sql_embedded.h"

#include <pqxx/pqxx>

#include <map>

namespace mn {
namespace {

// Prints the server's NOTICEs (the migration says what it installed through them).
class NoticePrinter final : public pqxx::errorhandler {
 public:
  NoticePrinter(pqxx::connection_base& c, std::ostream& out) : pqxx::errorhandler(c), out_(out) {}
  bool operator()(const char msg[]) noexcept override {
    std::string m = msg;
    if (m.rfind("NOTICE:  ", 0) == 0) m = m.substr(9);
    out_ << "  " << m;
    return false;
  }

 private:
  std::ostream& out_;
};

// The status counts the log's rows up to this many: a count of the whole log reads all of it.
constexpr long long kLogRowsCounted = 1000000;

// "N rows" up to kLogRowsCounted; past it, the planner's estimate (-1: never analyzed).
std::string log_rows(long long counted, long long estimated) {
  if (counted <= kLogRowsCounted) return std::to_string(counted) + " rows";
  return "more than " + std::to_string(kLogRowsCounted) + " rows (" +
         (estimated >= 0 ? "about " + std::to_string(estimated) + " by the planner's statistics"
                         : std::string("not yet analyzed")) + ")";
}

void print_status(pqxx::connection& conn, std::ostream& out) {
  pqxx::nontransaction tx(conn);
  auto installed = tx.exec("SELECT to_regclass('membership_notifier.settings') IS NOT NULL");
  if (!installed[0][0].as<bool>()) {
    out << "not installed (schema membership_notifier does not exist)\n";
    return;
  }
  auto s = tx.exec(
      std::string(
      "SELECT schema_version, log_id, member_table, channel_column, user_column,"
      "       coalesce(xtype_column, ''), coalesce(channels_table, ''), coalesce(channels_key, ''),"
      "       pruned_through::text,"
      "       (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = to_regclass(member_table)"
      "          AND t.tgname LIKE 'membership\\_notifier\\_%' AND t.tgenabled <> 'D'),"
      // Counted up to a million rows, and its oldest transaction's first row through the key:
      // a count and a min() read the whole log, seconds at 24 h of retention.
      "       (SELECT count(*) FROM (SELECT FROM membership_notifier.event_log LIMIT ") +
      std::to_string(kLogRowsCounted + 1) + ") c),"
      "       (SELECT occurred_at::text FROM membership_notifier.event_log ORDER BY xid, id LIMIT 1),"
      "       (SELECT count(*) FROM membership_notifier.listener),"
      // A client's current state is read by user (history.cpp, up to 1,000 users a query):
      // without an index that starts with the user column, each such query reads the whole
      // membership table, and a restart's reconnecting clients make hundreds of them.
      "       (SELECT string_agg(i.indexrelid::regclass::text, ', ') FROM pg_index i"
      "          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
      "         WHERE i.indrelid = to_regclass(member_table) AND a.attname = user_column"
      "           AND i.indisvalid AND i.indpred IS NULL),"
      "       format('CREATE INDEX CONCURRENTLY ON %s (%I)', member_table, user_column),"
      "       (SELECT reltuples::bigint FROM pg_class WHERE oid = 'membership_notifier.event_log'::regclass)"
      "  FROM membership_notifier.settings");
  if (s.empty()) {
    out << "schema present but not configured (settings empty): run `migrate up`\n";
    return;
  }
  auto r = s[0];
  std::string xtype = r[5].as<std::string>();
  std::string channels = r[6].as<std::string>();
  out << "installed: schema version " << r[0].as<int>() << ", log " << r[1].as<std::string>() << "\n"
      << "  table:     " << r[2].as<std::string>() << " (channel " << r[3].as<std::string>() << ", user "
      << r[4].as<std::string>() << ")\n"
      << "  xType:     "
      << (xtype.empty() ? "none" : channels.empty() ? "column " + xtype : channels + "." + xtype + " by " + r[7].as<std::string>())
      << "\n"
      << "  triggers:  " << r[9].as<int>() << " of 4 enabled\n"
      << "  log:       " << log_rows(r[10].as<long long>(), r[15].as<long long>()) << ", oldest "
      << (r[11].is_null() ? "-" : r[11].as<std::string>()) << ", pruned through xid " << r[8].as<std::string>() << "\n"
      << "  listeners: " << r[12].as<long long>() << "\n";
  if (!r[13].is_null()) {
    out << "  snapshots: by index " << r[13].as<std::string>() << "\n";
  } else {
    out << "  snapshots: WARNING: no index starts with the user column, so every snapshot query (a "
           "client's current state) reads the whole table; add one: "
        << r[14].as<std::string>() << "\n";
  }
}

}  // namespace

int migrate_up(const std::string& url, const Mapping& m, std::ostream& out) {
  try {
    pqxx::connection conn(url);
    NoticePrinter notices(conn, out);
    {
    pqxx::nontransaction tx(conn);
    const std::map<std::string, std::string> values = {
        {"member_table", m.table},           {"channel_column", m.channel_column},
        {"user_column", m.user_column}, {"xtype_column", m.xtype_column},
        {"channels_table", m.channels_table}, {"channels_key", m.channels_key}};
    for (const auto& name : m.given) {
      tx.exec("SELECT set_config('membership_notifier." + name + "', " + tx.quote(values.at(name)) + ", false)");
    }
    out << "applying up migration\n";
    tx.exec(sql::kUp);
    }
    out << "done: ";
    print_status(conn, out);
    return 0;
  } catch (const std::exception& e) {
    out << "migrate up failed: " << e.what() << "\n";
    return 1;
  }
}

int migrate_down(const std::string& url, std::ostream& out) {
  try {
    pqxx::connection conn(url);
    NoticePrinter notices(conn, out);
    {
      pqxx::nontransaction tx(conn);
      out << "applying down migration\n";
      tx.exec(sql::kDown);
    }
    out << "done: ";
    print_status(conn, out);
    return 0;
  } catch (const std::exception& e) {
    out << "migrate down failed: " << e.what() << "\n";
    return 1;
  }
}

int migrate_status(const std::string& url, std::ostream& out) {
  try {
    pqxx::connection conn(url);
    print_status(conn, out);
    return 0;
  } catch (const std::exception& e) {
    out << "migrate status failed: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace mn
