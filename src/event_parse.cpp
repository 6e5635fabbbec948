// parse_row() (event.h): a result row of PostgreSQL to a LogRow. Apart from event.cpp, which
// stays free of libpq so the fuzz targets build it alone.
#include "event.h"
#include "pg_connection.h"

namespace mn {

std::optional<LogRow> parse_row(const PgResult& r, int i) {
  LogRow row;
  if (r.is_null(i, 1) || r.is_null(i, 2) || r.is_null(i, 3) || r.is_null(i, 7)) return std::nullopt;
  if (!parse_int(r.get(i, 1), row.id) || !parse_int(r.get(i, 2), row.xid) ||
      !parse_int(r.get(i, 7), row.occurred_at_us))
    return std::nullopt;
  row.op = std::string(r.get(i, 3));
  row.channel_id = r.get_opt(i, 4);
  row.user_id = r.get_opt(i, 5);
  row.xtype = r.get_opt(i, 6);
  return row;
}

}  // namespace mn
