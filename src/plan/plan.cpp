// The planner: validation, the choice of implementation, and the checks every execution makes on its views.
#ifdef _OPENMP
#include <omp.h>
#endif
#include "tdconv/plan.hpp"

#include <cstdlib>
#include <iostream>

#include "engine/weight_gradient.hpp"
#include "plan/adjoint.hpp"
#include "plan/implementation.hpp"
#include "plan/verbose.hpp"
#include "tdconv/error.hpp"

namespace tdconv {
namespace {

void check_view(const char* name, DType dtype, const Shape& shape, const void* data, const Problem& p,
                const std::vector<std::int64_t>& expected) {
  if (data == nullptr) throw Error(name, std::string(name) + " has no data (null pointer)");
  if (dtype != p.dtype) {
    throw Error(name, std::string(name) + " is " + std::string(to_string(dtype)) + " but the problem is " +
                          std::string(to_string(p.dtype)));
  }
  if (!(shape == Shape(expected))) {
    throw Error(name, std::string(name) + " has shape " + shape.to_string() + " but the problem needs " +
                          Shape(expected).to_string());
  }
}

template <class View>
void check(const char* name, const View& v, const Problem& p, const std::vector<std::int64_t>& expected) {
  check_view(name, v.dtype, v.shape, v.data, p, expected);
}

template <class View>
void check_optional(const char* name, const View& v, const Problem& p, const std::vector<std::int64_t>& expected) {
  if (v.data != nullptr) check(name, v, p, expected);
}

}  // namespace

Plan::Plan(const Problem& problem, const PlanOptions& options) : problem_(problem) {
  validate(problem_);
  adjoint_ = std::make_shared<const detail::AdjointPlan>(problem_);
  for (const auto& impl : detail::implementations()) {
    std::optional<std::string> reason = impl->declines(problem_);
    if (!reason && !options.implementation.empty() && impl->name() != options.implementation) {
      reason = "not the requested implementation '" + options.implementation + "'";
    }
    candidates_.push_back({impl->name(), reason.value_or("")});
    if (!reason && impl_ == nullptr) impl_ = impl;
  }
  if (detail::verbose()) {
    std::cerr << "tdconv: plan " << to_string(problem_) << "\n";
    for (const auto& c : candidates_) {
      std::cerr << "tdconv:   " << c.name << ": "
                << (c.declined_because.empty() ? (impl_ && c.name == impl_->name() ? "chosen" : "supported")
                                               : "declined, " + c.declined_because)
                << "\n";
    }
  }
  if (impl_ != nullptr) state_ = impl_->prepare(problem_);
  if (impl_ == nullptr) {
    throw Error("implementation", options.implementation.empty()
                                      ? "no implementation supports " + to_string(problem_)
                                      : "'" + options.implementation + "' does not exist or declines " +
                                            to_string(problem_));
  }
}

Plan::~Plan() = default;
Plan::Plan(Plan&&) noexcept = default;
Plan& Plan::operator=(Plan&&) noexcept = default;

const std::string& Plan::implementation_name() const {
  for (const auto& c : candidates_) {
    if (c.name == impl_->name()) return c.name;
  }
  return candidates_.back().name;
}

PackedWeights::PackedWeights() = default;
PackedWeights::~PackedWeights() = default;
PackedWeights::PackedWeights(const PackedWeights&) = default;
PackedWeights& PackedWeights::operator=(const PackedWeights&) = default;
std::size_t PackedWeights::bytes() const { return data_ ? data_->bytes : 0; }

PackedWeights Plan::pack_weights(const TensorView& weights) const {
  check("weights", weights, problem_, weights_shape(problem_));
  PackedWeights packed;
  auto data = impl_->pack_weights(problem_, state_.get(), weights.data);
  data->owner = identity_.get();
  packed.data_ = std::move(data);
  return packed;
}

void Plan::forward(const TensorView& src, const PackedWeights& weights, const TensorView& bias,
                   const MutableTensorView& dst) const {
  check("src", src, problem_, src_shape(problem_));
  if (weights.data_ == nullptr || weights.data_->owner != identity_.get()) {
    throw Error("weights", "packed weights come from another plan (or are empty); pack them with this plan");
  }
  check_optional("bias", bias, problem_, bias_shape(problem_));
  check("dst", dst, problem_, dst_shape(problem_));
  impl_->forward(problem_, {state_.get(), src.data, weights.data_.get(), bias.data, dst.data});
}

std::size_t Plan::forward_workspace_bytes() const {
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
#else
  const int threads = 1;
#endif
  return impl_->forward_workspace_bytes(problem_, state_.get(), threads);
}

void Plan::forward(const TensorView& src, const TensorView& weights, const TensorView& bias,
                   const MutableTensorView& dst) const {
  forward(src, pack_weights(weights), bias, dst);
}

void Plan::backward_data(const TensorView& diff_dst, const TensorView& weights,
                         const MutableTensorView& diff_src) const {
  check("diff_dst", diff_dst, problem_, dst_shape(problem_));
  check("weights", weights, problem_, weights_shape(problem_));
  check("diff_src", diff_src, problem_, src_shape(problem_));
  // A plan made for the reference (PlanOptions) keeps every pass on it.
  if (impl_ != detail::reference_implementation() && adjoint_->backward_data(diff_dst, weights, diff_src)) return;
  impl_->backward_data(problem_, {diff_dst.data, weights.data, diff_src.data});
}

void Plan::backward_weights(const TensorView& src, const TensorView& diff_dst, const MutableTensorView& diff_weights,
                            const MutableTensorView& diff_bias) const {
  check("src", src, problem_, src_shape(problem_));
  check("diff_dst", diff_dst, problem_, dst_shape(problem_));
  check("diff_weights", diff_weights, problem_, weights_shape(problem_));
  check_optional("diff_bias", diff_bias, problem_, bias_shape(problem_));
  if (problem_.dtype == DType::f32 && impl_ != detail::reference_implementation()) {
    return engine::weight_gradient(problem_, static_cast<const float*>(src.data),
                                   static_cast<const float*>(diff_dst.data), static_cast<float*>(diff_weights.data),
                                   static_cast<float*>(diff_bias.data));
  }
  impl_->backward_weights(problem_, {src.data, diff_dst.data, diff_weights.data, diff_bias.data});
}

std::vector<std::string> implementation_names() {
  std::vector<std::string> names;
  for (const auto& impl : detail::implementations()) names.push_back(impl->name());
  return names;
}

}  // namespace tdconv
