#pragma once
// The interface every implementation of the Plan API provides, and the ordered list the planner walks.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tdconv/problem.hpp"

namespace tdconv::detail {

// Weights as an implementation wants them. The base keeps the plan's identity so that a plan can refuse weights
// packed by another plan.
struct PackedData {
  virtual ~PackedData() = default;
  const void* owner = nullptr;  // identity of the plan that packed them
  std::size_t bytes = 0;
};

// What an implementation works out once per plan (geometry, chosen kernels). May be null.
struct PlanState {
  virtual ~PlanState() = default;
};

// Raw pointers whose shapes and dtypes the Plan has already checked against the problem.
struct ForwardArgs {
  const PlanState* state;
  const void* src;
  const PackedData* weights;
  const void* bias;  // may be null
  void* dst;
};
struct BackwardDataArgs {
  const void* diff_dst;
  const void* weights;
  void* diff_src;
};
struct BackwardWeightsArgs {
  const void* src;
  const void* diff_dst;
  void* diff_weights;
  void* diff_bias;  // may be null
};

class Implementation {
 public:
  virtual ~Implementation() = default;
  virtual std::string name() const = 0;
  // nullopt when the implementation can run this (validated) problem; otherwise why not, in one short phrase.
  virtual std::optional<std::string> declines(const Problem& p) const = 0;
  // Plan-time work for a problem this implementation supports.
  virtual std::shared_ptr<const PlanState> prepare(const Problem&) const { return nullptr; }
  // Rearranges the weights (dense, in the problem's weight layout) for forward().
  virtual std::shared_ptr<PackedData> pack_weights(const Problem& p, const PlanState* state,
                                                   const void* weights) const = 0;
  virtual void forward(const Problem& p, const ForwardArgs& args) const = 0;
  // Bytes of scratch that forward() uses with `threads` OpenMP threads, packed weights not counted (each thread
  // keeps its buffers between calls, so this is also what stays allocated).
  virtual std::size_t forward_workspace_bytes(const Problem&, const PlanState*, int /*threads*/) const { return 0; }
  virtual void backward_data(const Problem& p, const BackwardDataArgs& args) const = 0;
  virtual void backward_weights(const Problem& p, const BackwardWeightsArgs& args) const = 0;
};

// Most specialised first; the reference, which supports everything, last.
const std::vector<std::shared_ptr<const Implementation>>& implementations();

// The reference, for implementations that delegate passes they do not accelerate.
std::shared_ptr<const Implementation> reference_implementation();

// An implementation that accelerates the forward pass only: both backward passes run on the reference.
class ForwardOnlyImplementation : public Implementation {
 public:
  void backward_data(const Problem& p, const BackwardDataArgs& args) const final {
    reference_->backward_data(p, args);
  }
  void backward_weights(const Problem& p, const BackwardWeightsArgs& args) const final {
    reference_->backward_weights(p, args);
  }

 private:
  std::shared_ptr<const Implementation> reference_ = reference_implementation();
};

}  // namespace tdconv::detail
