#pragma once
// One convolution problem: everything needed to know what is computed and how tensors are laid out.
//
// Geometry (per spatial dimension, k_eff = dilation * (kernel - 1) + 1):
//   conv:            dst[o] = sum_k src[o*stride + k*dilation - pad_begin] * w[k]
//                    output = floor((input + pad_begin + pad_end - k_eff) / stride) + 1
//   conv_transpose:  every src[i] scatters src[i] * w[k] to dst[i*stride + k*dilation - pad_begin]
//                    output = (input - 1) * stride + k_eff - pad_begin - pad_end + output_padding
// For conv_transpose, pad_begin/pad_end are the elements cropped from the start/end of the full output
// ((input - 1) * stride + k_eff elements) and output_padding elements are then appended at the end; they hold
// whatever the scatter put there (possibly nothing, i.e. zero, plus bias).
// Dilation 1 means a dense kernel (as in PyTorch; oneDNN counts from 0).
#include <string>
#include <string_view>
#include <vector>

#include "tdconv/types.hpp"

namespace tdconv {

struct Problem {
  Op op = Op::conv;
  int spatial_dims = 2;
  std::int64_t batch = 1;
  std::int64_t in_channels = 1;
  std::int64_t out_channels = 1;
  std::int64_t groups = 1;
  Dims input{1, 1, 1};  // spatial size of the input (src) tensor
  Dims kernel{1, 1, 1};
  Dims stride{1, 1, 1};
  Dims dilation{1, 1, 1};
  Dims pad_begin{0, 0, 0};
  Dims pad_end{0, 0, 0};
  Dims output_padding{0, 0, 0};  // conv_transpose only
  DType dtype = DType::f32;
  Layout layout = Layout::channels_first;
  WeightLayout weight_layout = WeightLayout::torch;

  bool operator==(const Problem&) const = default;
};

// Throws tdconv::Error naming the parameter, its value and the rule it breaks. Also checks that every tensor's
// element count and byte size fit in 64 bits.
void validate(const Problem& p);

// Spatial output size (validates first).
Dims output_size(const Problem& p);

// Full tensor shapes, in the problem's layouts.
std::vector<std::int64_t> src_shape(const Problem& p);
std::vector<std::int64_t> weights_shape(const Problem& p);
std::vector<std::int64_t> dst_shape(const Problem& p);
std::vector<std::int64_t> bias_shape(const Problem& p);

// "(2, 3)", "(5,)": a shape of any rank, as NumPy prints it.
std::string shape_to_string(const std::vector<std::int64_t>& shape);

// Overflow-checked product of a shape (throws Error(subject, ...) on overflow).
std::int64_t element_count(const std::vector<std::int64_t>& shape, const std::string& subject);

// Multiply-adds of the dense operation, taps that land in padding included (the usual FLOP count / 2).
double nominal_macs(const Problem& p);

// The canonical problem string, e.g.
//   convT_mb1_g1_ic1_oc1_i2x2_k3x3_s2x2_d1x1_p1:1x1:1_op0x0_f32_cfirst_wtorch
//   conv_mb8_g1_ic256_oc256_i2048_k3_s1_d8_p8:8_f32_clast_wtf
// Fields, in this order: op (conv|convT), mb batch, g groups, ic, oc, i input, k kernel, s stride, d dilation,
// p pad_begin:pad_end per dim, op output padding (convT only), dtype (f32|f64), layout (cfirst|clast),
// weight layout (wtorch|wtf). Spatial lists are joined by 'x', outermost first.
// parse_problem(to_string(p)) == p for every valid p, and parse_problem accepts exactly this form.
std::string to_string(const Problem& p);
Problem parse_problem(std::string_view text);

}  // namespace tdconv
