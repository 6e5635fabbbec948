#include "writer.h"

#include <libpq-fe.h>

#include <cstring>
#include <ctime>
#include <mutex>
#include <thread>

namespace bench {
namespace {

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

void sleep_until(int64_t t) {
  timespec ts{};
  ts.tv_sec = t / 1000000000;
  ts.tv_nsec = t % 1000000000;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

uint32_t user_of_pair(uint64_t seed, uint64_t pair, size_t users) {
  return static_cast<uint32_t>(splitmix(seed * 1000003 + pair) % users);
}

WriterResult run_writer(const WriterOptions& o, const std::function<void()>& on_start,
                        const std::function<void()>& on_end) {
  WriterResult res;
  const uint64_t total = static_cast<uint64_t>(o.rate * o.secs);
  res.changes.resize(total);
  std::vector<PGconn*> conns;
  for (int w = 0; w < o.threads; ++w) {
    PGconn* c = PQconnectdb(o.conninfo.c_str());
    if (PQstatus(c) != CONNECTION_OK) {
      res.first_error = std::string("connect: ") + PQerrorMessage(c);
      PQfinish(c);
      for (auto* x : conns) PQfinish(x);
      res.failures = total;
      return res;
    }
    PQclear(PQprepare(c, "ins", "INSERT INTO channel_members (channel_id, user_id) VALUES ($1, $2)", 2, nullptr));
    PQclear(PQprepare(c, "del", "DELETE FROM channel_members WHERE channel_id = $1 AND user_id = $2", 2, nullptr));
    conns.push_back(c);
  }
  std::mutex mu;
  const int64_t t0 = now_ns() + 20'000'000;
  const double step = 1e9 / o.rate;
  std::vector<std::thread> threads;
  for (int w = 0; w < o.threads; ++w) {
    threads.emplace_back([&, w] {
      PGconn* c = conns[w];
      for (uint64_t pair = w; 2 * pair < total; pair += o.threads) {
        std::string channel = "P" + o.tag + "-" + std::to_string(pair);
        uint32_t user = user_of_pair(o.seed, pair, o.users.size());
        const char* params[2] = {channel.c_str(), o.users[user].c_str()};
        for (uint64_t e = 2 * pair; e < 2 * pair + 2 && e < total; ++e) {
          Change& ch = res.changes[e];
          ch.user = user;
          ch.due_ns = t0 + static_cast<int64_t>(e * step);
          sleep_until(ch.due_ns);
          ch.start_ns = now_ns();
          PGresult* r = PQexecPrepared(c, e % 2 ? "del" : "ins", 2, params, nullptr, nullptr, 0);
          ch.commit_ns = now_ns();
          ch.ok = PQresultStatus(r) == PGRES_COMMAND_OK && std::strcmp(PQcmdTuples(r), "1") == 0;
          if (!ch.ok) {
            std::lock_guard<std::mutex> lock(mu);
            if (res.failures++ == 0)
              res.first_error = PQresultStatus(r) == PGRES_COMMAND_OK ? "a change touched no row"
                                                                      : PQresultErrorMessage(r);
          }
          PQclear(r);
        }
      }
    });
  }
  sleep_until(t0 - 1'000'000);
  on_start();
  for (auto& t : threads) t.join();
  on_end();
  int64_t last = t0;
  for (const auto& ch : res.changes) last = std::max(last, ch.commit_ns);
  res.secs = static_cast<double>(last - t0) / 1e9;
  for (auto* c : conns) PQfinish(c);
  return res;
}

}  // namespace bench
