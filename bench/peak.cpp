// Measures the FMA peak: picks the widest kernel the CPU runs, starts all threads together, and counts FLOPs over
// the slowest thread's time (the threads share the machine, so the peak of N is what N do at once).
#include "peak.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "fma_kernels.hpp"
#include "timing.hpp"

namespace bench {
namespace detail {

// Portable fallback: plain float arithmetic with independent chains (std::fma may be a library call without an FMA
// unit, which is then the honest peak of this build).
std::int64_t fma_chains_scalar(std::int64_t iterations, float* sink) {
  constexpr int kChains = 8;
  float acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = static_cast<float>(j);
  for (std::int64_t i = 0; i < iterations; ++i) {
    for (float& v : acc) v = std::fma(v, 0.9999f, 1e-3f);
  }
  float total = 0;
  for (float v : acc) total += v;
  *sink = total;
  return iterations * kChains * 2;
}

}  // namespace detail
namespace {

using Kernel = std::int64_t (*)(std::int64_t, float*);

Kernel pick_kernel(std::string& isa) {
#if defined(TDCONV_BENCH_X86)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    isa = "avx512f";
    return detail::fma_chains_avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    isa = "avx2+fma";
    return detail::fma_chains_avx2;
  }
#endif
  isa = "scalar";
  return detail::fma_chains_scalar;
}

struct ThreadResult {
  double flops = 0;
  double seconds = 0;
  float sink = 0;
};

// One thread's share: batches of `batch` iterations until `seconds` have passed.
void run_for(Kernel kernel, std::int64_t batch, double seconds, const std::atomic<bool>& go, ThreadResult& out) {
  while (!go.load(std::memory_order_acquire)) {
  }
  const double start = now_seconds();
  double elapsed = 0;
  do {
    out.flops += static_cast<double>(kernel(batch, &out.sink));
    elapsed = now_seconds() - start;
  } while (elapsed < seconds);
  out.seconds = elapsed;
}

// Every thread runs the kernel for `seconds` at once (the calling thread is the first).
std::vector<ThreadResult> run_together(Kernel kernel, std::int64_t batch, int threads, double seconds) {
  std::vector<ThreadResult> results(static_cast<std::size_t>(threads));
  std::atomic<bool> go{false};
  std::vector<std::thread> workers;
  for (std::size_t t = 1; t < results.size(); ++t) {
    workers.emplace_back(run_for, kernel, batch, seconds, std::cref(go), std::ref(results[t]));
  }
  go.store(true, std::memory_order_release);
  run_for(kernel, batch, seconds, go, results[0]);
  for (auto& w : workers) w.join();
  return results;
}

// One round: every thread runs the kernel for `seconds`; GFLOP/s of all of them together.
double one_round(Kernel kernel, int threads, double seconds) {
  double flops = 0;
  double slowest = 0;
  for (const auto& r : run_together(kernel, 1 << 18, threads, seconds)) {
    flops += r.flops;
    slowest = std::max(slowest, r.seconds);
  }
  return flops / slowest * 1e-9;
}

}  // namespace

SpeedGate::SpeedGate(int threads, double gflops_per_thread) : threads_(threads), reference_(gflops_per_thread) {
  std::string isa;
  kernel_ = pick_kernel(isa);
}

bool SpeedGate::operator()() {
  double slowest = std::numeric_limits<double>::infinity();
  // Batches of a few microseconds, so that the probe ends close to kProbeSeconds.
  for (const auto& r : run_together(kernel_, 1 << 10, threads_, kProbeSeconds)) {
    slowest = std::min(slowest, r.flops / r.seconds * 1e-9);
  }
  reference_ = std::max(reference_, slowest);
  return slowest >= kFullSpeed * reference_;
}

Peak measure_fma_peak(int threads, double seconds) {
  Peak peak;
  peak.threads = threads;
  const Kernel kernel = pick_kernel(peak.isa);
  const LoadMeter load;
  // The best of a few short rounds: other work on the machine only ever lowers a round, never raises it.
  constexpr int kRounds = 4;
  for (int round = 0; round < kRounds; ++round) {
    peak.gflops = std::max(peak.gflops, one_round(kernel, threads, seconds / kRounds));
  }
  peak.other_load = load.other_load();
  return peak;
}

}  // namespace bench
