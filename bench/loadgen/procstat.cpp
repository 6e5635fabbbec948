#include "procstat.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace bench {
namespace {

// Fields after the command name (which may hold spaces and parentheses): state is field 3.
bool read_stat(const std::string& path, int& ppid, int64_t& ticks) {
  std::ifstream in(path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = s.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream rest(s.substr(close + 2));
  std::string f[14];
  for (auto& x : f) rest >> x;  // fields 3..16
  if (!rest) return false;
  ppid = std::atoi(f[1].c_str());                            // field 4
  ticks = std::atoll(f[11].c_str()) + std::atoll(f[12].c_str());  // fields 14, 15
  return true;
}

}  // namespace

int64_t process_ticks(int pid) {
  int ppid;
  int64_t t;
  return read_stat("/proc/" + std::to_string(pid) + "/stat", ppid, t) ? t : -1;
}

int64_t thread_ticks(int tid) {
  int ppid;
  int64_t t;
  return read_stat("/proc/self/task/" + std::to_string(tid) + "/stat", ppid, t) ? t : -1;
}

int64_t tree_ticks(int root) {
  int64_t total = process_ticks(root);
  if (total < 0) return -1;
  DIR* d = opendir("/proc");
  if (!d) return total;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int ppid;
    int64_t t;
    if (read_stat(std::string("/proc/") + e->d_name + "/stat", ppid, t) && ppid == root) total += t;
  }
  closedir(d);
  return total;
}

long rss_kb(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, 6, "VmRSS:") == 0) return std::atol(line.c_str() + 6);
  return -1;
}

int64_t task_cpu_ns(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/schedstat");
  long long ns = -1;
  if (!(in >> ns)) return -1;
  return ns;
}

double fetch_metric(int port, const char* name) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return NAN;
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string body;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, req, sizeof req - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof req - 1)) {
      char buf[16384];
      ssize_t r;
      while ((r = ::recv(fd, buf, sizeof buf, 0)) > 0) body.append(buf, static_cast<size_t>(r));
    }
  }
  ::close(fd);
  std::string key = std::string("\n") + name + " ";
  size_t p = body.find(key);
  if (p == std::string::npos) return NAN;
  return std::strtod(body.c_str() + p + key.size(), nullptr);
}

int64_t machine_busy_ticks() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  int64_t v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  in >> cpu;
  for (auto& x : v) in >> x;
  if (!in || cpu != "cpu") return -1;
  // user nice system idle iowait irq softirq steal
  return v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
}

long ticks_per_second() { return sysconf(_SC_CLK_TCK); }

}  // namespace bench
