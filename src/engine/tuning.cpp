#include "engine/tuning.hpp"

#include <cstring>
#include <mutex>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace tdconv::engine {
namespace {

std::mutex g_tuning_mutex;
std::optional<Tuning> g_forced;

bool is_amd() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return false;
  char vendor[12];
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  return std::memcmp(vendor, "AuthenticAMD", 12) == 0;
#else
  return false;
#endif
}

Tuning detect() {
  Tuning t;
  // AMD's Zen 4 ran a 6 x 64 tile at 65% of its FMA peak with the weights in L2 and 95% with them in L1, and the
  // suite fastest with 32 KiB passes. An Intel Xeon (family 6 model 167, 48 KiB L1, 2 MiB L2) runs the same tile at
  // 216-219 GFLOP/s with 256-512 KiB of weights against 222 with 32 KiB (isolated, 1 thread), and the layers of
  // the gemm path with several passes 1.05-1.12x as fast with 256 KiB passes as with 32 KiB (ASPP rates 6 and 18,
  // DCGAN g2; both layouts, 1 and 2 threads, timed in turns in one process): fewer partial sums stored and
  // reloaded, fewer calls. Other CPUs take the passes that cost least where L2 is fast.
  t.l1_weight_passes = is_amd();
  return t;
}

}  // namespace

Tuning cpu_tuning() {
  static const Tuning detected = detect();
  const std::lock_guard<std::mutex> lock(g_tuning_mutex);
  return g_forced ? *g_forced : detected;
}

void force_tuning(std::optional<Tuning> tuning) {
  const std::lock_guard<std::mutex> lock(g_tuning_mutex);
  g_forced = tuning;
}

}  // namespace tdconv::engine
