// Output sizes and the padding conventions of TensorFlow/Keras, ONNX, PyTorch and MobileNet, one dimension at a time.
#include "tdconv/shape.hpp"

#include <algorithm>

#include "tdconv/error.hpp"
#include "util/checked.hpp"
#include "util/dimension_error.hpp"

namespace tdconv {
namespace {

using detail::checked_add;
using detail::checked_mul;
using detail::checked_sub;

void require_positive(std::int64_t value, const char* name) {
  if (value < 1) throw Error(name, std::string(name) + " " + std::to_string(value) + " must be at least 1");
}

void require_non_negative(std::int64_t value, const char* name) {
  if (value < 0) throw Error(name, std::string(name) + " " + std::to_string(value) + " must not be negative");
}

void require_dim_spec(const DimSpec& d) {
  require_positive(d.input, "input");
  require_positive(d.kernel, "kernel");
  require_positive(d.stride, "stride");
  require_positive(d.dilation, "dilation");
}

std::string str(std::int64_t v) { return std::to_string(v); }

}  // namespace

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return -floor_div(-a, b); }
std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

std::string_view to_string(PaddingMode m) {
  switch (m) {
    case PaddingMode::explicit_pads: return "explicit";
    case PaddingMode::valid: return "valid";
    case PaddingMode::same: return "same";
    case PaddingMode::same_upper: return "same_upper";
    case PaddingMode::same_lower: return "same_lower";
  }
  return "?";
}

std::int64_t effective_kernel(std::int64_t kernel, std::int64_t dilation) {
  require_positive(kernel, "kernel");
  require_positive(dilation, "dilation");
  return checked_add(checked_mul(dilation, kernel - 1, "dilation"), 1, "dilation");
}

std::int64_t conv_output_size(std::int64_t input, std::int64_t kernel, std::int64_t stride, std::int64_t dilation,
                              std::int64_t pad_begin, std::int64_t pad_end) {
  require_dim_spec({input, kernel, stride, dilation});
  require_non_negative(pad_begin, "padding");
  require_non_negative(pad_end, "padding");
  const std::int64_t k_eff = effective_kernel(kernel, dilation);
  const std::int64_t padded = checked_add(checked_add(input, pad_begin, "padding"), pad_end, "padding");
  if (padded < k_eff) {
    throw Error("kernel", "kernel extent " + str(k_eff) + " (dilation " + str(dilation) + " x (kernel " + str(kernel) +
                              " - 1) + 1) exceeds the padded input " + str(padded) + " (input " + str(input) +
                              " + padding " + str(pad_begin) + " + " + str(pad_end) + ")");
  }
  return (padded - k_eff) / stride + 1;
}

std::int64_t conv_transpose_full_size(std::int64_t input, std::int64_t kernel, std::int64_t stride,
                                      std::int64_t dilation) {
  require_dim_spec({input, kernel, stride, dilation});
  // The stride is what makes a full output huge, so overflow here is reported against it.
  return checked_add(checked_mul(input - 1, stride, "stride"), effective_kernel(kernel, dilation), "stride");
}

std::int64_t conv_transpose_output_size(std::int64_t input, std::int64_t kernel, std::int64_t stride,
                                        std::int64_t dilation, std::int64_t pad_begin, std::int64_t pad_end,
                                        std::int64_t output_padding) {
  const std::int64_t full = conv_transpose_full_size(input, kernel, stride, dilation);
  require_non_negative(pad_begin, "padding");
  require_non_negative(pad_end, "padding");
  require_non_negative(output_padding, "output_padding");
  const std::int64_t limit = std::max(stride, dilation);
  if (output_padding >= limit) {
    throw Error("output_padding", "output_padding " + str(output_padding) + " must be smaller than stride " +
                                      str(stride) + " or dilation " + str(dilation));
  }
  const std::int64_t cropped = checked_sub(checked_sub(full, pad_begin, "padding"), pad_end, "padding");
  const std::int64_t out = cropped + output_padding;
  if (out < 1) {
    throw Error("padding", "padding " + str(pad_begin) + ":" + str(pad_end) + " crops more than the full output of " +
                               str(full) + " elements ((input " + str(input) + " - 1) x stride " + str(stride) +
                               " + kernel extent " + str(full - (input - 1) * stride) + ")");
  }
  return out;
}

DimPadding conv_padding(PaddingMode mode, const DimSpec& d) {
  require_dim_spec(d);
  const std::int64_t k_eff = effective_kernel(d.kernel, d.dilation);
  switch (mode) {
    case PaddingMode::explicit_pads:
      throw Error("padding", "explicit padding needs no convention");
    case PaddingMode::valid:
      if (d.input < k_eff) {
        throw Error("kernel", "kernel extent " + str(k_eff) + " exceeds the input " + str(d.input) +
                                  " with 'valid' padding");
      }
      return {};
    case PaddingMode::same:
    case PaddingMode::same_upper:
    case PaddingMode::same_lower: {
      const std::int64_t out = ceil_div(d.input, d.stride);
      const std::int64_t needed =
          checked_add(checked_mul(out - 1, d.stride, "stride"), k_eff, "kernel") - d.input;
      const std::int64_t total = std::max<std::int64_t>(needed, 0);
      const std::int64_t small = total / 2;
      if (mode == PaddingMode::same_lower) return {total - small, small, 0};
      return {small, total - small, 0};
    }
  }
  throw Error("padding", "unknown padding mode");
}

namespace {

// Splits `full - wanted` into crops (begin, end) or, when negative, zeros appended at the end.
DimPadding crop_to(std::int64_t full, std::int64_t begin, std::int64_t wanted) {
  const std::int64_t rest = full - begin - wanted;
  if (rest >= 0) return {begin, rest, 0};
  return {begin, 0, -rest};
}

void require_output_size_in(std::int64_t size, std::int64_t lo, std::int64_t hi, const std::string& convention) {
  if (size < lo || size > hi) {
    throw Error("output_size", "output size " + str(size) + " must be between " + str(lo) + " and " + str(hi) +
                                   " for " + convention);
  }
}

}  // namespace

DimPadding conv_transpose_padding(PaddingMode mode, const DimSpec& d, std::optional<std::int64_t> output_size) {
  require_dim_spec(d);
  const std::int64_t k_eff = effective_kernel(d.kernel, d.dilation);
  const std::int64_t full = conv_transpose_full_size(d.input, d.kernel, d.stride, d.dilation);
  const std::int64_t upsampled = checked_mul(d.input, d.stride, "stride");  // input * stride
  switch (mode) {
    case PaddingMode::explicit_pads:
      throw Error("padding", "explicit padding needs no convention");
    case PaddingMode::valid: {
      // TF: output_shape n is valid when a 'valid' conv of n gives the input back: n in [full, full + s - 1].
      const std::int64_t n = output_size.value_or(full + std::max<std::int64_t>(d.stride - k_eff, 0));
      require_output_size_in(n, full, full + d.stride - 1, "'valid' (a 'valid' conv of it must give the input)");
      return crop_to(full, 0, n);
    }
    case PaddingMode::same: {
      // TF: output_shape n is valid when a 'same' conv of n gives the input back: ceil(n / s) == input.
      const std::int64_t n = output_size.value_or(upsampled);
      require_output_size_in(n, upsampled - d.stride + 1, upsampled,
                             "'same' (a 'same' conv of it must give the input)");
      const std::int64_t total = std::max<std::int64_t>((d.input - 1) * d.stride + k_eff - n, 0);
      return crop_to(full, total / 2, n);
    }
    case PaddingMode::same_upper:
    case PaddingMode::same_lower: {
      const std::int64_t n = output_size.value_or(upsampled);
      const std::int64_t limit = std::max(d.stride, d.dilation);
      require_output_size_in(n, 1, full + limit - 1, "ONNX auto_pad (at most max(stride, dilation) - 1 zeros added)");
      const std::int64_t total = full - n;
      if (total < 0) return {0, 0, -total};
      const std::int64_t small = total / 2;
      if (mode == PaddingMode::same_upper) return {small, total - small, 0};
      return {total - small, small, 0};
    }
  }
  throw Error("padding", "unknown padding mode");
}

std::int64_t conv_transpose_output_padding_for_size(const DimSpec& d, std::int64_t pad_begin, std::int64_t pad_end,
                                                    std::int64_t output_size) {
  const std::int64_t smallest = conv_transpose_output_size(d.input, d.kernel, d.stride, d.dilation, pad_begin,
                                                           pad_end, 0);
  const std::int64_t limit = std::max(d.stride, d.dilation);
  require_output_size_in(output_size, smallest, smallest + limit - 1,
                         "this padding (PyTorch's output_size: smallest output + up to max(stride, dilation) - 1)");
  return output_size - smallest;
}

DimPadding torch_same_padding(const DimSpec& d) {
  require_dim_spec(d);
  if (d.stride != 1) throw Error("padding", "PyTorch's padding='same' requires stride 1, got stride " + str(d.stride));
  return fixed_padding(d.kernel, d.dilation);
}

DimPadding fixed_padding(std::int64_t kernel, std::int64_t dilation) {
  const std::int64_t total = effective_kernel(kernel, dilation) - 1;
  return {total / 2, total - total / 2, 0};
}

}  // namespace tdconv

namespace tdconv {
namespace {

DimSpec dim_spec(const Problem& p, int d) { return {p.input[d], p.kernel[d], p.stride[d], p.dilation[d]}; }

void require_transpose_only(const Problem& p, const PaddingRequest& r) {
  if (p.op != Op::conv) return;
  if (r.output_padding) throw Error("output_padding", "output_padding applies to conv_transpose only");
  if (r.output_size) throw Error("output_size", "output_size applies to conv_transpose only");
}

// Resolves one dimension; errors are tagged with the dimension by the caller.
DimPadding resolve_dimension(const Problem& p, const PaddingRequest& r, int d) {
  const DimSpec spec = dim_spec(p, d);
  const std::optional<std::int64_t> size = r.output_size ? std::optional((*r.output_size)[d]) : std::nullopt;
  if (r.mode != PaddingMode::explicit_pads) {
    if (p.op == Op::conv) return conv_padding(r.mode, spec);
    return conv_transpose_padding(r.mode, spec, size);
  }
  DimPadding pad{r.begin[d], r.end[d], r.output_padding ? (*r.output_padding)[d] : 0};
  if (p.op == Op::conv_transpose && size) {
    pad.output_padding = conv_transpose_output_padding_for_size(spec, pad.begin, pad.end, *size);
  }
  return pad;
}

}  // namespace

void resolve_padding(Problem& p, const PaddingRequest& r) {
  require_transpose_only(p, r);
  if (r.output_padding && r.output_size) {
    throw Error("output_size", "output_size and output_padding cannot be combined: output_size decides the padding");
  }
  if (r.output_padding && r.mode != PaddingMode::explicit_pads) {
    throw Error("output_padding", "output_padding cannot be combined with padding '" +
                                      std::string(to_string(r.mode)) +
                                      "'; give output_size (TensorFlow's / ONNX's output_shape) instead");
  }
  for (int d = 0; d < p.spatial_dims; ++d) {
    const DimPadding pad = detail::in_spatial_dimension(p.spatial_dims, d, [&] { return resolve_dimension(p, r, d); });
    p.pad_begin[d] = pad.begin;
    p.pad_end[d] = pad.end;
    p.output_padding[d] = pad.output_padding;
  }
  validate(p);
}

}  // namespace tdconv
