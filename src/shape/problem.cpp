// Validation and tensor shapes of a Problem.
#include "tdconv/problem.hpp"

#include "tdconv/error.hpp"
#include "tdconv/shape.hpp"
#include "util/checked.hpp"
#include "util/dimension_error.hpp"

namespace tdconv {
namespace {

std::string str(std::int64_t v) { return std::to_string(v); }

void require_at_least(std::int64_t value, std::int64_t minimum, const std::string& name) {
  if (value < minimum) throw Error(name, name + " " + str(value) + " must be at least " + str(minimum));
}

void validate_counts(const Problem& p) {
  if (p.spatial_dims < 1 || p.spatial_dims > kMaxSpatialDims) {
    throw Error("spatial_dims", "spatial_dims " + str(p.spatial_dims) + " must be 1, 2 or 3");
  }
  require_at_least(p.batch, 1, "batch");
  require_at_least(p.in_channels, 1, "in_channels");
  require_at_least(p.out_channels, 1, "out_channels");
  require_at_least(p.groups, 1, "groups");
  if (p.in_channels % p.groups != 0) {
    throw Error("groups", "in_channels " + str(p.in_channels) + " must be divisible by groups " + str(p.groups));
  }
  if (p.out_channels % p.groups != 0) {
    throw Error("groups", "out_channels " + str(p.out_channels) + " must be divisible by groups " + str(p.groups));
  }
}

void validate_dimension(const Problem& p, int d) {
  require_at_least(p.input[d], 1, "input");
  require_at_least(p.kernel[d], 1, "kernel");
  require_at_least(p.stride[d], 1, "stride");
  require_at_least(p.dilation[d], 1, "dilation");
  require_at_least(p.pad_begin[d], 0, "padding");
  require_at_least(p.pad_end[d], 0, "padding");
  require_at_least(p.output_padding[d], 0, "output_padding");
  if (p.op == Op::conv && p.output_padding[d] != 0) {
    throw Error("output_padding", "output_padding " + str(p.output_padding[d]) +
                                      " applies to conv_transpose only; conv needs 0");
  }
}

void validate_unused_dimensions(const Problem& p) {
  for (int d = p.spatial_dims; d < kMaxSpatialDims; ++d) {
    const bool neutral = p.input[d] == 1 && p.kernel[d] == 1 && p.stride[d] == 1 && p.dilation[d] == 1 &&
                         p.pad_begin[d] == 0 && p.pad_end[d] == 0 && p.output_padding[d] == 0;
    if (!neutral) {
      throw Error("spatial_dims", "entries past spatial_dims " + str(p.spatial_dims) +
                                      " must be neutral (size 1, stride 1, no padding)");
    }
  }
}

std::int64_t output_size_of_dimension(const Problem& p, int d) {
  if (p.op == Op::conv) {
    return conv_output_size(p.input[d], p.kernel[d], p.stride[d], p.dilation[d], p.pad_begin[d], p.pad_end[d]);
  }
  return conv_transpose_output_size(p.input[d], p.kernel[d], p.stride[d], p.dilation[d], p.pad_begin[d],
                                    p.pad_end[d], p.output_padding[d]);
}

// Activation shape in the problem's layout: (N, C, spatial...) or (N, spatial..., C).
std::vector<std::int64_t> activation_shape(const Problem& p, std::int64_t channels, const Dims& spatial) {
  std::vector<std::int64_t> shape{p.batch};
  if (p.layout == Layout::channels_first) shape.push_back(channels);
  for (int d = 0; d < p.spatial_dims; ++d) shape.push_back(spatial[d]);
  if (p.layout == Layout::channels_last) shape.push_back(channels);
  return shape;
}

Dims output_size_unchecked(const Problem& p) {
  Dims out{1, 1, 1};
  for (int d = 0; d < p.spatial_dims; ++d) {
    out[d] = detail::in_spatial_dimension(p.spatial_dims, d, [&] { return output_size_of_dimension(p, d); });
  }
  return out;
}

}  // namespace

std::string_view to_string(Op op) { return op == Op::conv ? "conv" : "conv_transpose"; }
std::string_view to_string(DType t) { return t == DType::f32 ? "float32" : "float64"; }
std::string_view to_string(Layout l) { return l == Layout::channels_first ? "channels_first" : "channels_last"; }
std::string_view to_string(WeightLayout l) { return l == WeightLayout::torch ? "torch" : "tf"; }

std::string shape_to_string(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

std::int64_t element_count(const std::vector<std::int64_t>& shape, const std::string& subject) {
  std::int64_t n = 1;
  for (std::int64_t s : shape) n = detail::checked_mul(n, s, subject);
  return n;
}

void validate(const Problem& p) {
  validate_counts(p);
  for (int d = 0; d < p.spatial_dims; ++d) detail::in_spatial_dimension(p.spatial_dims, d, [&] { validate_dimension(p, d); });
  validate_unused_dimensions(p);
  output_size_unchecked(p);
  // Every tensor's byte size must be representable.
  const auto bytes = static_cast<std::int64_t>(dtype_size(p.dtype));
  const std::pair<const char*, std::vector<std::int64_t>> tensors[] = {
      {"src", src_shape(p)}, {"weights", weights_shape(p)}, {"dst", dst_shape(p)}};
  for (const auto& [name, shape] : tensors) {
    try {
      detail::checked_mul(element_count(shape, name), bytes, name);
    } catch (const Error&) {
      throw Error(name, std::string("the ") + name + " tensor " + shape_to_string(shape) +
                            " would hold more bytes than fit in 64 bits");
    }
  }
}

Dims output_size(const Problem& p) {
  validate_counts(p);
  return output_size_unchecked(p);
}

std::vector<std::int64_t> src_shape(const Problem& p) { return activation_shape(p, p.in_channels, p.input); }

std::vector<std::int64_t> dst_shape(const Problem& p) {
  return activation_shape(p, p.out_channels, output_size_unchecked(p));
}

std::vector<std::int64_t> bias_shape(const Problem& p) { return {p.out_channels}; }

std::vector<std::int64_t> weights_shape(const Problem& p) {
  // Both operations connect a "strided side" (conv: output, conv_transpose: input) to a "dense side"; torch puts
  // the strided side's channels first, tf last. The dense side's channels are per group.
  const bool conv = p.op == Op::conv;
  const std::int64_t strided_channels = conv ? p.out_channels : p.in_channels;
  const std::int64_t dense_channels_per_group = (conv ? p.in_channels : p.out_channels) / p.groups;
  std::vector<std::int64_t> shape;
  if (p.weight_layout == WeightLayout::torch) shape = {strided_channels, dense_channels_per_group};
  for (int d = 0; d < p.spatial_dims; ++d) shape.push_back(p.kernel[d]);
  if (p.weight_layout == WeightLayout::tf) {
    shape.push_back(dense_channels_per_group);
    shape.push_back(strided_channels);
  }
  return shape;
}

double nominal_macs(const Problem& p) {
  const Dims out = output_size(p);
  const Dims& strided = p.op == Op::conv ? out : p.input;  // each strided-side element meets every tap once
  double macs = static_cast<double>(p.batch) * static_cast<double>(p.out_channels) *
                static_cast<double>(p.in_channels / p.groups);
  for (int d = 0; d < p.spatial_dims; ++d) macs *= static_cast<double>(strided[d]) * static_cast<double>(p.kernel[d]);
  return macs;
}

}  // namespace tdconv
