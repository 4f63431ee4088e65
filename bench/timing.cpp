// Timing loop and a cheap check that nobody else used the CPUs meanwhile (BENCHMARKING.md: compare what the
// machine did, from /proc/stat, with what this process did, from getrusage).
#include "timing.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

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

// CPU seconds (user and system) of RUSAGE_SELF or RUSAGE_CHILDREN.
double rusage_seconds(int who) {
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  rusage usage{};
  getrusage(who, &usage);
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// This process's CPU seconds, all threads, plus those of the children it has waited for.
double own_cpu_seconds() { return rusage_seconds(RUSAGE_SELF) + rusage_seconds(RUSAGE_CHILDREN); }

// A helper process's CPU seconds, all threads (the first field of /proc/PID/task/TID/schedstat, in ns: precise,
// where /proc/PID/stat counts 10 ms ticks); 0 when it cannot be read.
double helper_cpu_seconds(int pid) {
  std::error_code error;
  double total = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", error)) {
    std::ifstream in(task.path() / "schedstat");
    long long ns = 0;
    if (in >> ns) total += static_cast<double>(ns) * 1e-9;
  }
  return total;
}

// CPU seconds used so far by all threads of process `pid`; 0 is this process.
double process_cpu_seconds(int pid) { return pid != 0 ? helper_cpu_seconds(pid) : rusage_seconds(RUSAGE_SELF); }

// Waits until process `pid` (0: this one, whose calling thread sleeps meanwhile) uses no more than 5% of a core
// over a millisecond, or 100 ms have passed. OpenMP workers spin after a parallel region (libgomp's here: about
// 9 ms, measured) and would take a core from the next run if that run is in another process.
void wait_until_idle(int pid) {
  constexpr double kStep = 0.001;
  double before = process_cpu_seconds(pid);
  for (int step = 0; step < 100; ++step) {
    std::this_thread::sleep_for(std::chrono::duration<double>(kStep));
    const double after = process_cpu_seconds(pid);
    if (after - before <= 0.05 * kStep) return;
    before = after;
  }
}

// Wakes this process's OpenMP workers (an empty parallel region), untimed. After a turn in another process they
// have been asleep for its duration: without this, tdconv's runs right after PyTorch's took about 10 ms more in 50
// of 90 (DCGAN g1, 2.4 ms at 2 threads; none with it). A layer in a network finds them awake from the previous one.
void wake_thread_pool() {
#if defined(TDCONV_BENCH_OPENMP)
#pragma omp parallel
  { asm volatile("" ::: "memory"); }
#endif
}

}  // namespace

Contender in_process(std::function<void()> run) {
  return {[run = std::move(run)] {
            wake_thread_pool();
            const double t0 = now_seconds();
            run();
            return now_seconds() - t0;
          },
          0};
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

Timing time_runs(const std::function<void()>& run, const TimingRule& rule) {
  return time_in_turns({in_process(run)}, rule)[0];
}

int Timing::full_speed_runs() const {
  return static_cast<int>(std::count(full_speed.begin(), full_speed.end(), true));
}

void summarize_together(const std::vector<Timing*>& timings, int min_runs) {
  bool fast_enough = true;
  for (const Timing* t : timings) fast_enough = fast_enough && t->full_speed_runs() >= min_runs;
  for (Timing* t : timings) {
    t->median_all_ms = median(t->times_ms);
    std::vector<double> fast;
    for (std::size_t i = 0; i < t->times_ms.size(); ++i) {
      if (t->full_speed[i]) fast.push_back(t->times_ms[i]);
    }
    t->from_full_speed_runs = fast_enough && !fast.empty();
    t->median_ms = t->from_full_speed_runs ? median(fast) : t->median_all_ms;
  }
}

std::vector<Timing> time_in_turns(const std::vector<Contender>& contenders, const TimingRule& rule) {
  const std::size_t n = contenders.size();
  std::vector<Timing> timings(n);
  std::vector<double> totals(n, 0.0);  // seconds timed so far
  std::vector<double> fast_totals(n, 0.0);  // seconds of the runs at full speed
  std::vector<double> last(n, 0.0);    // the last run's seconds
  std::vector<int> helpers;
  for (const Contender& c : contenders) {
    if (c.process != 0) helpers.push_back(c.process);
  }
  int last_process = 0;
  // Runs contender i once, after the previous process has gone idle when it was another; false when it threw
  // (then recorded, and i left out from then on). `fast`: the speed checks around the run passed.
  auto run_once = [&](std::size_t i, double& seconds, bool& fast) {
    if (contenders[i].process != last_process) wait_until_idle(last_process);
    last_process = contenders[i].process;
    try {
      const bool before = !rule.full_speed || rule.full_speed();
      seconds = contenders[i].run();
      const bool after = !rule.full_speed || rule.full_speed();
      fast = before && after;
      return true;
    } catch (const std::exception& e) {
      timings[i].error = e.what();
      return false;
    }
  };
  auto running = [&](std::size_t i) { return timings[i].error.empty(); };
  auto finished = [&](std::size_t i) {
    const Timing& t = timings[i];
    const bool enough_fast = t.full_speed_runs() >= rule.min_runs && fast_totals[i] >= rule.min_seconds;
    const bool gave_up = static_cast<int>(t.times_ms.size()) >= kGiveUpFactor * rule.min_runs &&
                         totals[i] >= kGiveUpFactor * rule.min_seconds;
    return !running(i) || enough_fast || gave_up;
  };
  // Until it is finished, a contender takes its turn in a cycle unless it is more than one of its runs ahead of
  // the unfinished one that has accumulated the least time: a slow one runs every few cycles, its runs spread over
  // the same stretch as a fast one's, and a fast one does not run hundreds of times while a slow one reaches
  // rule.min_runs. A finished one takes one turn in each cycle in which an unfinished slower one does, so that the
  // slow one's last runs are still timed in turns with it.
  auto unfinished_takes_turn = [&](std::size_t i) {
    double least = totals[i];
    for (std::size_t j = 0; j < n; ++j) {
      if (!finished(j)) least = std::min(least, totals[j]);
    }
    return totals[i] - least < last[i];
  };
  for (std::size_t i = 0; i < n; ++i) {  // warm-up
    bool fast = false;
    run_once(i, last[i], fast);
  }
  const LoadMeter load(helpers);
  for (std::size_t cycle = 0;; ++cycle) {
    bool all_finished = true;
    for (std::size_t i = 0; i < n; ++i) all_finished = all_finished && finished(i);
    if (all_finished) break;
    std::vector<std::size_t> turns;  // decided before the cycle runs: within one, runs change the totals
    std::vector<char> paced(n, 0);  // unfinished and taking its turn
    for (std::size_t i = 0; i < n; ++i) paced[i] = !finished(i) && unfinished_takes_turn(i);
    // A finished contender keeps company with the slower ones still running.
    auto accompanies = [&](std::size_t i) {
      for (std::size_t j = 0; j < n; ++j) {
        if (paced[j] && last[j] > last[i]) return true;
      }
      return false;
    };
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t i = (cycle + k) % n;
      if (running(i) && (finished(i) ? accompanies(i) : paced[i])) turns.push_back(i);
    }
    for (std::size_t i : turns) {
      double dt = 0;
      bool fast = false;
      if (!run_once(i, dt, fast)) continue;
      timings[i].times_ms.push_back(dt * 1e3);
      timings[i].full_speed.push_back(fast);
      totals[i] += dt;
      if (fast) fast_totals[i] += dt;
      last[i] = dt;
    }
  }
  const double other = load.other_load();
  std::vector<Timing*> ran;
  for (Timing& t : timings) {
    t.other_load = other;
    if (t.error.empty()) {
      ran.push_back(&t);
    } else {
      t.median_ms = t.median_all_ms = median(t.times_ms);
    }
  }
  summarize_together(ran, rule.min_runs);
  return timings;
}

LoadMeter::LoadMeter(std::vector<int> helpers)
    : helpers_(std::move(helpers)), busy0_(machine_busy_seconds()), own0_(own_seconds()), start_(now_seconds()) {}

double LoadMeter::own_seconds() const {
  double total = own_cpu_seconds();
  for (int pid : helpers_) total += helper_cpu_seconds(pid);
  return total;
}

double LoadMeter::other_load() const {
  const double wall = now_seconds() - start_;
  const double busy1 = machine_busy_seconds();
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  // /proc/stat counts in clock ticks (10 ms): below ~0.1 s the figure is noise, so it is left unknown.
  if (busy0_ < 0 || busy1 < 0 || cpus <= 0 || wall < 0.1) return -1;
  const double others = (busy1 - busy0_) - (own_seconds() - own0_);
  return std::clamp(others / (wall * static_cast<double>(cpus)), 0.0, 1.0);
}

}  // namespace bench
