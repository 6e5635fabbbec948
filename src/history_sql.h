// The statements History (history.h) runs for connecting clients: the snapshot of a user's
// memberships, the replay of the log since a position, and how far behind a position is.
#pragma once

namespace mn {

// Builds, on the server, the snapshot query for the configured mapping: column names are
// quoted by format(%I) there, never pasted together here.
inline constexpr const char* kSnapshotSqlBuilder =
    "SELECT s.log_id::text, a.atttypid::regtype::text, format("
    "  'SELECT s.snap::text, m.u, m.c, m.x, s.flushed, s.lsn FROM (SELECT pg_current_snapshot() AS snap, "
    "   pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn() AS flushed, pg_current_wal_insert_lsn()::text AS lsn) s "
    "   LEFT JOIN LATERAL (SELECT r.%2$I::text AS u, r.%3$I::text AS c, %4$s AS x FROM %1$s r "
    "   WHERE r.%2$I = ANY($1::%5$s[])) m ON true',"
    "  s.member_table::regclass, s.user_column, s.channel_column,"
    "  membership_notifier.xtype_expr('r', s.channel_column, s.xtype_column,"
    "                                 s.channels_table::regclass, s.channels_key),"
    "  format_type(a.atttypid, NULL))"
    " FROM membership_notifier.settings s"
    " JOIN pg_attribute a ON a.attrelid = s.member_table::regclass AND a.attname = s.user_column";

// Rows of a batch's users (and TRUNCATE rows) that some position of the batch has not seen:
// every transaction from $1 on, and those listed in $2 (in progress at some position's base;
// $3 is the least of them, or $1), with every row of such a transaction read so that times
// follow the rule of make_times_distinct() (event.h), as the live events' did:
// t = rank + max(stored - rank) over the transaction's rows so far, in id order. Each client
// then takes what its own position has not seen (replay_batch.h). Also what decides whether a
// position can be honoured at all: how far pruning has gone, and which log this is.
// The first arm is bounded above too, which filters nothing (later transactions are invisible
// to this statement anyway): as in the reader (log_read_sql.cpp), a range bounded on both
// sides is estimated small, an index range scan. Unbounded, with the log's statistics lagging
// behind its writes, a read from a recent position can be planned as a scan of the whole log.
inline constexpr const char* kReplaySql =
    "SELECT s.snap::text, e.id, e.xid::text, e.op::text, e.channel_id, e.user_id, e.xtype,"
    "       e.t_us, st.pruned_through::text, st.log_id::text, s.flushed, s.lsn, tl.timeline, tl.marks"
    "  FROM (SELECT pg_current_snapshot() AS snap, pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn() AS flushed,"
    "               pg_current_wal_insert_lsn()::text AS lsn) s"
    "  CROSS JOIN (SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::integer AS timeline,"
    "                     (SELECT string_agg(d.timeline || ':' || d.through, ',')"
    "                        FROM membership_notifier.delivered d) AS marks) tl"
    "  CROSS JOIN membership_notifier.settings st"
    "  LEFT JOIN LATERAL ("
    "    SELECT * FROM ("
    "      SELECT w.*, w.rn + max(w.us - w.rn) OVER (PARTITION BY w.xid ORDER BY w.id) AS t_us FROM ("
    "        SELECT l.*, (extract(epoch FROM l.occurred_at) * 1000000)::bigint AS us,"
    "               row_number() OVER (PARTITION BY l.xid ORDER BY l.id) AS rn"
    "          FROM membership_notifier.event_log l"
    "         WHERE l.xid IN (SELECT c.xid FROM ("
    "           SELECT l.xid, l.user_id, l.op FROM membership_notifier.event_log l"
    "            WHERE l.xid >= $1::xid8 AND l.xid < pg_snapshot_xmax(pg_current_snapshot())"
    "           UNION ALL"
    "           SELECT l.xid, l.user_id, l.op FROM membership_notifier.event_log l"
    "            WHERE l.xid >= $3::xid8 AND l.xid < $1::xid8 AND l.xid = ANY ($2::xid8[])) c"
    "           WHERE c.user_id = ANY ($4::text[]) OR c.op = 't')) w) x"
    "     WHERE x.user_id = ANY ($4::text[]) OR x.op = 't') e ON true"
    " ORDER BY e.id";

// How far behind each position is, in log rows (anyone's): the newest row's id less the
// lowest id among the first rows at or after the position's xmax, through the key. Ids count
// rows; the first few rows rather than the first, since a transaction that logs long after it
// took its id has a late id. An estimate, for --max-replay-rows: each position is two short
// walks of the key, whatever the log's size.
inline constexpr const char* kBehindSql =
    "SELECT x::text, n.id - (SELECT min(f.id) FROM (SELECT l.id FROM membership_notifier.event_log l"
    "                        WHERE l.xid >= x ORDER BY l.xid, l.id LIMIT 10) f)"
    "  FROM unnest($1::xid8[]) x,"
    "       (SELECT max(t.id) AS id FROM (SELECT l.id FROM membership_notifier.event_log l"
    "                                     ORDER BY l.xid DESC, l.id DESC LIMIT 10) t) n";

}  // namespace mn
