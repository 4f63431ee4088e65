#pragma once
// PyTorch as a peer: bench/torch_peer.py run by Debian's /usr/bin/python3 (the one with python3-torch) in a helper
// process that serves the whole benchmark run, with the environment BENCHMARKING.md asks for. A layer is set up on
// it once (same data as tdconv, through raw float32 files in a scratch folder), then each run is one request, so
// that time_in_turns times it in turns with tdconv and oneDNN. Its output comes back through a file, so that a
// wrongly configured call shows up as a mismatch.
#include <memory>
#include <string>
#include <vector>

#include "layers.hpp"
#include "results.hpp"
#include "tdconv/problem.hpp"
#include "tensors.hpp"
#include "timing.hpp"

namespace bench {

class ChildProcess;

// The environment the helper runs with, as printed in the report.
std::string torch_environment(int threads);

// Whether torch imports, and its version.
PeerStatus torch_status();

// The helper process (torch_peer.py --serve with `threads` threads). Started on construction.
class TorchPeer {
 public:
  explicit TorchPeer(int threads);
  ~TorchPeer();
  TorchPeer(const TorchPeer&) = delete;
  TorchPeer& operator=(const TorchPeer&) = delete;
  bool alive() const;  // false once it has died; a new one is needed then
  int pid() const;
  std::string ask(const std::string& request);  // one JSON line each way

 private:
  std::unique_ptr<ChildProcess> process_;
};

// One layer set up on the peer: its inputs written to `scratch_dir` and its call built and run once on
// construction; then contender() runs it once per turn. When the setup fails, ready() is false and result() says
// why.
class TorchContender {
 public:
  // `diff_dst`: the output's gradient, for the backward pass.
  TorchContender(TorchPeer& peer, const std::string& name, const tdconv::Problem& p, Pass pass, const Buffer& src,
                 const Buffer& weights, const Buffer& diff_dst, std::string scratch_dir);
  ~TorchContender();  // removes its files from the scratch folder
  TorchContender(const TorchContender&) = delete;
  TorchContender& operator=(const TorchContender&) = delete;
  bool ready() const { return ready_; }
  Contender contender();
  // The record of the runs timed in `timing`, with the largest error of the setup's output against tdconv's (each
  // part on its own scale, see TdconvContender::parts).
  PeerRun result(const Timing& timing, const Buffer& tdconv_dst, const std::vector<std::int64_t>& parts) const;

 private:
  TorchPeer& peer_;
  std::string scratch_dir_;
  bool ready_ = false;
  std::string call_;
  std::string error_;  // why the setup failed
};

}  // namespace bench
