// The reader's statement (EventLogReader::read_sql() and its session settings): what it reads,
// and why its plan stays an index range scan of the log's key.
#include "durable_gate.h"
#include "event_log_reader.h"

#include <string>

namespace mn {

const char* EventLogReader::read_sql() {
  // One statement, one snapshot: the first row carries pg_current_snapshot(), the snapshot
  // every other row was read in. Rows are those of transactions from the previous snapshot's
  // xmax on ($1) and of those it saw in progress ($2): exactly what it could not see. Two plain
  // arms, not a LATERAL or OR form: it runs on every wake-up, and those cost more to plan than
  // this costs to run (the OR form also scanned the whole log). The caller sorts by id.
  // Each arm is bounded on both sides, which filters nothing (a later transaction is invisible
  // to this snapshot; the in-progress ones lie between the previous xmin and xmax): it is there
  // for the planner. The generic plan (session_sql()) estimates a one-sided range at a third
  // of the log, and `xid = ANY ($2)` at all of it after a backfill: a sequential scan on every
  // read, growing with retention. A range bounded on both sides is estimated small: an index
  // range scan.
  // The snapshot row also says how full the notification queue is, and whether the WAL was
  // flushed past what the read saw; when it was not, the statement's own commit flushes it
  // (kFlushesAtCommitSql, durable_gate.h), so its rows are durable once its answer is in.
  // Times as microseconds through date_part's float8, not extract's numeric, whose division and
  // multiplication cost about as much as the rest of a row's read. Exact until 2106-02-07
  // (2^32 s): the division and the multiplication each round once, by at most 0.24 and 0.25 us,
  // and the cast to bigint rounds to the nearest, the stored value
  // (TheReaderReadsEveryTimeToTheMicrosecondAsAReplayDoes checks it against extract's).
  static const std::string sql =
      std::string("SELECT pg_current_snapshot()::text, NULL::bigint, NULL::text, NULL::text, NULL::text,"
                  "       NULL::text, NULL::text, NULL::bigint, pg_notification_queue_usage(), ") +
      kFlushesAtCommitSql + ", " + kInsertLsnSql +
      " UNION ALL"
      " SELECT NULL, l.id, l.xid::text, l.op::text, l.channel_id, l.user_id, l.xtype,"
      "        (date_part('epoch', l.occurred_at) * 1000000)::bigint, NULL, NULL, NULL"
      "   FROM membership_notifier.event_log l"
      "  WHERE l.xid >= $1::xid8 AND l.xid < pg_snapshot_xmax(pg_current_snapshot())"
      " UNION ALL"
      " SELECT NULL, l.id, l.xid::text, l.op::text, l.channel_id, l.user_id, l.xtype,"
      "        (date_part('epoch', l.occurred_at) * 1000000)::bigint, NULL, NULL, NULL"
      "   FROM membership_notifier.event_log l"
      "  WHERE l.xid = ANY ($2::xid8[]) AND l.xid >= $3::xid8 AND l.xid < $1::xid8";
  return sql.c_str();
}

const char* EventLogReader::session_sql() {
  // The read runs hundreds of times a second under load. Left to choose, PostgreSQL plans it
  // afresh each time (a custom plan looks cheaper than the generic one), and planning costs
  // more than the run. The generic plan, an index range scan of the key (read_sql() says why it
  // is one), suits a few rows and a catch-up. No JIT: that plan's estimated cost grows with the
  // log, and past jit_above_cost every read would be compiled, many times its cost to run.
  return "SELECT set_config('plan_cache_mode', 'force_generic_plan', false), set_config('jit', 'off', false)";
}

PgConnection::Params EventLogReader::read_params(const PgSnapshot& since) {
  return {std::to_string(since.xmax), xid8_array(since.xip), std::to_string(since.xmin)};
}

}  // namespace mn
