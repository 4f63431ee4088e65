#pragma once
// The machine's fp32 FMA peak, measured rather than taken from a datasheet (BENCHMARKING.md): independent FMA
// chains, enough of them to hide the FMA latency, on 1..N threads at once.
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

}  // namespace bench
