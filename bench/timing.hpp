#pragma once
// How every in-process implementation is timed: one warm-up run (first-touch page faults, lazy initialisation and
// caches stay out), then runs until both a minimum count and a minimum total time are reached; the median is
// reported because a shared two-core machine produces outliers in one direction only.
#include <functional>
#include <string>
#include <vector>

namespace bench {

struct TimingRule {
  int min_runs = 5;
  double min_seconds = 0.5;
};

struct Timing {
  double median_ms = 0;
  std::vector<double> times_ms;  // every timed run, in order
  // Share of the machine's CPU time that other processes used while this was timed (0 to 1); above ~0.1 the
  // numbers may be disturbed. Negative when unknown (no /proc/stat).
  double other_load = -1;
  std::string error;  // non-empty: a run threw this; the implementation was left out of the turns from then on
};

// One implementation as time_in_turns drives it. `run` runs it once and returns how long its timed part took, in
// seconds; `process` is the process it computes in: 0 for this one, else a helper's pid (the PyTorch peer), whose
// CPU time then counts as the benchmark's own, not as another process's load.
struct Contender {
  std::function<double()> run;
  int process = 0;
};

// A contender computing in this process, timed around the call, after waking the OpenMP workers (untimed).
Contender in_process(std::function<void()> run);

Timing time_runs(const std::function<void()>& run, const TimingRule& rule);

// Several implementations of one layer timed in turns: one warm-up run each, then cycles in which each runs once
// (the order rotating from cycle to cycle), until every one has rule.min_runs runs and rule.min_seconds of them.
// This machine's speed drifts by tens of percent over seconds (a shared core); timed one after the other, two
// implementations sampled different stretches of it and their ratio moved by as much, timed in turns they sample
// the same stretches. Until finished, an implementation more than one of its runs ahead of the unfinished one that
// has accumulated the least time sits a cycle out, so that each accumulates time at the same pace and a slow one's
// runs are spread over the whole stretch; once finished, it runs along with each run of a slower unfinished one.
// When the turn passes to another process, the next run waits until the previous process has
// gone idle: libgomp's workers spin for about 9 ms after a parallel region here, and would take a core from it.
// A contender whose run throws is left out of the cycles from then on, its Timing holding the message. One Timing
// per implementation, in the order given.
std::vector<Timing> time_in_turns(const std::vector<Contender>& contenders, const TimingRule& rule);

// Measures how much CPU time other processes used between its construction and other_load(): what the machine did
// (/proc/stat) minus what this process, the children it waited for (getrusage) and the running helper processes
// given (/proc/PID/task/*/schedstat) did, as a share of all CPUs.
class LoadMeter {
 public:
  explicit LoadMeter(std::vector<int> helpers = {});
  double other_load() const;  // 0 to 1; negative when unknown

 private:
  double own_seconds() const;
  std::vector<int> helpers_;
  double busy0_;
  double own0_;
  double start_;
};

double median(std::vector<double> values);
double now_seconds();  // a monotonic clock

}  // namespace bench
