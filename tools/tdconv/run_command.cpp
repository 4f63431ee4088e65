// `tdconv conv` and `tdconv conv-transpose`: .npy in, .npy out.
#include <unistd.h>

#include <iostream>

#include "commands.hpp"
#include "io/npy.hpp"
#include "options.hpp"
#include "tdconv/error.hpp"
#include "tdconv/plan.hpp"
#include "util/checked.hpp"

namespace tdconv::cli {
namespace {

std::string shape_text(const std::vector<std::int64_t>& shape) { return shape_to_string(shape); }

// Operand files as read, with the options that say how to read them.
struct Operands {
  io::NpyArray input, weight;
  std::optional<io::NpyArray> bias;
  std::string input_path, weight_path, bias_path;
};

int spatial_dims_of(const Operands& ops) {
  const auto rank = static_cast<int>(ops.input.shape.size());
  if (rank < 3 || rank > 5) {
    throw Error(ops.input_path, "input has rank " + std::to_string(rank) + " (shape " +
                                    shape_text(ops.input.shape) +
                                    "); it needs (N, C, spatial...) or (N, spatial..., C) with 1 to 3 spatial dims");
  }
  if (ops.weight.shape.size() != ops.input.shape.size()) {
    throw Error(ops.weight_path, "weight has rank " + std::to_string(ops.weight.shape.size()) + " (shape " +
                                     shape_text(ops.weight.shape) + ") but the input has rank " +
                                     std::to_string(rank) + "; both need 2 + the number of spatial dims");
  }
  return rank - 2;
}

void check_dtypes(const Operands& ops) {
  auto same = [&](const io::NpyArray& a, const std::string& path) {
    if (a.dtype != ops.input.dtype) {
      throw Error(path, std::string(to_string(a.dtype)) + " but the input is " +
                            std::string(to_string(ops.input.dtype)) + "; input, weight and bias must share one dtype");
    }
  };
  same(ops.weight, ops.weight_path);
  if (ops.bias) same(*ops.bias, ops.bias_path);
}

struct WeightReading {
  std::int64_t strided_channels;  // conv: C_out; conv_transpose: C_in
  std::int64_t dense_per_group;   // conv: C_in / groups; conv_transpose: C_out / groups
  Dims kernel{1, 1, 1};
};

WeightReading read_weight_shape(const std::vector<std::int64_t>& w, WeightLayout layout, int spatial_dims) {
  WeightReading r;
  const std::size_t rank = w.size();
  const std::size_t first_k = layout == WeightLayout::torch ? 2 : 0;
  for (int d = 0; d < spatial_dims; ++d) r.kernel[d] = w[first_k + d];
  r.strided_channels = layout == WeightLayout::torch ? w[0] : w[rank - 1];
  r.dense_per_group = layout == WeightLayout::torch ? w[1] : w[rank - 2];
  return r;
}

// The weight's expectation of input channels, for a given reading.
std::int64_t expected_input_channels(Op op, const WeightReading& r, std::int64_t groups) {
  return op == Op::conv ? r.dense_per_group * groups : r.strided_channels;
}

std::string channel_hint(const Problem& p, const Operands& ops, std::int64_t expected) {
  const auto& x = ops.input.shape;
  const std::int64_t other_layout_channels = p.layout == Layout::channels_first ? x.back() : x[1];
  if (other_layout_channels == expected) {
    return p.layout == Layout::channels_first ? "; if the input is channels-last, pass --layout channels_last"
                                              : "; if the input is channels-first, pass --layout channels_first";
  }
  const WeightLayout other = p.weight_layout == WeightLayout::torch ? WeightLayout::tf : WeightLayout::torch;
  const WeightReading r = read_weight_shape(ops.weight.shape, other, p.spatial_dims);
  const std::int64_t channels = p.layout == Layout::channels_first ? x[1] : x.back();
  if (expected_input_channels(p.op, r, p.groups) == channels) {
    return other == WeightLayout::tf ? "; if the weight is in TensorFlow's layout (k..., in, out), pass --weight-layout tf"
                                     : "; if the weight is in PyTorch's layout (out, in, k...), pass --weight-layout torch";
  }
  return "";
}

Problem problem_from(const std::string& command, const Options& o, const Operands& ops) {
  Problem p;
  p.op = command == "conv" ? Op::conv : Op::conv_transpose;
  p.spatial_dims = spatial_dims_of(ops);
  check_dtypes(ops);
  p.dtype = ops.input.dtype;
  p.layout = parse_layout(o.get("--layout").value_or("channels_first"));
  p.weight_layout = parse_weight_layout(o.get("--weight-layout").value_or("torch"));
  p.groups = parse_int(o.get("--groups").value_or("1"), "--groups");
  if (p.groups < 1) throw Error("--groups", "--groups " + std::to_string(p.groups) + " must be at least 1");

  const auto& x = ops.input.shape;
  p.batch = x[0];
  p.in_channels = p.layout == Layout::channels_first ? x[1] : x.back();
  for (int d = 0; d < p.spatial_dims; ++d) p.input[d] = x[(p.layout == Layout::channels_first ? 2 : 1) + d];

  const WeightReading w = read_weight_shape(ops.weight.shape, p.weight_layout, p.spatial_dims);
  p.kernel = w.kernel;
  p.out_channels = p.op == Op::conv ? w.strided_channels : detail::checked_mul(w.dense_per_group, p.groups, "--groups");
  const std::int64_t expected = expected_input_channels(p.op, w, p.groups);
  if (p.in_channels != expected) {
    throw Error(ops.input_path,
                "input has " + std::to_string(p.in_channels) + " channels in dimension " +
                    std::to_string(p.layout == Layout::channels_first ? 1 : x.size() - 1) + " but the weight " +
                    shape_text(ops.weight.shape) + " (" + std::string(to_string(p.weight_layout)) +
                    " layout, groups " + std::to_string(p.groups) + ") expects " + std::to_string(expected) +
                    channel_hint(p, ops, expected));
  }
  p.stride = stride_option(o, p.spatial_dims);
  p.dilation = dilation_option(o, p.spatial_dims);
  resolve_padding(p, padding_request(o, p.spatial_dims));  // validates: channel counts are >= 1 from here on
  if (ops.bias && !(ops.bias->shape.size() == 1 && ops.bias->shape[0] == p.out_channels)) {
    throw Error(ops.bias_path, "bias has shape " + shape_text(ops.bias->shape) + " but needs (" +
                                   std::to_string(p.out_channels) + ",): one value per output channel");
  }
  return p;
}

std::int64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page_size <= 0) return std::int64_t{8} << 30;
  return static_cast<std::int64_t>(pages) * page_size;
}

std::int64_t parse_bytes(const std::string& text) {
  static const std::string suffixes = "KMGT";
  std::string digits = text;
  int shift = 0;
  if (!text.empty()) {
    const std::size_t at = suffixes.find(static_cast<char>(std::toupper(static_cast<unsigned char>(text.back()))));
    if (at != std::string::npos) {
      shift = 10 * static_cast<int>(at + 1);
      digits.pop_back();
    }
  }
  const std::int64_t n = parse_int(digits, "--max-memory");
  if (n < 1) throw Error("--max-memory", "--max-memory must be positive, got '" + text + "'");
  return detail::checked_mul(n, std::int64_t{1} << shift, "--max-memory");
}

// Bytes the command will hold at once: the operands, the output, and the reference's double accumulator.
void check_memory(const Problem& p, const Options& o) {
  const std::int64_t limit = o.get("--max-memory") ? parse_bytes(*o.get("--max-memory")) : physical_memory_bytes() / 2;
  const auto elem = static_cast<std::int64_t>(dtype_size(p.dtype));
  const std::int64_t dst = element_count(dst_shape(p), "output size");
  std::int64_t total = detail::checked_mul(dst, elem + 8, "output size");
  total = detail::checked_add(total, detail::checked_mul(element_count(src_shape(p), "input"), elem, "input"), "input");
  total = detail::checked_add(total, detail::checked_mul(element_count(weights_shape(p), "weight"), elem, "weight"),
                              "weight");
  if (total > limit) {
    throw Error("--max-memory", "this problem needs about " + std::to_string(total >> 20) + " MiB (output " +
                                    shape_text(dst_shape(p)) + ") but the limit is " + std::to_string(limit >> 20) +
                                    " MiB; raise it with --max-memory");
  }
}

template <class T>
void compute_and_write(const Plan& plan, const Operands& ops, const std::string& output) {
  const Problem& p = plan.problem();
  const auto dst_dims = dst_shape(p);
  std::vector<T> dst(static_cast<std::size_t>(element_count(dst_dims, "output")));
  const TensorView bias = ops.bias ? view(ops.bias->as<T>(), ops.bias->shape) : TensorView{};
  plan.forward(view(ops.input.as<T>(), ops.input.shape), view(ops.weight.as<T>(), ops.weight.shape), bias,
               mutable_view(dst.data(), dst_dims));
  io::write_npy_atomic(output, p.dtype, dst_dims, dst.data());
}

}  // namespace

int run_operation(const std::string& command, const Args& args) {
  auto valued = geometry_options();
  valued.insert({"--input", "--weight", "--bias", "--output", "--layout", "--weight-layout", "--max-memory"});
  if (command == "conv") valued.erase("--output-padding"), valued.erase("--output-size");
  const Options o(args, valued, {}, command);
  const std::string output = o.required("--output");
  Operands ops;
  ops.input_path = o.required("--input");
  ops.weight_path = o.required("--weight");
  ops.input = io::read_npy(ops.input_path);
  ops.weight = io::read_npy(ops.weight_path);
  if (auto b = o.get("--bias")) {
    ops.bias_path = *b;
    ops.bias = io::read_npy(*b);
  }
  const Problem p = problem_from(command, o, ops);
  check_memory(p, o);
  const Plan plan(p);
  if (p.dtype == DType::f32) {
    compute_and_write<float>(plan, ops, output);
  } else {
    compute_and_write<double>(plan, ops, output);
  }
  return 0;
}

}  // namespace tdconv::cli
