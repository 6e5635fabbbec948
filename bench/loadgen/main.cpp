// bench-loadgen: holds N WebSocket clients open against one server and, on command, writes
// timed membership changes and measures commit -> receipt latency for every delivery.
//
//   bench-loadgen --port P --protocol ws|sio --sockets N --users U --db CONNINFO --out DIR
//                 [--server-pid PID] [--postmaster-pid PID] [--user-prefix u] [--max-pending 200]
//                 [--source 127.0.0.1,127.0.0.2,...] [--reconnect-ms MS] [--metrics-port P]
//   (HS256 secret in BENCH_JWT_SECRET)
// --source: socket i binds the i-th address (round robin) before connecting; --reconnect-ms:
// a dropped /ws socket comes back with its last offset (see clients.h). --metrics-port: the
// sidecar's /metrics, for its log reads; its database sessions are found by application_name.
//
// It prints `connected ...` once every socket is ready (or failed), then reads commands, one
// a line, on stdin, and answers each with one line on stdout:
//   run tag=T rate=R secs=S writers=W drain=D   -> result tag=T key=value...
//   idle secs=S                                 -> idle key=value...  (the same costs, no writes)
//   check wait=S                                -> check key=value...  (nothing lost, from the table)
//   stats                                       -> stats key=value...
//   quit
// Raw data of each run goes to DIR/<tag>.deliveries.csv and DIR/<tag>.changes.csv.
#include "clients.h"
#include "procstat.h"
#include "writer.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace bench {
namespace {

struct Options {
  ClientOptions clients;
  std::string db;
  std::string out = ".";
  int server_pid = 0;
  int postmaster_pid = 0;
  int metrics_port = 0;
};

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "bench-loadgen: %s\n", why.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (i + 1 >= argc) usage("missing value for " + k);
    std::string v = argv[++i];
    if (k == "--port") o.clients.port = static_cast<uint16_t>(std::atoi(v.c_str()));
    else if (k == "--protocol") o.clients.protocol = v == "sio" ? Protocol::socketio : Protocol::plain;
    else if (k == "--sockets") o.clients.sockets = std::atoi(v.c_str());
    else if (k == "--users") o.clients.users = std::max(1, std::atoi(v.c_str()));
    else if (k == "--user-prefix") o.clients.user_prefix = v;
    else if (k == "--max-pending") o.clients.max_pending = std::max(1, std::atoi(v.c_str()));
    else if (k == "--reconnect-ms") o.clients.reconnect_ms = std::max(0, std::atoi(v.c_str()));
    else if (k == "--source") {
      std::istringstream list(v);
      std::string a;
      while (std::getline(list, a, ','))
        if (!a.empty()) o.clients.sources.push_back(a);
    }
    else if (k == "--db") o.db = v;
    else if (k == "--out") o.out = v;
    else if (k == "--server-pid") o.server_pid = std::atoi(v.c_str());
    else if (k == "--postmaster-pid") o.postmaster_pid = std::atoi(v.c_str());
    else if (k == "--metrics-port") o.metrics_port = std::atoi(v.c_str());
    else usage("unknown option " + k);
  }
  const char* secret = std::getenv("BENCH_JWT_SECRET");
  o.clients.secret = secret ? secret : "";
  if (o.clients.sockets > 0 && (o.clients.port == 0 || o.clients.secret.empty()))
    usage("clients need --port and BENCH_JWT_SECRET");
  return o;
}

std::map<std::string, std::string> parse_kv(std::istringstream& in) {
  std::map<std::string, std::string> kv;
  std::string word;
  while (in >> word) {
    auto eq = word.find('=');
    if (eq != std::string::npos) kv[word.substr(0, eq)] = word.substr(eq + 1);
  }
  return kv;
}

// Nearest-rank percentile of a sorted vector.
double pct(const std::vector<int64_t>& v, double q) {
  if (v.empty()) return NAN;
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  return static_cast<double>(v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)]);
}

std::string us(double ns) {
  if (std::isnan(ns)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", ns / 1000.0);
  return buf;
}

std::string num(double x, int decimals = 1) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, x);
  return buf;
}

struct CpuSample {
  int64_t wall = 0, server = -1, pg = -1, self = -1, rx = -1, machine = -1;
  double reads = NAN;                 // the sidecar's log reads so far (--metrics-port)
  std::map<int, int64_t> backends;    // the sidecar's database sessions: pid -> CPU ns
};

struct CheckCounts {
  long rows = 0, sockets = 0, expected = 0, missing = 0, extra = 0;
  std::string error;
};

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)) {
    for (int u = 0; u < o_.clients.users; ++u) users_.push_back(o_.clients.user_prefix + std::to_string(u));
  }

  void connect() {
    ConnectSummary s;
    if (o_.clients.sockets > 0) {
      clients_ = std::make_unique<Clients>(o_.clients);
      s = clients_->connect_all();
    }
    std::cout << "connected ok=" << s.ok << " failed=" << s.failed << " secs=" << num(s.secs, 2)
              << " loadgen_rss_kb=" << rss_kb(getpid()) << " first_error=\""
              << s.first_error.substr(0, 200) << "\"" << std::endl;
  }

  CpuSample sample() {
    CpuSample c;
    if (o_.metrics_port) {
      c.reads = fetch_metric(o_.metrics_port, "membership_notifier_db_reads_total");
      for (int pid : sidecar_backends()) c.backends[pid] = task_cpu_ns(pid);
    }
    c.wall = now_ns();
    if (o_.server_pid) c.server = process_ticks(o_.server_pid);
    if (o_.postmaster_pid) c.pg = tree_ticks(o_.postmaster_pid);
    c.self = process_ticks(getpid());
    if (clients_) c.rx = thread_ticks(clients_->tid());
    c.machine = machine_busy_ticks();
    return c;
  }

  static std::string cpu_pct(int64_t a, int64_t b, double secs) {
    if (a < 0 || b < 0 || secs <= 0) return "nan";
    return num(100.0 * static_cast<double>(b - a) / static_cast<double>(ticks_per_second()) / secs);
  }

  // What the sidecar cost the database between two samples: its log reads and the CPU of its
  // sessions (those alive at the second sample; one that ended between them is not counted).
  static std::string sidecar_costs(const CpuSample& a, const CpuSample& b, double secs) {
    if (std::isnan(a.reads) || std::isnan(b.reads) || secs <= 0) return "";
    double reads = b.reads - a.reads;
    int64_t ns = 0;
    for (const auto& [pid, t] : b.backends) {
      if (t < 0) continue;
      auto it = a.backends.find(pid);
      ns += t - (it != a.backends.end() && it->second >= 0 ? it->second : 0);
    }
    return " reads=" + num(reads, 0) + " reads_per_s=" + num(reads / secs) +
           " sidecar_db_cpu=" + num(100.0 * static_cast<double>(ns) / 1e9 / secs, 2) +
           " sidecar_db_us_per_read=" + (reads > 0 ? num(static_cast<double>(ns) / 1e3 / reads) : std::string("nan"));
  }

  void idle(std::map<std::string, std::string> kv) {
    double secs = kv.count("secs") ? std::atof(kv["secs"].c_str()) : 10;
    CpuSample a = sample();
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(secs * 1000)));
    CpuSample b = sample();
    double s = static_cast<double>(b.wall - a.wall) / 1e9;
    std::cout << "idle secs=" << num(s, 2) << " cpu_server=" << cpu_pct(a.server, b.server, s)
              << " cpu_pg=" << cpu_pct(a.pg, b.pg, s) << sidecar_costs(a, b, s) << std::endl;
  }

  void run(std::map<std::string, std::string> kv) {
    WriterOptions w;
    w.conninfo = o_.db;
    w.tag = kv.count("tag") ? kv["tag"] : "x";
    w.rate = kv.count("rate") ? std::atof(kv["rate"].c_str()) : 100;
    w.secs = kv.count("secs") ? std::atof(kv["secs"].c_str()) : 10;
    w.threads = kv.count("writers") ? std::max(1, std::atoi(kv["writers"].c_str())) : 4;
    w.users = users_;
    w.seed = std::hash<std::string>{}(w.tag);
    double drain = kv.count("drain") ? std::atof(kv["drain"].c_str()) : 3;

    std::vector<int> per_user = clients_ ? clients_->ready_per_user() : std::vector<int>(users_.size(), 0);
    if (clients_) {
      clients_->record(w.tag);
      clients_->counters(true);
    }
    CpuSample a, b;
    WriterResult wr = run_writer(w, [&] { a = sample(); }, [&] { b = sample(); });

    uint64_t ok = 0, expected = 0;
    for (const auto& ch : wr.changes) {
      if (!ch.ok) continue;
      ++ok;
      expected += per_user[ch.user];
    }
    // Wait for stragglers: until every expected delivery is in, or `drain` seconds pass.
    int64_t give_up = now_ns() + static_cast<int64_t>(drain * 1e9);
    while (clients_ && clients_->recorded() < expected && now_ns() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::vector<Receipt> rs = clients_ ? clients_->take() : std::vector<Receipt>();
    ClientCounters cc = clients_ ? clients_->counters(true) : ClientCounters{};

    std::sort(rs.begin(), rs.end(), [](const Receipt& x, const Receipt& y) {
      return x.event != y.event ? x.event < y.event : x.socket < y.socket;
    });
    uint64_t dup = 0, misrouted = 0, unknown = 0;
    std::vector<int64_t> lat, commit, late;
    lat.reserve(rs.size());
    std::string dpath = o_.out + "/" + w.tag + ".deliveries.csv";
    FILE* df = std::fopen(dpath.c_str(), "w");
    if (df) std::fprintf(df, "change,socket,latency_us\n");
    for (size_t k = 0; k < rs.size(); ++k) {
      const Receipt& r = rs[k];
      if (k > 0 && rs[k - 1].event == r.event && rs[k - 1].socket == r.socket) {
        ++dup;
        continue;
      }
      if (r.event >= wr.changes.size() || !wr.changes[r.event].ok) {
        ++unknown;
        continue;
      }
      const Change& ch = wr.changes[r.event];
      if (static_cast<uint32_t>(r.socket % o_.clients.users) != ch.user) {
        ++misrouted;
        continue;
      }
      int64_t l = r.t_ns - ch.commit_ns;
      lat.push_back(l);
      if (df) std::fprintf(df, "%u,%u,%.1f\n", r.event, r.socket, static_cast<double>(l) / 1000.0);
    }
    if (df) std::fclose(df);
    std::string cpath = o_.out + "/" + w.tag + ".changes.csv";
    if (FILE* cf = std::fopen(cpath.c_str(), "w")) {
      std::fprintf(cf, "change,user,late_us,commit_us,ok\n");
      for (size_t e = 0; e < wr.changes.size(); ++e) {
        const Change& ch = wr.changes[e];
        std::fprintf(cf, "%zu,%s,%.1f,%.1f,%d\n", e, users_[ch.user].c_str(),
                     static_cast<double>(ch.start_ns - ch.due_ns) / 1000.0,
                     static_cast<double>(ch.commit_ns - ch.start_ns) / 1000.0, ch.ok ? 1 : 0);
        if (ch.ok) commit.push_back(ch.commit_ns - ch.start_ns);
        late.push_back(ch.start_ns - ch.due_ns);
      }
      std::fclose(cf);
    }
    std::sort(lat.begin(), lat.end());
    std::sort(commit.begin(), commit.end());
    std::sort(late.begin(), late.end());
    double mean = 0;
    for (auto l : lat) mean += static_cast<double>(l);
    if (!lat.empty()) mean /= static_cast<double>(lat.size());
    double secs = static_cast<double>(b.wall - a.wall) / 1e9;
    uint64_t got = lat.size();

    std::cout << "result tag=" << w.tag << " changes=" << wr.changes.size() << " ok=" << ok
              << " failures=" << wr.failures << " rate=" << num(static_cast<double>(ok) / std::max(wr.secs, 1e-9))
              << " expected=" << expected << " delivered=" << got
              << " lost=" << (expected > got ? expected - got : 0) << " dup=" << dup
              << " misrouted=" << misrouted << " unknown=" << unknown << " stale=" << cc.stale
              << " p50_us=" << us(pct(lat, 0.50)) << " p90_us=" << us(pct(lat, 0.90))
              << " p99_us=" << us(pct(lat, 0.99)) << " p999_us=" << us(pct(lat, 0.999))
              << " max_us=" << us(lat.empty() ? NAN : static_cast<double>(lat.back()))
              << " min_us=" << us(lat.empty() ? NAN : static_cast<double>(lat.front()))
              << " mean_us=" << us(lat.empty() ? NAN : mean)
              << " commit_p50_us=" << us(pct(commit, 0.5)) << " commit_p99_us=" << us(pct(commit, 0.99))
              << " late_p50_us=" << us(pct(late, 0.5)) << " late_p99_us=" << us(pct(late, 0.99))
              << " cpu_server=" << cpu_pct(a.server, b.server, secs) << " cpu_pg=" << cpu_pct(a.pg, b.pg, secs)
              << " cpu_loadgen=" << cpu_pct(a.self, b.self, secs) << " cpu_rx=" << cpu_pct(a.rx, b.rx, secs)
              << " cpu_machine=" << cpu_pct(a.machine, b.machine, secs) << sidecar_costs(a, b, secs)
              << " rx_max_stall_us=" << us(static_cast<double>(cc.max_stall_ns))
              << " disconnects=" << cc.disconnects << " first_error=\""
              << wr.first_error.substr(0, 160) << "\"" << std::endl;
  }

  // Every row of a connected user now in the table (none are probe rows: those were deleted)
  // must have reached each of that user's ready sockets as a channel.joined. Rows committed
  // just before the check may still be on their way (poll mode: up to a poll interval), so it
  // counts again until nothing is missing or `wait` seconds have passed.
  void check(std::map<std::string, std::string> kv) {
    double wait = kv.count("wait") ? std::atof(kv["wait"].c_str()) : 0;
    int64_t give_up = now_ns() + static_cast<int64_t>(wait * 1e9);
    for (;;) {
      CheckCounts n = count_missing();
      if ((n.missing == 0 && n.error.empty()) || now_ns() >= give_up) {
        std::cout << "check rows=" << n.rows << " sockets=" << n.sockets << " expected=" << n.expected
                  << " missing=" << n.missing << " extra=" << n.extra << " error=\"" << n.error.substr(0, 160)
                  << "\"" << std::endl;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  void stats() {
    ClientCounters cc = clients_ ? clients_->counters(false) : ClientCounters{};
    int64_t back = cc.first_drop_ns && cc.last_back_ns > cc.first_drop_ns ? cc.last_back_ns - cc.first_drop_ns : 0;
    std::cout << "stats frames=" << cc.frames << " stale=" << cc.stale << " disconnects=" << cc.disconnects
              << " pings=" << cc.pings << " ready=" << (clients_ ? clients_->ready() : 0)
              << " recovered=" << cc.recovered << " resnapshots=" << cc.resnapshots
              << " retry_errors=" << cc.retry_errors << " back_ms=" << num(static_cast<double>(back) / 1e6)
              << " loadgen_rss_kb=" << rss_kb(getpid())
              << " server_rss_kb=" << (o_.server_pid ? rss_kb(o_.server_pid) : -1) << " first_retry_error=\""
              << cc.first_retry_error.substr(0, 160) << "\"" << std::endl;
  }

 private:
  // Pids of the sidecar's sessions on this database (its listener, history and marks
  // connections all name themselves "membership-notifier ...").
  std::vector<int> sidecar_backends() {
    std::vector<int> pids;
    if (!probe_) probe_ = PQconnectdb(o_.db.c_str());
    if (PQstatus(probe_) != CONNECTION_OK) {
      PQfinish(probe_);
      probe_ = nullptr;
      return pids;
    }
    PGresult* r = PQexec(probe_, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND application_name LIKE 'membership-notifier %'");
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
      for (int i = 0; i < PQntuples(r); ++i) pids.push_back(std::atoi(PQgetvalue(r, i, 0)));
    PQclear(r);
    return pids;
  }

  CheckCounts count_missing() {
    CheckCounts n;
    std::map<int, long> rows;
    PGconn* c = PQconnectdb(o_.db.c_str());
    if (PQstatus(c) == CONNECTION_OK) {
      std::string prefix = o_.clients.user_prefix;
      const char* params[1] = {prefix.c_str()};
      PGresult* r = PQexecParams(c,
                                 "SELECT substr(user_id, length($1) + 1), count(*) FROM channel_members "
                                 "WHERE starts_with(user_id, $1) AND NOT starts_with(channel_id, 'P') GROUP BY 1",
                                 1, nullptr, params, nullptr, nullptr, 0);
      if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(r); ++i) {
          char* end = nullptr;
          long u = std::strtol(PQgetvalue(r, i, 0), &end, 10);
          if (end && *end == '\0' && u >= 0 && u < o_.clients.users) rows[static_cast<int>(u)] = std::atol(PQgetvalue(r, i, 1));
        }
      } else {
        n.error = PQresultErrorMessage(r);
      }
      PQclear(r);
    } else {
      n.error = PQerrorMessage(c);
    }
    PQfinish(c);
    for (auto& [u, k] : rows) n.rows += k;
    if (!clients_) return n;
    auto got = clients_->other_joined();
    for (size_t s = 0; s < got.size(); ++s) {
      auto it = rows.find(static_cast<int>(s % o_.clients.users));
      long want = it == rows.end() ? 0 : it->second;
      long have = static_cast<long>(got[s]);
      ++n.sockets;
      n.expected += want;
      if (have < want) n.missing += want - have;
      if (have > want) n.extra += have - want;
    }
    return n;
  }

  Options o_;
  std::vector<std::string> users_;
  std::unique_ptr<Clients> clients_;
  PGconn* probe_ = nullptr;
};

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  bench::Bench b(bench::parse(argc, argv));
  b.connect();
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd;
    in >> cmd;
    if (cmd == "run") b.run(bench::parse_kv(in));
    else if (cmd == "check") b.check(bench::parse_kv(in));
    else if (cmd == "stats") b.stats();
    else if (cmd == "idle") b.idle(bench::parse_kv(in));
    else if (cmd == "quit") break;
    else if (!cmd.empty()) std::cout << "error unknown command " << cmd << std::endl;
  }
  return 0;
}
