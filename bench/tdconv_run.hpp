#pragma once
// tdconv's own measurement of a layer, through the public Plan API exactly as a user would call it: plan once
// (timed apart), pack the weights once (timed apart), then forward() with the packed weights and no bias.
#include "results.hpp"
#include "tdconv/problem.hpp"
#include "tensors.hpp"

namespace bench {

struct TdconvOutput {
  TdconvRun run;
  Buffer dst;  // the output of the last timed run, for checking the peers
};

TdconvOutput run_tdconv(const tdconv::Problem& p, const Buffer& src, const Buffer& weights, const TimingRule& rule);

}  // namespace bench
