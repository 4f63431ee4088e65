// Framework equivalents. Each candidate spelling is checked by computing what that framework would do with it (with
// the same formulas the rest of tdconv uses) and comparing with the resolved problem, rather than by special cases.
#include "tdconv/frameworks.hpp"

#include <algorithm>
#include <functional>

#include "tdconv/error.hpp"

namespace tdconv {
namespace {

std::string str(std::int64_t v) { return std::to_string(v); }

// "3" for one dimension, "(3, 3)" for more: how PyTorch and Keras take per-dimension arguments.
std::string tuple(const Problem& p, const std::function<std::int64_t(int)>& value) {
  if (p.spatial_dims == 1) return str(value(0));
  std::string s = "(";
  for (int d = 0; d < p.spatial_dims; ++d) s += (d ? ", " : "") + str(value(d));
  return s + ")";
}

std::string list(const Problem& p, const std::function<std::int64_t(int)>& value) {
  std::string s = "[";
  for (int d = 0; d < p.spatial_dims; ++d) s += (d ? ", " : "") + str(value(d));
  return s + "]";
}

std::string onnx_pads(const Problem& p) {
  std::string s = "[";
  for (int d = 0; d < p.spatial_dims; ++d) s += (d ? ", " : "") + str(p.pad_begin[d]);
  for (int d = 0; d < p.spatial_dims; ++d) s += ", " + str(p.pad_end[d]);
  return s + "]";
}

// PyTorch's F.pad order: last dimension first, (begin, end) pairs.
std::string torch_pad_pairs(const Problem& p, const std::function<std::int64_t(int)>& begin,
                            const std::function<std::int64_t(int)>& end) {
  std::string s = "(";
  for (int d = p.spatial_dims - 1; d >= 0; --d) {
    s += str(begin(d)) + ", " + str(end(d)) + (d ? ", " : "");
  }
  return s + ")";
}

std::string keras_pad_pairs(const Problem& p, const std::function<std::int64_t(int)>& begin,
                            const std::function<std::int64_t(int)>& end) {
  if (p.spatial_dims == 1) return "(" + str(begin(0)) + ", " + str(end(0)) + ")";
  std::string s = "(";
  for (int d = 0; d < p.spatial_dims; ++d) s += (d ? ", " : "") + std::string("(") + str(begin(d)) + ", " + str(end(d)) + ")";
  return s + ")";
}

std::string nd(const Problem& p) { return str(p.spatial_dims) + "d"; }
std::string nD(const Problem& p) { return str(p.spatial_dims) + "D"; }

bool all_dims(const Problem& p, const std::function<bool(int)>& pred) {
  for (int d = 0; d < p.spatial_dims; ++d) {
    if (!pred(d)) return false;
  }
  return true;
}

DimSpec spec(const Problem& p, int d) { return {p.input[d], p.kernel[d], p.stride[d], p.dilation[d]}; }

// Whether a convention reproduces p's padding in every dimension.
bool convention_matches(const Problem& p, PaddingMode mode) {
  try {
    return all_dims(p, [&](int d) {
      const DimPadding got = p.op == Op::conv ? conv_padding(mode, spec(p, d)) : conv_transpose_padding(mode, spec(p, d));
      return got == DimPadding{p.pad_begin[d], p.pad_end[d], p.output_padding[d]};
    });
  } catch (const Error&) {
    return false;
  }
}

std::string common_args(const Problem& p) {
  return "kernel_size=" + tuple(p, [&](int d) { return p.kernel[d]; }) +
         ", stride=" + tuple(p, [&](int d) { return p.stride[d]; }) +
         ", dilation=" + tuple(p, [&](int d) { return p.dilation[d]; }) + ", groups=" + str(p.groups);
}

FrameworkEquivalent torch_conv(const Problem& p) {
  const std::string head = "nn.Conv" + nd(p) + "(" + str(p.in_channels) + ", " + str(p.out_channels) + ", " + common_args(p);
  const bool symmetric = all_dims(p, [&](int d) { return p.pad_begin[d] == p.pad_end[d]; });
  if (symmetric) {
    return {"PyTorch", true, head + ", padding=" + tuple(p, [&](int d) { return p.pad_begin[d]; }) + ")", ""};
  }
  const bool torch_same = all_dims(p, [&](int d) {
    return p.stride[d] == 1 && fixed_padding(p.kernel[d], p.dilation[d]) == DimPadding{p.pad_begin[d], p.pad_end[d], 0};
  });
  if (torch_same) return {"PyTorch", true, head + ", padding='same')", "PyTorch puts the odd padding element at the end"};
  return {"PyTorch", false,
          "nn.Sequential(nn.ConstantPad" + nd(p) + "(" +
              torch_pad_pairs(p, [&](int d) { return p.pad_begin[d]; }, [&](int d) { return p.pad_end[d]; }) +
              ", 0.0), " + head + ", padding=0))",
          "PyTorch's Conv" + nd(p) + " pads both ends of a dimension equally; this padding is asymmetric, so pad first"};
}

std::string keras_format(const Problem& p) {
  return p.layout == Layout::channels_first ? ", data_format='channels_first'" : "";
}

std::string keras_dilation_note(const Problem& p) {
  const bool strided = !all_dims(p, [&](int d) { return p.stride[d] == 1; });
  const bool dilated = !all_dims(p, [&](int d) { return p.dilation[d] == 1; });
  return strided && dilated ? "Keras refuses strides > 1 together with dilation_rate > 1" : "";
}

FrameworkEquivalent keras_conv(const Problem& p) {
  const std::string args = str(p.out_channels) + ", " + tuple(p, [&](int d) { return p.kernel[d]; }) +
                           ", strides=" + tuple(p, [&](int d) { return p.stride[d]; }) +
                           ", dilation_rate=" + tuple(p, [&](int d) { return p.dilation[d]; }) +
                           (p.groups > 1 ? ", groups=" + str(p.groups) : "") + keras_format(p);
  const std::string layer = "keras.layers.Conv" + nD(p) + "(" + args;
  const std::string note = keras_dilation_note(p);
  if (all_dims(p, [&](int d) { return p.pad_begin[d] == 0 && p.pad_end[d] == 0; })) {
    return {"Keras", note.empty(), layer + ", padding='valid')", note};
  }
  if (convention_matches(p, PaddingMode::same)) return {"Keras", note.empty(), layer + ", padding='same')", note};
  return {"Keras", false,
          "keras.Sequential([keras.layers.ZeroPadding" + nD(p) + "(" +
              keras_pad_pairs(p, [&](int d) { return p.pad_begin[d]; }, [&](int d) { return p.pad_end[d]; }) +
              keras_format(p) + "), " + layer + ", padding='valid')])",
          note.empty() ? "Keras pads only 'valid' or 'same'; this padding needs a ZeroPadding layer first" : note};
}

FrameworkEquivalent onnx_node(const Problem& p) {
  const bool transpose = p.op == Op::conv_transpose;
  std::string attrs = "kernel_shape=" + list(p, [&](int d) { return p.kernel[d]; }) +
                      ", strides=" + list(p, [&](int d) { return p.stride[d]; }) +
                      ", dilations=" + list(p, [&](int d) { return p.dilation[d]; }) + ", group=" + str(p.groups);
  std::string pads = ", pads=" + onnx_pads(p);
  if (transpose && !all_dims(p, [&](int d) { return p.output_padding[d] == 0; })) {
    pads += ", output_padding=" + list(p, [&](int d) { return p.output_padding[d]; });
  }
  for (PaddingMode mode : {PaddingMode::same_upper, PaddingMode::same_lower}) {
    if (convention_matches(p, mode)) {
      std::string name(to_string(mode));
      std::transform(name.begin(), name.end(), name.begin(), ::toupper);
      pads = ", auto_pad='" + name + "'";
      break;
    }
  }
  const std::string layout_note = p.layout == Layout::channels_last ? "ONNX tensors are channels-first (NCHW): transpose the input and output" : "";
  return {"ONNX", true, std::string(transpose ? "ConvTranspose(" : "Conv(") + attrs + pads + ")", layout_note};
}

FrameworkEquivalent torch_conv_transpose(const Problem& p) {
  const std::string head = "nn.ConvTranspose" + nd(p) + "(" + str(p.in_channels) + ", " + str(p.out_channels) + ", " + common_args(p);
  // PyTorch crops `padding` from both ends, then appends output_padding: it needs pad_begin as its padding and
  // pad_begin - pad_end + output_padding as its output padding, which must lie in [0, max(stride, dilation)).
  auto torch_output_padding = [&](int d) { return p.pad_begin[d] - p.pad_end[d] + p.output_padding[d]; };
  const bool exact = all_dims(p, [&](int d) {
    const std::int64_t op = torch_output_padding(d);
    return op >= 0 && op < std::max(p.stride[d], p.dilation[d]);
  });
  if (exact) {
    return {"PyTorch", true,
            head + ", padding=" + tuple(p, [&](int d) { return p.pad_begin[d]; }) +
                ", output_padding=" + tuple(p, torch_output_padding) + ")",
            ""};
  }
  return {"PyTorch", false,
          "y = F.pad(" + head + ", padding=0, bias=False)(x), " +
              torch_pad_pairs(p, [&](int d) { return -p.pad_begin[d]; },
                              [&](int d) { return p.output_padding[d] - p.pad_end[d]; }) +
              ") + bias.view(...)  # negative F.pad entries crop",
          "PyTorch's ConvTranspose" + nd(p) +
              " crops the same amount (padding) from both ends and can only add output_padding < max(stride, "
              "dilation) at the end; this problem crops more at the end than at the start, so it needs padding=0 "
              "and an explicit crop"};
}

// Keras Conv*Transpose: the output length Keras asks TensorFlow for (keras.utils.conv_utils.deconv_output_length).
std::int64_t keras_transpose_length(const DimSpec& d, PaddingMode mode, std::optional<std::int64_t> output_padding) {
  const std::int64_t k_eff = effective_kernel(d.kernel, d.dilation);
  if (!output_padding) {
    return mode == PaddingMode::valid ? d.input * d.stride + std::max<std::int64_t>(k_eff - d.stride, 0)
                                      : d.input * d.stride;
  }
  const std::int64_t pad = mode == PaddingMode::same ? k_eff / 2 : 0;
  return (d.input - 1) * d.stride + k_eff - 2 * pad + *output_padding;
}

// Whether Keras, given this padding mode and output padding in dimension d, computes what p computes there.
bool keras_transpose_matches(const Problem& p, int d, PaddingMode mode, std::optional<std::int64_t> output_padding) {
  try {
    const DimSpec s = spec(p, d);
    const std::int64_t n = keras_transpose_length(s, mode, output_padding);
    // A transposed convolution's output is fixed by where it starts (pad_begin) and how long it is.
    return conv_transpose_padding(mode, s, n).begin == p.pad_begin[d] && n == output_size(p)[d];
  } catch (const Error&) {
    return false;
  }
}

FrameworkEquivalent keras_conv_transpose(const Problem& p) {
  const std::string args = str(p.out_channels) + ", " + tuple(p, [&](int d) { return p.kernel[d]; }) +
                           ", strides=" + tuple(p, [&](int d) { return p.stride[d]; }) +
                           ", dilation_rate=" + tuple(p, [&](int d) { return p.dilation[d]; }) + keras_format(p);
  const std::string layer = "keras.layers.Conv" + nD(p) + "Transpose(" + args;
  if (p.groups > 1) {
    return {"Keras", false, "", "Keras' Conv" + nD(p) + "Transpose has no groups; split the channels into " +
                                    str(p.groups) + " layers and concatenate"};
  }
  for (PaddingMode mode : {PaddingMode::valid, PaddingMode::same}) {
    const std::string pad = ", padding='" + std::string(to_string(mode)) + "'";
    if (all_dims(p, [&](int d) { return keras_transpose_matches(p, d, mode, std::nullopt); })) {
      return {"Keras", true, layer + pad + ")", ""};
    }
    Dims op{};
    const bool found = all_dims(p, [&](int d) {
      for (op[d] = 0; op[d] < p.stride[d]; ++op[d]) {
        if (keras_transpose_matches(p, d, mode, op[d])) return true;
      }
      return false;
    });
    if (found) return {"Keras", true, layer + pad + ", output_padding=" + tuple(p, [&](int d) { return op[d]; }) + ")", ""};
  }
  return {"Keras", false,
          "keras.Sequential([" + layer + ", padding='valid'), keras.layers.Cropping" + nD(p) + "(" +
              keras_pad_pairs(p, [&](int d) { return p.pad_begin[d]; },
                              [&](int d) { return std::max<std::int64_t>(p.pad_end[d] - p.output_padding[d], 0); }) +
              keras_format(p) + ")])",
          "no padding='valid'/'same' with any output_padding gives this crop; use 'valid' (the full output) and crop"};
}

}  // namespace

std::vector<FrameworkEquivalent> framework_equivalents(const Problem& p) {
  validate(p);
  if (p.op == Op::conv) return {torch_conv(p), keras_conv(p), onnx_node(p)};
  return {torch_conv_transpose(p), keras_conv_transpose(p), onnx_node(p)};
}

std::vector<ConventionResult> padding_conventions(const Problem& p) {
  std::vector<ConventionResult> results;
  auto add = [&](const std::string& name, const std::function<DimPadding(int)>& pad_of_dim) {
    ConventionResult r;
    r.convention = name;
    try {
      Problem q = p;
      for (int d = 0; d < p.spatial_dims; ++d) {
        const DimPadding pad = pad_of_dim(d);
        r.padding.push_back(pad);
        q.pad_begin[d] = pad.begin;
        q.pad_end[d] = pad.end;
        q.output_padding[d] = pad.output_padding;
      }
      r.output = output_size(q);
      r.applies = true;
    } catch (const Error& e) {
      r.padding.clear();
      r.why_not = e.what();
    }
    results.push_back(r);
  };
  for (PaddingMode mode : {PaddingMode::valid, PaddingMode::same, PaddingMode::same_upper, PaddingMode::same_lower}) {
    add(std::string(to_string(mode)), [&](int d) {
      return p.op == Op::conv ? conv_padding(mode, spec(p, d)) : conv_transpose_padding(mode, spec(p, d));
    });
  }
  if (p.op == Op::conv) {
    add("torch_same", [&](int d) { return torch_same_padding(spec(p, d)); });
    add("fixed_padding", [&](int d) { return fixed_padding(p.kernel[d], p.dilation[d]); });
  }
  return results;
}

}  // namespace tdconv
