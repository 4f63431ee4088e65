#pragma once
// Plan once, execute many. A Plan validates a problem, picks an implementation from an ordered list (most
// specialised first, the reference last), and then runs it on tensor views as often as needed. Executing a plan
// does not change it, so one plan may be executed from several threads at once on different data.
// TDCONV_VERBOSE=1 in the environment prints the choice and every declined candidate's reason on stderr.
#include <memory>
#include <string>
#include <vector>

#include "tdconv/problem.hpp"
#include "tdconv/tensor.hpp"

namespace tdconv {

namespace detail {
class AdjointPlan;
class Implementation;
struct PackedData;
struct PlanState;
}

// Weights rearranged once for a plan's implementation (Plan::pack_weights), so that executing the plan repeatedly
// does not repack them. Valid only with the plan that made it; cheap to copy (shared, immutable).
class PackedWeights {
 public:
  PackedWeights();
  ~PackedWeights();
  PackedWeights(const PackedWeights&);
  PackedWeights& operator=(const PackedWeights&);
  std::size_t bytes() const;

 private:
  friend class Plan;
  std::shared_ptr<const detail::PackedData> data_;
};

struct PlanOptions {
  // Empty: the first implementation that supports the problem. Otherwise that implementation or an error.
  std::string implementation;
};

// One candidate's answer for a problem, as reported by Plan::candidates().
struct Candidate {
  std::string name;
  std::string declined_because;  // empty when the candidate supports the problem
};

class Plan {
 public:
  explicit Plan(const Problem& problem, const PlanOptions& options = {});
  ~Plan();
  Plan(Plan&&) noexcept;
  Plan& operator=(Plan&&) noexcept;

  const Problem& problem() const { return problem_; }
  const std::string& implementation_name() const;
  // Every implementation in order, with the reason each declined this problem (empty for the chosen and later).
  const std::vector<Candidate>& candidates() const { return candidates_; }

  // Packs the weights for this plan (done once; the result may be used from several threads).
  PackedWeights pack_weights(const TensorView& weights) const;

  // dst = op(src; weights) + bias. `bias.data` may be null (no bias). Allocates nothing beyond the first call on a
  // thread (each thread keeps its scratch buffers).
  void forward(const TensorView& src, const PackedWeights& weights, const TensorView& bias,
               const MutableTensorView& dst) const;
  // The same with unpacked weights: packs them first (allocates), convenient for one-off calls.
  void forward(const TensorView& src, const TensorView& weights, const TensorView& bias,
               const MutableTensorView& dst) const;
  // Bytes of scratch forward() uses with the current OpenMP thread count (packed weights not counted): buffers
  // each executing thread allocates on its first call and keeps.
  std::size_t forward_workspace_bytes() const;
  // Gradient with respect to src, given the gradient with respect to dst. float32 runs as the forward pass of the
  // adjoint problem (a transposed convolution's for a convolution, and the other way round) on its fast path, planned
  // on the first call and packing the weights on every call (allocates); float64, and plans made for the reference
  // (PlanOptions::implementation), on the reference.
  void backward_data(const TensorView& diff_dst, const TensorView& weights, const MutableTensorView& diff_src) const;
  // Gradients with respect to the weights and the bias (`diff_bias.data` may be null). float32 runs on SIMD tiles
  // (products summed over pixels in float; keeps per-thread copies of one image of src and diff_dst and a
  // weights-sized buffer of sums); float64, and plans made for the reference, on the reference.
  void backward_weights(const TensorView& src, const TensorView& diff_dst, const MutableTensorView& diff_weights,
                        const MutableTensorView& diff_bias) const;

 private:
  Problem problem_;
  std::vector<Candidate> candidates_;
  std::shared_ptr<const detail::Implementation> impl_;
  std::shared_ptr<const detail::PlanState> state_;
  std::shared_ptr<const detail::AdjointPlan> adjoint_;  // backward_data's plan, made when first needed
  std::shared_ptr<const char> identity_ = std::make_shared<const char>('\0');  // stable across moves
};

// The names of every implementation, in the order a plan tries them.
std::vector<std::string> implementation_names();

}  // namespace tdconv
