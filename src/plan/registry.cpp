// The ordered list of implementations. Fast paths are inserted before the reference, most specialised first.
#include "engine/engine.hpp"
#include "engine/planar.hpp"
#include "engine/planar_gemm.hpp"
#include "engine/projection.hpp"
#include "engine/scatter.hpp"
#include "engine/subpixel.hpp"
#include "engine/winograd.hpp"
#include "plan/implementation.hpp"
#include "reference/reference.hpp"

namespace tdconv::detail {
namespace {

class ReferenceImplementation final : public Implementation {
 public:
  std::string name() const override { return "reference"; }
  std::optional<std::string> declines(const Problem&) const override { return std::nullopt; }

  // The reference reads the weights as given: its "packing" is a copy.
  struct Copy final : PackedData {
    std::vector<std::byte> bytes_of_weights;
  };
  std::shared_ptr<PackedData> pack_weights(const Problem& p, const PlanState*, const void* weights) const override {
    auto copy = std::make_shared<Copy>();
    copy->bytes = static_cast<std::size_t>(element_count(weights_shape(p), "weights")) * dtype_size(p.dtype);
    const auto* first = static_cast<const std::byte*>(weights);
    copy->bytes_of_weights.assign(first, first + copy->bytes);
    return copy;
  }

  void forward(const Problem& p, const ForwardArgs& a) const override {
    const void* w = static_cast<const Copy*>(a.weights)->bytes_of_weights.data();
    if (p.dtype == DType::f32) {
      reference::forward(p, as<float>(a.src), as<float>(w), as<float>(a.bias), as<float>(a.dst));
    } else {
      reference::forward(p, as<double>(a.src), as<double>(w), as<double>(a.bias), as<double>(a.dst));
    }
  }
  // Products are summed in double, one accumulator per output element.
  std::size_t forward_workspace_bytes(const Problem& p, const PlanState*, int) const override {
    return static_cast<std::size_t>(element_count(dst_shape(p), "dst")) * sizeof(double);
  }

  void backward_data(const Problem& p, const BackwardDataArgs& a) const override {
    if (p.dtype == DType::f32) {
      reference::backward_data(p, as<float>(a.diff_dst), as<float>(a.weights), as<float>(a.diff_src));
    } else {
      reference::backward_data(p, as<double>(a.diff_dst), as<double>(a.weights), as<double>(a.diff_src));
    }
  }
  void backward_weights(const Problem& p, const BackwardWeightsArgs& a) const override {
    if (p.dtype == DType::f32) {
      reference::backward_weights(p, as<float>(a.src), as<float>(a.diff_dst), as<float>(a.diff_weights),
                                  as<float>(a.diff_bias));
    } else {
      reference::backward_weights(p, as<double>(a.src), as<double>(a.diff_dst), as<double>(a.diff_weights),
                                  as<double>(a.diff_bias));
    }
  }

 private:
  template <class T>
  static const T* as(const void* p) { return static_cast<const T*>(p); }
  template <class T>
  static T* as(void* p) { return static_cast<T*>(p); }
};

}  // namespace

std::shared_ptr<const Implementation> reference_implementation() {
  static const auto reference = std::make_shared<ReferenceImplementation>();
  return reference;
}

const std::vector<std::shared_ptr<const Implementation>>& implementations() {
  static const std::vector<std::shared_ptr<const Implementation>> list{
      engine::make_winograd_engine(),        engine::make_scatter_engine(),    engine::make_planar_engine(),
      engine::make_planar_winograd_engine(), engine::make_planar_gemm_engine(), engine::make_depthwise_engine(),
      engine::make_dot_engine(),
      engine::make_subpixel_engine(),    engine::make_projection_engine(), engine::make_gemm_engine(),
      reference_implementation()};
  return list;
}

}  // namespace tdconv::detail
