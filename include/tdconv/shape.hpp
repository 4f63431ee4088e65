#pragma once
// Shape arithmetic for one spatial dimension: output sizes and the padding each framework's convention implies.
// Every function validates its arguments and throws tdconv::Error naming the parameter and the rule.
#include <cstdint>
#include <optional>
#include <string>

#include "tdconv/problem.hpp"
#include "tdconv/types.hpp"

namespace tdconv {

// d * (k - 1) + 1: the extent of a kernel of k taps spaced d apart.
std::int64_t effective_kernel(std::int64_t kernel, std::int64_t dilation);

// floor((input + pad_begin + pad_end - k_eff) / stride) + 1; error if the padded input is shorter than k_eff.
std::int64_t conv_output_size(std::int64_t input, std::int64_t kernel, std::int64_t stride, std::int64_t dilation,
                              std::int64_t pad_begin, std::int64_t pad_end);

// (input - 1) * stride + k_eff: the transposed convolution's output before anything is cropped.
std::int64_t conv_transpose_full_size(std::int64_t input, std::int64_t kernel, std::int64_t stride,
                                      std::int64_t dilation);

// full - pad_begin - pad_end + output_padding; error if output_padding >= max(stride, dilation) or the result < 1.
std::int64_t conv_transpose_output_size(std::int64_t input, std::int64_t kernel, std::int64_t stride,
                                        std::int64_t dilation, std::int64_t pad_begin, std::int64_t pad_end,
                                        std::int64_t output_padding);

// The geometry of one spatial dimension once a convention is resolved.
struct DimPadding {
  std::int64_t begin = 0;           // conv: zeros before the input; conv_transpose: cropped from the full output
  std::int64_t end = 0;             // conv: zeros after the input;  conv_transpose: cropped from its end
  std::int64_t output_padding = 0;  // conv_transpose: elements appended at the end (zero unless scattered to)
  bool operator==(const DimPadding&) const = default;
};

// How padding was asked for.
enum class PaddingMode {
  explicit_pads,  // numbers (symmetric or BEGIN:END)
  valid,          // TensorFlow/Keras 'valid'
  same,           // TensorFlow/Keras 'same'
  same_upper,     // ONNX auto_pad SAME_UPPER
  same_lower,     // ONNX auto_pad SAME_LOWER
};
std::string_view to_string(PaddingMode m);

// What one dimension of a layer looks like before the convention is resolved.
struct DimSpec {
  std::int64_t input = 1;
  std::int64_t kernel = 1;
  std::int64_t stride = 1;
  std::int64_t dilation = 1;
};

// conv: the padding of each convention.
//   valid: none. same / same_upper: output ceil(input / stride), total max((out-1)*s + k_eff - input, 0), odd
//   element at the end; same_lower: odd element at the start.
DimPadding conv_padding(PaddingMode mode, const DimSpec& d);

// conv_transpose: crops and output padding of each convention, optionally for a wanted output size:
//   valid: full output, zero-extended to input*stride when k_eff < stride; output_size = TF's output_shape.
//   same: output input*stride, crop (k_eff - s)//2 at the start, the rest at the end (TF 'SAME', the gradient of a
//         'same' conv); output_size = TF's output_shape.
//   same_upper/same_lower: ONNX ConvTranspose auto_pad; total = full - output_size (output_size defaults to
//         input*stride), odd element at the end (upper) or the start (lower); a negative total extends with zeros.
//   explicit_pads: not allowed here (use conv_transpose_output_padding_for_size).
DimPadding conv_transpose_padding(PaddingMode mode, const DimSpec& d,
                                  std::optional<std::int64_t> output_size = std::nullopt);

// PyTorch's ConvTranspose `output_size`: the output padding that makes the output `output_size` long, which must lie
// in [smallest, smallest + max(stride, dilation) - 1].
std::int64_t conv_transpose_output_padding_for_size(const DimSpec& d, std::int64_t pad_begin, std::int64_t pad_end,
                                                    std::int64_t output_size);

// PyTorch's Conv padding='same' (stride 1 only): total d*(k-1), begin total//2, the rest at the end.
DimPadding torch_same_padding(const DimSpec& d);

// MobileNet's fixed_padding(kernel, dilation): begin (k_eff - 1)//2, end the rest.
DimPadding fixed_padding(std::int64_t kernel, std::int64_t dilation);

// What a user asked for, in any framework's terms.
struct PaddingRequest {
  PaddingMode mode = PaddingMode::explicit_pads;
  Dims begin{0, 0, 0};  // explicit_pads only
  Dims end{0, 0, 0};
  std::optional<Dims> output_padding;  // conv_transpose only; not with output_size or a keyword
  std::optional<Dims> output_size;     // conv_transpose only: PyTorch's output_size, TF's or ONNX's output_shape
};

// Fills p.pad_begin, p.pad_end and p.output_padding from the request (p's other fields must be set), then validates.
void resolve_padding(Problem& p, const PaddingRequest& request);

// ceil(a / b) and floor(a / b) for b > 0, any sign of a.
std::int64_t ceil_div(std::int64_t a, std::int64_t b);
std::int64_t floor_div(std::int64_t a, std::int64_t b);

}  // namespace tdconv
