#pragma once
// How every in-process implementation is timed: one warm-up run (first-touch page faults, lazy initialisation and
// caches stay out), then runs until both a minimum count and a minimum total time are reached; the median is
// reported because a shared two-core machine produces outliers in one direction only.
#include <functional>
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
};

Timing time_runs(const std::function<void()>& run, const TimingRule& rule);

// Several implementations of one layer timed in turns: one warm-up run each, then cycles in which each runs once
// (the order rotating from cycle to cycle), until every one has rule.min_runs runs and rule.min_seconds of them.
// This machine's speed drifts by tens of percent over seconds (a shared core); timed one after the other, two
// implementations sampled different stretches of it and their ratio moved by as much, timed in turns they sample
// the same stretches. One Timing per implementation, in the order given.
std::vector<Timing> time_in_turns(const std::vector<std::function<void()>>& runs, const TimingRule& rule);

// Measures how much CPU time other processes used between its construction and other_load(): what the machine did
// (/proc/stat) minus what this process and the children it waited for did (getrusage), as a share of all CPUs.
class LoadMeter {
 public:
  LoadMeter();
  double other_load() const;  // 0 to 1; negative when unknown

 private:
  double busy0_;
  double own0_;
  double start_;
};

double median(std::vector<double> values);
double now_seconds();  // a monotonic clock

}  // namespace bench
