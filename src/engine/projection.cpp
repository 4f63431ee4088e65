// Transposed convolutions whose input is one pixel, with no padding, output padding or dilation (DCGAN's first
// layer: a latent vector of 100 channels projected to 512 channels of 4 x 4). Output pixel (z, y, x) then takes
// exactly kernel tap (z, y, x) of the one input pixel:
//   dst[n][o][tap] = bias[o] + sum over c of src[n][c] * w[c][o][tap]
// which is a dense layer from C_in to C_out x taps outputs. channels_first's destination [n][o][tap] is
// [n][C_out x taps], and its source [n][c] is channels_last's too. So the layer runs as a 1 x 1 convolution on the
// gemm path (one pixel per image, tiles across the batch, channels_last) with output channel o * taps + tap: no
// staging of outputs in channels_last and transposition into the planes, which had taken a fifth of DCGAN g1's
// time. Timed in turns (Intel Xeon), DCGAN g1 ran 1.23x as fast at 1 thread and 1.18x at 2.
#include "engine/projection.hpp"

#include <optional>
#include <string>
#include <vector>

#include "engine/engine.hpp"
#include "engine/weight_index.hpp"
#include "util/aligned_buffer.hpp"

namespace tdconv::engine {
namespace {

using detail::ForwardArgs;
using detail::PackedData;
using detail::PlanState;

struct State final : PlanState {
  Problem dense;  // the 1 x 1 convolution (torch weight layout)
  std::int64_t taps = 1;
  std::shared_ptr<const PlanState> inner;
};

class Projection final : public detail::ForwardOnlyImplementation {
 public:
  std::string name() const override { return "projection_gemm"; }

  std::optional<std::string> declines(const Problem& p) const override {
    if (p.dtype != DType::f32) return "float64 runs on the reference";
    if (p.op != Op::conv_transpose) return "not a transposed convolution";
    // channels_last runs as fast on the gemm path's phases (their outputs already a pixel's channels): DCGAN g1 took
    // 0.98x that time here at 1 thread and 1.10x at 2 (in turns, Intel Xeon).
    if (p.layout != Layout::channels_first) return "not channels_first";
    if (p.groups != 1) return "grouped";
    for (int d = 0; d < p.spatial_dims; ++d) {
      if (p.input[d] != 1) return "input larger than one pixel";
      if (p.pad_begin[d] != 0 || p.pad_end[d] != 0 || p.output_padding[d] != 0) {
        return "padding or output padding (outputs are not the kernel's taps)";
      }
      if (p.dilation[d] != 1 && p.kernel[d] != 1) return "dilated (outputs between the taps are zero)";
    }
    if (auto reason = gemm_->declines(dense_problem(p))) return "the dense layer: " + *reason;
    return std::nullopt;
  }

  std::shared_ptr<const PlanState> prepare(const Problem& p) const override {
    auto s = std::make_shared<State>();
    s->dense = dense_problem(p);
    s->taps = s->dense.out_channels / p.out_channels;
    s->inner = gemm_->prepare(s->dense);
    return s;
  }

  // The dense layer's weights [C_out x taps][C_in] (torch's conv layout), output channel o * taps + tap.
  std::shared_ptr<PackedData> pack_weights(const Problem& p, const PlanState* state,
                                           const void* weights) const override {
    const auto& s = static_cast<const State&>(*state);
    const auto* w = static_cast<const float*>(weights);
    const std::int64_t ic = p.in_channels, oc = p.out_channels;
    std::vector<float> dense(static_cast<std::size_t>(oc * s.taps * ic));
    for (std::int64_t o = 0; o < oc; ++o)
      for (std::int64_t tap = 0; tap < s.taps; ++tap)
        for (std::int64_t c = 0; c < ic; ++c) {
          dense[static_cast<std::size_t>(dense_channel(s, o, tap) * ic + c)] =
              w[weight_index(p, 0, c, o, tap, s.taps)];
        }
    return gemm_->pack_weights(s.dense, s.inner.get(), dense.data());
  }

  // Per thread: the gemm path's, and the bias of every dense output channel.
  std::size_t forward_workspace_bytes(const Problem& p, const PlanState* state, int threads) const override {
    const auto& s = static_cast<const State&>(*state);
    return gemm_->forward_workspace_bytes(s.dense, s.inner.get(), threads) +
           static_cast<std::size_t>(threads * p.out_channels * s.taps) * sizeof(float);
  }

  void forward(const Problem& p, const ForwardArgs& args) const override {
    const auto& s = static_cast<const State&>(*args.state);
    const float* bias = nullptr;
    if (args.bias != nullptr) {
      thread_local util::AlignedFloats dense_bias;  // the caller's thread: this call's bias, per dense channel
      dense_bias.resize(static_cast<std::size_t>(p.out_channels * s.taps));
      const auto* b = static_cast<const float*>(args.bias);
      for (std::int64_t o = 0; o < p.out_channels; ++o)
        for (std::int64_t tap = 0; tap < s.taps; ++tap) {
          dense_bias[static_cast<std::size_t>(dense_channel(s, o, tap))] = b[o];
        }
      bias = dense_bias.data();
    }
    gemm_->forward(s.dense, {s.inner.get(), args.src, args.weights, bias, args.dst});
  }

 private:
  // One pixel per image: [n][C_in] in, [n][C_out x taps] out (channels_last: the gemm path copies nothing).
  static Problem dense_problem(const Problem& p) {
    Problem d;
    d.op = Op::conv;
    d.spatial_dims = 1;
    d.batch = p.batch;
    d.in_channels = p.in_channels;
    std::int64_t taps = 1;
    for (int a = 0; a < p.spatial_dims; ++a) taps *= p.kernel[a];
    d.out_channels = p.out_channels * taps;
    d.dtype = p.dtype;
    d.layout = Layout::channels_last;
    d.weight_layout = WeightLayout::torch;
    return d;
  }

  static std::int64_t dense_channel(const State& s, std::int64_t o, std::int64_t tap) { return o * s.taps + tap; }

  std::shared_ptr<const detail::Implementation> gemm_ = make_gemm_engine();
};

}  // namespace

std::shared_ptr<const detail::Implementation> make_projection_engine() { return std::make_shared<Projection>(); }

}  // namespace tdconv::engine
