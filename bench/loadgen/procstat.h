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
// The whole machine's busy time (all CPUs, idle and iowait excluded), in clock ticks.
int64_t machine_busy_ticks();
long ticks_per_second();

}  // namespace bench
