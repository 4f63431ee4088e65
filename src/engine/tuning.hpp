#pragma once
// Choices of the engine that depend on the CPU model rather than on its instruction sets: measured on the machines
// the suite was tuned on, keyed by what the CPU says it is. The instruction sets themselves are Highway's to detect
// (kernels.hpp).
#include <optional>

namespace tdconv::engine {

struct Tuning {
  // Whether the tall gemm tiles add their products in passes whose packed weights fit L1 (see engine.cpp's
  // choose_passes) rather than in passes of a few hundred KiB read from L2.
  bool l1_weight_passes = false;
};

// The tuning of this CPU (as replaced by force_tuning, if set).
Tuning cpu_tuning();

// Replaces cpu_tuning()'s answer (tests use it to run both kinds of passes on any machine); nullopt restores it.
void force_tuning(std::optional<Tuning> tuning);

}  // namespace tdconv::engine
