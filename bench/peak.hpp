#pragma once
// The machine's fp32 FMA peak, measured rather than taken from a datasheet (BENCHMARKING.md): independent FMA
// chains, enough of them to hide the FMA latency, on 1..N threads at once.
#include <cstdint>
#include <string>

namespace bench {

struct Peak {
  std::string isa;  // "avx512f", "avx2+fma" or "scalar": the widest the CPU runs
  int threads = 1;
  double gflops = 0;
  double other_load = -1;  // share of the CPUs other processes used meanwhile (see LoadMeter); negative: unknown
};

// Runs the kernel on `threads` threads at once for about `seconds` and returns the GFLOP/s of all of them together.
Peak measure_fma_peak(int threads, double seconds);

// Whether the cores run at their full FMA rate right now: the peak's kernel for about kProbeSeconds on `threads`
// threads at once, each of which must reach kFullSpeed of the reference rate (the per-thread peak, raised by any
// faster probe). On this host a core's FMA rate halves for stretches of tens of milliseconds to seconds, each core
// on its own (a register-tile loop read 50 against 90 GFLOP/s, Zen 3), which slows a compute-bound
// implementation 1.7x and a memory-bound one far less: medians over a mix of both stretches compared a different
// mix of machines each time. The timing turns check before and after every run (TimingRule::full_speed).
class SpeedGate {
 public:
  static constexpr double kProbeSeconds = 0.0003;
  static constexpr double kFullSpeed = 0.8;
  SpeedGate(int threads, double gflops_per_thread);
  bool operator()();

 private:
  std::int64_t (*kernel_)(std::int64_t, float*);  // the peak's kernel, picked once
  int threads_;
  double reference_;
};

}  // namespace bench
