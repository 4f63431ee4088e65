#pragma once
// oneDNN as a peer: the same layer run by oneDNN's convolution / deconvolution primitives, in two variants whose
// faster one is oneDNN's best case (BENCHMARKING.md: its blocked layouts lose to plain ones with few channels):
//   any:   src, weights and dst in format_tag::any (oneDNN's own choice, usually channels blocked by 16);
//   plain: src and dst in the layer's plain layout (NCHW or NHWC ...), weights in format_tag::any.
// Weights may always take oneDNN's preferred format because they are reordered once, outside the timed region,
// just as tdconv packs its weights once; activations are reordered outside the timed region too (variant any),
// which favours oneDNN (a network would pay for them unless every layer agreed on the format).
#include <memory>
#include <string>
#include <vector>

#include "layers.hpp"
#include "results.hpp"
#include "tdconv/problem.hpp"
#include "tensors.hpp"

namespace bench {

PeerStatus onednn_status();

// One oneDNN variant of one layer: the primitive built and its inputs reordered on construction, then run() once
// per timed run, in turns with tdconv (time_in_turns). When oneDNN cannot express the layer or refuses it, ready()
// is false and result() says why.
class OneDnnVariant {
 public:
  // `diff_dst`: the output's gradient, for the backward pass (its two primitives run in one timed run).
  OneDnnVariant(const tdconv::Problem& p, Pass pass, bool any_activations, const Buffer& src, const Buffer& weights,
                const Buffer& diff_dst);
  ~OneDnnVariant();
  OneDnnVariant(const OneDnnVariant&) = delete;
  OneDnnVariant& operator=(const OneDnnVariant&) = delete;
  bool ready() const { return prepared_ != nullptr; }
  void run();
  // The record of the runs timed in `timing`, with the largest error against tdconv's output when given (each of
  // its parts on its own scale, see TdconvContender::parts).
  PeerRun result(const Timing& timing, const Buffer* tdconv_dst, const std::vector<std::int64_t>& parts);
  struct Prepared;

 private:
  void refuse(const std::string& what);
  std::unique_ptr<Prepared> prepared_;
  std::string detail_;
  PeerRun failure_;  // why there is no primitive
};

}  // namespace bench
