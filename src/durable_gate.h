// Durability: a client hears of a change only once the database cannot forget it.
//
// A commit becomes visible before its WAL is flushed when the application commits with
// synchronous_commit = off (common for chat backends): a crash then forgets a change that a
// client may already have been told of, and the log hands its id to another change. So every
// query whose rows go to clients also says whether the WAL was flushed past everything it
// could see (`kFlushedSql`: the flush position read after the insert position, both read after
// the query's snapshot was taken). When it was not, the sidecar commits a durable mark
// (membership_notifier.mark_delivered(true)), whose flush carries all WAL before it, and only
// then delivers; the listener's read instead makes its own commit the flush
// (kFlushesAtCommitSql). With --durable-standbys, it also waits until each named standby reports
// (pg_stat_replication) a flush past that point, polling every millisecond while it waits.
// Single-threaded: callbacks on the io_context's thread, on the connection given.
#pragma once

#include "config.h"
#include "pg_connection.h"

#include <asio.hpp>

#include <functional>
#include <memory>
#include <string>

namespace mn {

// SQL columns for a query that delivers: whether what it saw was flushed, and the WAL
// insert position (text) that bounds it.
inline constexpr const char* kFlushedSql = "pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn()";
inline constexpr const char* kInsertLsnSql = "pg_current_wal_insert_lsn()::text";
// For the reader's own statement (a single statement, its own transaction): true when the WAL
// was not flushed past what it saw, and its commit will flush it. A transactional logical
// message gives the statement an xid and a WAL record, so with synchronous_commit local its
// commit record is flushed before the answer (ReadyForQuery) comes back, and with it all WAL
// before. One round trip instead of a read and a mark; nothing when the WAL was flushed.
inline const std::string kFlushesAtCommitSql =
    std::string("CASE WHEN ") + kFlushedSql + " THEN false" +
    " ELSE pg_catalog.set_config('synchronous_commit', 'local', true) IS NOT NULL"
    " AND pg_catalog.pg_logical_emit_message(true, 'membership_notifier', '') IS NOT NULL END";

// Calls `then` with an empty string once what a query saw is durable as configured (`flushed`,
// `insert_lsn`: its two columns above), or with the error that stopped it. If the connection
// breaks meanwhile, `then` is not called (its owner reconnects and reads again).
void await_durable(asio::io_context& io, const Config& cfg, std::shared_ptr<PgConnection> conn, bool flushed,
                   const std::string& insert_lsn, std::function<void(const std::string& error)> then);

}  // namespace mn
