#pragma once
// oneDNN as a peer: the same layer run by oneDNN's convolution / deconvolution primitives, in two variants whose
// faster one is oneDNN's best case (BENCHMARKING.md: its blocked layouts lose to plain ones with few channels):
//   any:   src, weights and dst in format_tag::any (oneDNN's own choice, usually channels blocked by 16);
//   plain: src and dst in the layer's plain layout (NCHW or NHWC ...), weights in format_tag::any.
// Weights may always take oneDNN's preferred format because they are reordered once, outside the timed region,
// just as tdconv packs its weights once; activations are reordered outside the timed region too (variant any),
// which favours oneDNN (a network would pay for them unless every layer agreed on the format).
#include "results.hpp"
#include "tdconv/problem.hpp"
#include "tensors.hpp"

namespace bench {

struct OneDnnRuns {
  PeerRun any;
  PeerRun plain;
};

// Whether oneDNN was compiled in, its version and what it will run on.
PeerStatus onednn_status();

// src and weights in the problem's layouts (torch weights); `tdconv_dst`, when given, is compared with oneDNN's
// output (max_rel_error in each run) so that a wrongly configured peer shows up.
OneDnnRuns run_onednn(const tdconv::Problem& p, const Buffer& src, const Buffer& weights, const Buffer* tdconv_dst,
                      const TimingRule& rule);

}  // namespace bench
