#pragma once
// PyTorch as a peer: bench/torch_peer.py run by Debian's /usr/bin/python3 (the one with python3-torch) in a
// subprocess, one layer per call, with the environment BENCHMARKING.md asks for. It computes on the same data as
// tdconv (raw float32 files in a scratch folder) and hands its output back, so that a wrongly configured call shows
// up as a mismatch.
#include <string>

#include "results.hpp"
#include "tdconv/problem.hpp"
#include "tensors.hpp"

namespace bench {

// The environment the subprocess runs with, as printed in the report.
std::string torch_environment(int threads);

// Whether torch imports, and its version.
PeerStatus torch_status();

PeerRun run_torch(const std::string& name, const tdconv::Problem& p, const Buffer& src, const Buffer& weights,
                  const Buffer* tdconv_dst, int threads, const TimingRule& rule, const std::string& scratch_dir);

}  // namespace bench
