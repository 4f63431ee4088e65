// Timing loop and a cheap check that nobody else used the CPUs meanwhile (BENCHMARKING.md: compare what the
// machine did, from /proc/stat, with what this process did, from getrusage).
#include "timing.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

namespace bench {
namespace {

// CPU seconds every process spent, summed over CPUs (user, nice, system, irq, softirq, steal); negative if unknown.
double machine_busy_seconds() {
  std::ifstream in("/proc/stat");
  std::string line;
  if (!in || !std::getline(in, line) || line.rfind("cpu ", 0) != 0) return -1;
  std::istringstream fields(line.substr(4));
  long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  fields >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return static_cast<double>(user + nice + system + irq + softirq + steal) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// This process's CPU seconds, all threads, plus those of the children it has waited for (the PyTorch peer).
double own_cpu_seconds() {
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  double total = 0;
  for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage usage{};
    getrusage(who, &usage);
    total += seconds(usage.ru_utime) + seconds(usage.ru_stime);
  }
  return total;
}

}  // namespace

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

Timing time_runs(const std::function<void()>& run, const TimingRule& rule) { return time_in_turns({run}, rule)[0]; }

std::vector<Timing> time_in_turns(const std::vector<std::function<void()>>& runs, const TimingRule& rule) {
  const std::size_t n = runs.size();
  for (const auto& run : runs) run();  // warm-up
  std::vector<Timing> timings(n);
  std::vector<double> totals(n, 0.0);
  const LoadMeter load;
  auto done = [&] {
    for (std::size_t i = 0; i < n; ++i) {
      if (static_cast<int>(timings[i].times_ms.size()) < rule.min_runs || totals[i] < rule.min_seconds) return false;
    }
    return true;
  };
  for (std::size_t cycle = 0; !done(); ++cycle) {
    for (std::size_t turn = 0; turn < n; ++turn) {
      const std::size_t i = (cycle + turn) % n;
      const double t0 = now_seconds();
      runs[i]();
      const double dt = now_seconds() - t0;
      timings[i].times_ms.push_back(dt * 1e3);
      totals[i] += dt;
    }
  }
  const double other = load.other_load();
  for (Timing& t : timings) {
    t.other_load = other;
    t.median_ms = median(t.times_ms);
  }
  return timings;
}

LoadMeter::LoadMeter() : busy0_(machine_busy_seconds()), own0_(own_cpu_seconds()), start_(now_seconds()) {}

double LoadMeter::other_load() const {
  const double wall = now_seconds() - start_;
  const double busy1 = machine_busy_seconds();
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  // /proc/stat counts in clock ticks (10 ms): below ~0.1 s the figure is noise, so it is left unknown.
  if (busy0_ < 0 || busy1 < 0 || cpus <= 0 || wall < 0.1) return -1;
  const double others = (busy1 - busy0_) - (own_cpu_seconds() - own0_);
  return std::clamp(others / (wall * static_cast<double>(cpus)), 0.0, 1.0);
}

}  // namespace bench
