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
  // Whether the cores run at their full FMA rate now (a SpeedGate, peak.hpp), checked right before and right after
  // every timed run; null: every run counts. A run with a failed check before or after it counts only when too few
  // runs pass (see Timing): on a shared host a core's FMA rate halves for stretches of tens of milliseconds to
  // seconds, for every implementation alike, and a median then depends on how many runs a stretch caught.
  std::function<bool()> full_speed;
};

struct Timing {
  // The median of the runs at full speed, or of every run (see summarize_together).
  double median_ms = 0;
  double median_all_ms = 0;      // the median of every run
  std::vector<double> times_ms;  // every timed run, in order
  std::vector<bool> full_speed;  // per run: the speed checks before and after it passed (all true without checks)
  int full_speed_runs() const;
  bool from_full_speed_runs = false;  // median_ms is the median of the runs at full speed
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
// With a speed check (TimingRule::full_speed) the minimums count the runs at full speed; an implementation that
// has not reached them after kGiveUpFactor times the minimums in all stops there, and the medians of all of them
// are then over every run (summarize_together). This machine's speed drifts by tens of percent over seconds (a shared core); timed one after the other, two
// implementations sampled different stretches of it and their ratio moved by as much, timed in turns they sample
// the same stretches. Until finished, an implementation more than one of its runs ahead of the unfinished one that
// has accumulated the least time sits a cycle out, so that each accumulates time at the same pace and a slow one's
// runs are spread over the whole stretch; once finished, it runs along with each run of a slower unfinished one.
// When the turn passes to another process, the next run waits until the previous process has
// gone idle: libgomp's workers spin for about 9 ms after a parallel region here, and would take a core from it.
// A contender whose run throws is left out of the cycles from then on, its Timing holding the message. One Timing
// per implementation, in the order given.
inline constexpr int kGiveUpFactor = 3;
// Sets the medians of implementations timed together (in turns, and pooled over rounds): median_ms over the runs at
// full speed if every one of them has at least min_runs such runs, else over every run, for all of them alike. A
// long run has fewer chances than a short one to pass both its checks, so a rule per implementation would compare
// the slow one's every run with the fast one's best stretches.
void summarize_together(const std::vector<Timing*>& timings, int min_runs);
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
