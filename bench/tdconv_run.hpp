#pragma once
// tdconv's own measurement of a layer, through the public Plan API exactly as a user would call it: plan once
// (timed apart), then
//   forward:  pack the weights once (timed apart), then forward() with the packed weights and no bias;
//   backward: backward_data() and backward_weights() (no bias gradient) from the unpacked weights, as a training
//             step calls them when the weights change every step (backward_data packs them, inside the timing).
#include <memory>
#include <vector>

#include "layers.hpp"
#include "results.hpp"
#include "tdconv/problem.hpp"
#include "tensors.hpp"

namespace bench {

// tdconv set up for one layer: planned (and for the forward pass packed) on construction, those times recorded,
// then run() once per timed run, in turns with the peers (time_in_turns).
class TdconvContender {
 public:
  // `diff_dst`: the gradient of the output, for the backward pass (unused by the forward pass).
  TdconvContender(const tdconv::Problem& p, Pass pass, const Buffer& src, const Buffer& weights,
                  const Buffer& diff_dst);
  ~TdconvContender();
  void run() const;
  // The record of the runs timed in `timing`; checks that every output element was written with a finite value.
  TdconvRun result(const Timing& timing) const;
  // The output of the last run, for checking the peers: dst for the forward pass; for the backward pass diff_src
  // (the problem's layout) followed by diff_weights (torch's layout).
  const Buffer& dst() const { return dst_; }
  // Where the output's parts start (one part forward, two backward), each compared on its own scale.
  const std::vector<std::int64_t>& parts() const { return parts_; }

 private:
  struct Prepared;
  std::unique_ptr<Prepared> prepared_;
  TdconvRun info_;
  Buffer dst_;
  std::vector<std::int64_t> parts_;
};

}  // namespace bench
