#include "metrics_text.h"

#include "event_log_reader.h"
#include "history.h"
#include "hub.h"
#include "janitor.h"
#include "ws_server.h"

#include <sstream>

namespace mn {

std::string metrics_text(const WsServer& server, const Hub& hub, const History& history,
                         const EventLogReader& reader, const Janitor& janitor) {
  std::ostringstream m;
  auto gauge = [&m](const char* name, const char* help, double v) {
    m << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " gauge\n" << name << ' ' << v << '\n';
  };
  auto counter = [&m](const char* name, const char* help, double v) {
    m << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " counter\n" << name << ' ' << v << '\n';
  };
  const auto& s = server.stats();
  const auto& h = hub.stats();
  const auto& r = reader.stats();
  gauge("membership_notifier_ready", "1 when the listener is connected and caught up", reader.ready() ? 1 : 0);
  gauge("membership_notifier_sockets", "Open TCP connections", static_cast<double>(server.open_sockets()));
  gauge("membership_notifier_sessions", "Authenticated sessions", static_cast<double>(hub.rooms().sessions()));
  gauge("membership_notifier_users", "Users with at least one session", static_cast<double>(hub.rooms().users()));
  gauge("membership_notifier_polling_sessions", "Socket.IO sessions on the long-polling transport",
        static_cast<double>(server.polling_sessions()));
  counter("membership_notifier_accepted_total", "TCP connections accepted", static_cast<double>(s.accepted));
  counter("membership_notifier_refused_unauthorized_total", "Handshakes refused with 401", static_cast<double>(s.refused_unauthorized));
  counter("membership_notifier_refused_capacity_total", "Connections refused over the limit", static_cast<double>(s.refused_over_capacity));
  counter("membership_notifier_bad_messages_total", "Client messages that were refused", static_cast<double>(s.bad_messages));
  counter("membership_notifier_ping_timeouts_total", "Peers dropped for not answering pings", static_cast<double>(s.ping_timeouts));
  gauge("membership_notifier_unauthenticated", "Connections not yet authenticated", static_cast<double>(server.unauthenticated()));
  counter("membership_notifier_unauthenticated_cut_total",
          "Unauthenticated connections cut to make room for newer ones (--max-unauthenticated, per address)",
          static_cast<double>(s.unauthenticated_cut));
  counter("membership_notifier_refused_per_user_total", "Connections refused over --max-connections-per-user",
          static_cast<double>(s.refused_per_user));
  counter("membership_notifier_refused_origin_total", "Handshakes refused with 403 for their Origin",
          static_cast<double>(s.refused_origin));
  counter("membership_notifier_closed_too_many_messages_total", "Clients closed (4029) for sending too many messages",
          static_cast<double>(s.closed_too_many_messages));
  counter("membership_notifier_replies_withheld_total",
          "Pongs and replies not queued because their client had too much unsent", static_cast<double>(s.replies_withheld));
  counter("membership_notifier_tokens_expired_total", "Sockets closed (4001) when their token expired",
          static_cast<double>(s.tokens_expired));
  counter("membership_notifier_refreshes_total", "In-band token refreshes accepted", static_cast<double>(s.refreshes));
  counter("membership_notifier_refreshes_refused_total", "In-band token refreshes refused (4003)",
          static_cast<double>(s.refreshes_refused));
  counter("membership_notifier_events_total", "Log rows mapped to events", static_cast<double>(h.events_mapped));
  counter("membership_notifier_events_unmappable_total", "Log rows that could not be mapped", static_cast<double>(h.events_unmappable));
  counter("membership_notifier_frames_sent_total", "Frames handed to client connections", static_cast<double>(h.frames_sent));
  counter("membership_notifier_closed_backpressure_total", "Clients closed for not reading", static_cast<double>(h.closed_backpressure));
  counter("membership_notifier_resumes_total", "Sessions resumed from an offset", static_cast<double>(h.resumes));
  counter("membership_notifier_snapshots_total", "Snapshots sent", static_cast<double>(h.snapshots));
  counter("membership_notifier_positions_sent_total", "Position frames: newer offsets for clients with no recent event",
          static_cast<double>(h.positions_sent));
  const auto& hs = history.stats();
  counter("membership_notifier_replay_queries_total", "Reads of the log for resuming clients, each shared by those waiting",
          static_cast<double>(hs.replay_queries));
  counter("membership_notifier_replay_query_seconds_total", "Time those reads took, sent to answered", hs.replay_seconds);
  counter("membership_notifier_db_reads_total", "Reads of the event log", static_cast<double>(r.reads));
  {
    // Prometheus histogram: cumulative buckets, then +Inf (every read), sum and count.
    const char* name = "membership_notifier_db_read_seconds";
    m << "# HELP " << name << " Reads of the event log by how long they took, sent to answered\n"
      << "# TYPE " << name << " histogram\n";
    for (size_t i = 0; i < ReaderStats::kReadBuckets.size(); ++i)
      m << name << "_bucket{le=\"" << ReaderStats::kReadBuckets[i] << "\"} " << r.reads_within[i] << '\n';
    m << name << "_bucket{le=\"+Inf\"} " << r.reads << '\n'
      << name << "_sum " << r.read_seconds << '\n'
      << name << "_count " << r.reads << '\n';
  }
  counter("membership_notifier_db_notifications_total", "Wake-ups received from the triggers (verified)",
          static_cast<double>(r.notifications));
  counter("membership_notifier_forged_wakeups_total",
          "NOTIFYs on the sidecar's channel that the triggers did not send (ignored)",
          static_cast<double>(r.forged_wakeups));
  counter("membership_notifier_durable_waits_total",
          "Reads whose rows waited for the WAL flush (or the --durable-standbys) before delivery",
          static_cast<double>(r.durable_waits));
  counter("membership_notifier_history_lost_total",
          "Reconnects to a new timeline that lacked changes already delivered (clients resynchronised)",
          static_cast<double>(r.history_lost));
  counter("membership_notifier_polling_spells_total",
          "Adaptive mode: times commits came fast enough to stop the triggers' NOTIFYs and poll instead",
          static_cast<double>(r.polling_spells));
  counter("membership_notifier_notify_contention_total",
          "Adaptive mode: polling spells begun because commits were queueing on the NOTIFY lock",
          static_cast<double>(r.notify_contention));
  counter("membership_notifier_db_disconnects_total", "Listener connections lost", static_cast<double>(r.disconnects));
  counter("membership_notifier_log_pruned_total", "Log rows pruned by this instance", static_cast<double>(janitor.pruned()));
  return m.str();
}

}  // namespace mn
