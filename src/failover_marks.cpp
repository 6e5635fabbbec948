// The reader's side of failover (event_log_reader.h): marking how far this timeline is
// delivered, and, on reaching a server on another timeline, judging whether everything delivered
// on the old one survived.
#include "event_log_reader.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace mn {
namespace {

// How often, at most, to mark how far this timeline is delivered while rows are being
// delivered: after a failover, what was delivered since the last mark that reached the new
// primary counts as lost, and its clients get a snapshot.
constexpr std::chrono::milliseconds kMarkEvery{200};

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

}  // namespace

void EventLogReader::take_server_state(const PgResult& r) {
  if (r.get(0, 0) == "t") return lost("server is a standby (in recovery)");
  if (r.is_null(0, 1)) return lost("membership_notifier.settings is empty: run `migrate up`");
  auto key = r.is_null(0, 4) ? std::nullopt : parse_wake_key(r.get(0, 4));
  if (!key) return lost("membership_notifier.wake_key is missing: run `membership-notifier migrate up`");
  uint32_t timeline = 0;
  if (r.is_null(0, 3) || !parse_int(r.get(0, 3), timeline)) return lost("cannot read the server's timeline");
  auto now = PgSnapshot::parse(r.get(0, 2));
  if (!now) return lost("unparseable snapshot from server");
  wake_key_ = std::move(*key);
  std::string id(r.get(0, 1));
  const uint32_t old_timeline = timeline_;
  auto proceed = [this, timeline, id, now = *now](bool lost_history) {
    if (lost_history) {
      ++stats_.history_lost;
      cursor_.reset();
      pending_reset_ = true;
    }
    if (timeline != timeline_) delivered_.clear();
    timeline_ = timeline;
    log_id_ = id;
    // First start: begin at the present. Clients that were away resume by their own
    // offsets; the process itself has nothing to catch up on.
    if (!cursor_) cursor_ = now;
    subscribe();
  };
  if (!log_id_.empty() && id != log_id_) {
    spdlog::warn("event log changed ({} -> {}): a restored or different database; "
                 "clients will resynchronise", log_id_, id);
    return proceed(true);
  }
  if (old_timeline == 0 || timeline == old_timeline || delivered_.empty()) return proceed(false);
  // A failover or a recovery onto a new timeline: is what was delivered on the old one here?
  uint64_t through = 0;
  const std::string marks = r.is_null(0, 5) ? "" : std::string(r.get(0, 5));
  const std::string prefix = std::to_string(old_timeline) + ":";
  for (size_t at = 0; at < marks.size();) {
    auto end = std::min(marks.find(',', at), marks.size());
    auto item = std::string_view(marks).substr(at, end - at);
    if (item.substr(0, prefix.size()) == prefix) parse_int(item.substr(prefix.size()), through);
    at = end + 1;
  }
  auto judged = [this, timeline, old_timeline, proceed](bool kept, const std::string& how) {
    if (kept) spdlog::info("the database is on timeline {} now; everything delivered on timeline {} is there ({})",
                           timeline, old_timeline, how);
    else spdlog::warn("the database is on timeline {} now, and changes delivered on timeline {} are not all there "
                      "({}): every client gets a fresh snapshot", timeline, old_timeline, how);
    proceed(!kept);
  };
  std::vector<LogRow> verify;
  switch (delivered_.judge(through, &verify)) {
    case DeliveryRecord::Verdict::kept:
      return judged(true, "its mark covers them");
    case DeliveryRecord::Verdict::unknown:
      return judged(false, "delivered past its mark longer ago than is remembered");
    case DeliveryRecord::Verdict::verify:
      break;
  }
  // Rows past the mark, looked up by key and content: a new primary hands the lost ids and
  // transaction ids out again, to other changes.
  std::vector<uint64_t> xids;
  std::vector<std::string> ids, ops, channels, users;
  for (const auto& row : verify) {
    xids.push_back(row.xid);
    ids.push_back(std::to_string(row.id));
    ops.push_back(row.op);
    channels.push_back(row.channel_id.value_or(""));
    users.push_back(row.user_id.value_or(""));
  }
  auto conn = conn_;
  conn->query(
      "SELECT count(*) FROM unnest($1::xid8[], $2::bigint[], $3::text[], $4::text[], $5::text[]) d(xid, id, op, c, u)"
      " WHERE EXISTS (SELECT FROM membership_notifier.event_log l WHERE l.xid = d.xid AND l.id = d.id"
      "               AND l.op::text = d.op AND coalesce(l.channel_id, '') = d.c AND coalesce(l.user_id, '') = d.u)",
      {xid8_array(xids), "{" + join(ids) + "}", text_array(ops), text_array(channels), text_array(users)},
      [this, conn, judged, n = verify.size()](PgResult v) {
        if (conn != conn_) return;
        if (!v.ok()) return lost("looking up delivered changes after a failover failed: " + v.error());
        judged(v.rows() == 1 && v.get(0, 0) == std::to_string(n),
               std::to_string(n) + " delivered past its mark, looked up one by one");
      },
      cfg_.db_timeout);
}

// Marks how far this timeline is delivered, at most every kMarkEvery, for a failover to tell
// what of this reader's deliveries survived (take_server_state(), and offsets on resume). On a
// connection of its own: the mark is durable, and its flush must not hold up the reads. (A mark
// committed without a flush would make the next read wait for one: its WAL is then the
// unflushed tail the read sees.)
void EventLogReader::mark_delivered() {
  const auto now = std::chrono::steady_clock::now();
  if (now - marked_ < kMarkEvery || marking_) return;
  marked_ = now;
  marking_ = true;
  auto send = [this](const std::shared_ptr<PgConnection>& c) {
    c->query("SELECT membership_notifier.mark_delivered(true)", {}, [this, c](PgResult r) {
      if (c != mark_conn_) return;
      marking_ = false;
      if (!r.ok()) spdlog::warn("marking how far the log is delivered failed: {}", r.error());
    }, cfg_.db_timeout);
  };
  if (mark_conn_ && mark_conn_->connected()) return send(mark_conn_);
  mark_conn_ = PgConnection::create(io_);
  auto c = mark_conn_;
  c->connect(cfg_.database_url, "membership-notifier marks", cfg_.db_timeout, [this, c, send](const std::string& err) {
    if (c != mark_conn_) return;
    if (!err.empty()) {
      marking_ = false;
      mark_conn_.reset();
      return spdlog::warn("marking how far the log is delivered: connect failed: {}", err);
    }
    c->on_failure([this, c](const std::string&) {
      if (c != mark_conn_) return;
      marking_ = false;
      mark_conn_.reset();  // made again at the next mark
    });
    send(c);
  });
}

}  // namespace mn
