// CPU time and memory of processes, read from /proc, for the CPU% and RSS columns.
#pragma once

#include <cstdint>

namespace bench {

// utime + stime in clock ticks; -1 when the process is gone.
int64_t process_ticks(int pid);
// One thread of this process.
int64_t thread_ticks(int tid);
// A process and its direct children (a postmaster and its backends).
int64_t tree_ticks(int root);
long rss_kb(int pid);
// Time on CPU in nanoseconds of a single-threaded process (a PostgreSQL backend), from
// /proc/PID/schedstat: finer than clock ticks, which a backend doing one read a second barely
// moves. -1 when the process is gone.
int64_t task_cpu_ns(int pid);
// A Prometheus sample `name value` from http://127.0.0.1:PORT/metrics; NaN when unavailable.
double fetch_metric(int port, const char* name);
// The whole machine's busy time (all CPUs, idle and iowait excluded), in clock ticks.
int64_t machine_busy_ticks();
long ticks_per_second();

}  // namespace bench
