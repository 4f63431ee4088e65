#pragma once
// tdconv's own measurement of a layer, through the public Plan API exactly as a user would call it: plan once
// (timed apart), pack the weights once (timed apart), then forward() with the packed weights and no bias.
#include <memory>

#include "results.hpp"
#include "tdconv/problem.hpp"
#include "tensors.hpp"

namespace bench {

// tdconv set up for one layer: planned and packed on construction (those times recorded), then run() once per
// timed run, in turns with the peers (time_in_turns).
class TdconvContender {
 public:
  TdconvContender(const tdconv::Problem& p, const Buffer& src, const Buffer& weights);
  ~TdconvContender();
  void run() const;
  // The record of the runs timed in `timing`; checks that every output element was written with a finite value.
  TdconvRun result(const Timing& timing) const;
  const Buffer& dst() const { return dst_; }  // the output of the last run, for checking the peers

 private:
  struct Prepared;
  std::unique_ptr<Prepared> prepared_;
  TdconvRun info_;
  Buffer dst_;
};

}  // namespace bench
