// Reference implementation.
//
// Both operations are the same relation between two index spaces, read in opposite directions:
//   dense = strided * stride + k * dilation - pad_begin        (per spatial dimension)
// conv:           strided side = output (dst), dense side = input (src);   dst[strided] += src[dense] * w[k]
// conv_transpose: strided side = input (src),  dense side = output (dst);  dst[dense]  += src[strided] * w[k]
// and in both the weights connect strided-side channel sc to dense-side channel dc of the same group
// (torch layout: (strided channels, dense channels / groups, k...); tf: (k..., dense channels / groups, strided
// channels)). `for_each_tap` enumerates every (strided element, dense element, weight) triple that the definition
// sums over, with flat offsets into the three tensors; each pass below is then one line of arithmetic.
#include "reference/reference.hpp"

#include <vector>

namespace tdconv::reference {
namespace {

struct Offsets {
  std::int64_t strided;
  std::int64_t dense;
  std::int64_t weight;
};

// Flat offset of element (n, c, z, y, x) of an activation tensor (unused leading spatial dims have size 1).
struct ActivationIndex {
  Layout layout;
  std::int64_t channels;
  Dims size;  // spatial sizes padded to 3 dims at the front

  std::int64_t operator()(std::int64_t n, std::int64_t c, const Dims& pos) const {
    const std::int64_t spatial = (pos[0] * size[1] + pos[1]) * size[2] + pos[2];
    const std::int64_t spatial_count = size[0] * size[1] * size[2];
    if (layout == Layout::channels_first) return (n * channels + c) * spatial_count + spatial;
    return (n * spatial_count + spatial) * channels + c;
  }
};

// Spatial values of the problem moved to the back of a 3-array, so that loops always run over 3 dims.
Dims padded3(const Dims& v, int spatial_dims, std::int64_t fill) {
  Dims out{fill, fill, fill};
  for (int d = 0; d < spatial_dims; ++d) out[kMaxSpatialDims - spatial_dims + d] = v[d];
  return out;
}

template <class Fn>
void for_each_tap(const Problem& p, Fn fn) {
  const int n_dims = p.spatial_dims;
  const bool conv = p.op == Op::conv;
  const Dims out = output_size(p);
  const Dims strided_size = padded3(conv ? out : p.input, n_dims, 1);
  const Dims dense_size = padded3(conv ? p.input : out, n_dims, 1);
  const Dims kernel = padded3(p.kernel, n_dims, 1);
  const Dims stride = padded3(p.stride, n_dims, 1);
  const Dims dilation = padded3(p.dilation, n_dims, 1);
  const Dims pad = padded3(p.pad_begin, n_dims, 0);
  const std::int64_t strided_channels = conv ? p.out_channels : p.in_channels;
  const std::int64_t dense_channels = conv ? p.in_channels : p.out_channels;
  const std::int64_t sc_per_group = strided_channels / p.groups;
  const std::int64_t dc_per_group = dense_channels / p.groups;
  const ActivationIndex strided_index{p.layout, strided_channels, strided_size};
  const ActivationIndex dense_index{p.layout, dense_channels, dense_size};
  const std::int64_t kernel_volume = kernel[0] * kernel[1] * kernel[2];

  auto weight_offset = [&](std::int64_t sc, std::int64_t dcg, std::int64_t tap) {
    if (p.weight_layout == WeightLayout::torch) return (sc * dc_per_group + dcg) * kernel_volume + tap;
    return (tap * dc_per_group + dcg) * strided_channels + sc;
  };

  // The dense-side channels of the group innermost: each (strided element, tap) pair's dense position and its
  // padding check are computed once for all of them (the reference is every differential test's oracle, and with
  // that loop outermost it had taken 86% of the sanitizer build's Winograd tests). Consecutive
  // dense channels are dense_channel_step apart in the activation and weight_channel_step in the weights.
  const std::int64_t dense_plane = dense_size[0] * dense_size[1] * dense_size[2];
  const std::int64_t dense_channel_step = p.layout == Layout::channels_first ? dense_plane : 1;
  const std::int64_t weight_channel_step = p.weight_layout == WeightLayout::torch ? kernel_volume : strided_channels;
  for (std::int64_t n = 0; n < p.batch; ++n)
    for (std::int64_t sc = 0; sc < strided_channels; ++sc) {
      const std::int64_t dc0 = (sc / sc_per_group) * dc_per_group;  // the group's first dense channel
      Dims s{};
      for (s[0] = 0; s[0] < strided_size[0]; ++s[0])
        for (s[1] = 0; s[1] < strided_size[1]; ++s[1])
          for (s[2] = 0; s[2] < strided_size[2]; ++s[2]) {
            const std::int64_t strided = strided_index(n, sc, s);
            Dims k{};
            for (k[0] = 0; k[0] < kernel[0]; ++k[0])
              for (k[1] = 0; k[1] < kernel[1]; ++k[1])
                for (k[2] = 0; k[2] < kernel[2]; ++k[2]) {
                  Dims d{};
                  bool inside = true;
                  for (int i = 0; i < kMaxSpatialDims; ++i) {
                    d[i] = s[i] * stride[i] + k[i] * dilation[i] - pad[i];
                    inside = inside && d[i] >= 0 && d[i] < dense_size[i];
                  }
                  if (!inside) continue;
                  const std::int64_t tap = (k[0] * kernel[1] + k[1]) * kernel[2] + k[2];
                  const std::int64_t dense0 = dense_index(n, dc0, d), weight0 = weight_offset(sc, 0, tap);
                  for (std::int64_t dcg = 0; dcg < dc_per_group; ++dcg) {
                    fn(Offsets{strided, dense0 + dcg * dense_channel_step, weight0 + dcg * weight_channel_step});
                  }
                }
          }
    }
}

template <class T>
void store(const std::vector<double>& acc, T* out) {
  for (std::size_t i = 0; i < acc.size(); ++i) out[i] = static_cast<T>(acc[i]);
}

std::size_t count(const std::vector<std::int64_t>& shape) {
  return static_cast<std::size_t>(element_count(shape, "tensor size"));
}

// Calls fn(flat offset, output channel) for every element of the dst tensor.
template <class Fn>
void for_each_dst_channel(const Problem& p, Fn fn) {
  const auto shape = dst_shape(p);
  const std::int64_t total = element_count(shape, "tensor size");
  const std::int64_t channels = p.out_channels;
  std::int64_t spatial = 1;
  for (int d = 0; d < p.spatial_dims; ++d) spatial *= shape[p.layout == Layout::channels_first ? 2 + d : 1 + d];
  for (std::int64_t i = 0; i < total; ++i) {
    const std::int64_t c = p.layout == Layout::channels_first ? (i / spatial) % channels : i % channels;
    fn(i, c);
  }
}

}  // namespace

template <class T>
void forward(const Problem& p, const T* src, const T* weights, const T* bias, T* dst) {
  validate(p);
  std::vector<double> acc(count(dst_shape(p)), 0.0);
  if (p.op == Op::conv) {
    for_each_tap(p, [&](Offsets o) { acc[o.strided] += double(src[o.dense]) * double(weights[o.weight]); });
  } else {
    for_each_tap(p, [&](Offsets o) { acc[o.dense] += double(src[o.strided]) * double(weights[o.weight]); });
  }
  if (bias != nullptr) for_each_dst_channel(p, [&](std::int64_t i, std::int64_t c) { acc[i] += double(bias[c]); });
  store(acc, dst);
}

template <class T>
void backward_data(const Problem& p, const T* diff_dst, const T* weights, T* diff_src) {
  validate(p);
  std::vector<double> acc(count(src_shape(p)), 0.0);
  if (p.op == Op::conv) {
    for_each_tap(p, [&](Offsets o) { acc[o.dense] += double(diff_dst[o.strided]) * double(weights[o.weight]); });
  } else {
    for_each_tap(p, [&](Offsets o) { acc[o.strided] += double(diff_dst[o.dense]) * double(weights[o.weight]); });
  }
  store(acc, diff_src);
}

template <class T>
void backward_weights(const Problem& p, const T* src, const T* diff_dst, T* diff_weights, T* diff_bias) {
  validate(p);
  std::vector<double> acc(count(weights_shape(p)), 0.0);
  if (p.op == Op::conv) {
    for_each_tap(p, [&](Offsets o) { acc[o.weight] += double(src[o.dense]) * double(diff_dst[o.strided]); });
  } else {
    for_each_tap(p, [&](Offsets o) { acc[o.weight] += double(src[o.strided]) * double(diff_dst[o.dense]); });
  }
  store(acc, diff_weights);
  if (diff_bias == nullptr) return;
  std::vector<double> bias_acc(static_cast<std::size_t>(p.out_channels), 0.0);
  for_each_dst_channel(p, [&](std::int64_t i, std::int64_t c) { bias_acc[c] += double(diff_dst[i]); });
  store(bias_acc, diff_bias);
}

#define TDCONV_INSTANTIATE(T)                                                              \
  template void forward<T>(const Problem&, const T*, const T*, const T*, T*);              \
  template void backward_data<T>(const Problem&, const T*, const T*, T*);                  \
  template void backward_weights<T>(const Problem&, const T*, const T*, T*, T*);
TDCONV_INSTANTIATE(float)
TDCONV_INSTANTIATE(double)
#undef TDCONV_INSTANTIATE

}  // namespace tdconv::reference
