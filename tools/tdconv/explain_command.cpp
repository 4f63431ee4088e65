// `tdconv explain`: the scatter of each input element, the full output and the crop of a transposed convolution; the
// holes of a dilated kernel and what each output reads for a convolution.
#include <iostream>
#include <stdexcept>

#include "commands.hpp"
#include "explain.hpp"
#include "options.hpp"
#include "tdconv/error.hpp"
#include "tdconv/plan.hpp"
#include "util/checked.hpp"

namespace tdconv::cli {
namespace {

// Explain prints every element, so every grid it prints stays small.
constexpr std::int64_t kMaxOperandElements = 256;
constexpr std::int64_t kMaxGridElements = 4096;
constexpr std::int64_t kMaxStepsWithRunningTotal = 16;
const char* const kDimNames[3][3] = {{"", "", ""}, {"rows", "columns", ""}, {"depth", "rows", "columns"}};

std::vector<std::int64_t> spatial(const Dims& v, int n) { return {v.begin(), v.begin() + n}; }

std::string joined(const Dims& v, int n) {
  std::string s;
  for (int d = 0; d < n; ++d) s += (d ? "x" : "") + std::to_string(v[d]);
  return s;
}

std::string index_text(const Dims& pos, int n) {
  std::string s = "[";
  for (int d = 0; d < n; ++d) s += (d ? "," : "") + std::to_string(pos[d]);
  return s + "]";
}

std::int64_t volume(const Dims& v, int n) {
  std::int64_t c = 1;
  for (int d = 0; d < n; ++d) c = detail::checked_mul(c, v[d], "--x");
  return c;
}

// The multi-index of flat element i of a C-ordered array of spatial size `size`.
Dims unflatten(std::int64_t i, const Dims& size, int n) {
  Dims pos{0, 0, 0};
  for (int d = n - 1; d >= 0; --d) {
    pos[d] = i % size[d];
    i /= size[d];
  }
  return pos;
}

std::int64_t flatten(const Dims& pos, const Dims& size, int n) {
  std::int64_t i = 0;
  for (int d = 0; d < n; ++d) i = i * size[d] + pos[d];
  return i;
}

std::string dim_name(int n, int d) {
  if (n == 1) return "";
  return std::string(" ") + kDimNames[n - 1][d];
}

Problem problem_of(const Example& e) {
  const int n = static_cast<int>(e.x.shape.size());
  if (e.w.shape.size() != e.x.shape.size()) {
    throw Error("--w", "--w has " + std::to_string(e.w.shape.size()) + " dimensions but --x has " +
                           std::to_string(n) + "; give both as arrays of the same depth");
  }
  Problem p;
  p.op = e.op;
  p.spatial_dims = n;
  p.dtype = DType::f64;
  for (int d = 0; d < n; ++d) {
    p.input[d] = e.x.shape[d];
    p.kernel[d] = e.w.shape[d];
  }
  p.stride = e.stride;
  p.dilation = e.dilation;
  resolve_padding(p, e.padding);
  Dims extent{1, 1, 1}, padded{1, 1, 1}, full{1, 1, 1};
  for (int d = 0; d < n; ++d) {
    extent[d] = effective_kernel(p.kernel[d], p.dilation[d]);
    padded[d] = p.input[d] + p.pad_begin[d] + p.pad_end[d];
    full[d] = conv_transpose_full_size(p.input[d], p.kernel[d], p.stride[d], p.dilation[d]);
  }
  for (const auto& [what, size] : {std::pair{"the output", output_size(p)}, std::pair{"the dilated kernel", extent},
                                   std::pair{p.op == Op::conv ? "the padded input" : "the full output",
                                             p.op == Op::conv ? padded : full}}) {
    if (volume(size, n) > kMaxGridElements) {
      throw Error("--x", std::string(what) + " would have " + std::to_string(volume(size, n)) +
                             " elements; explain is for small examples (at most " +
                             std::to_string(kMaxGridElements) + ")");
    }
  }
  return p;
}

std::string header(const Problem& p, const Example& e) {
  const int n = p.spatial_dims;
  std::string s = std::string(p.op == Op::conv ? "Convolution" : "Transposed convolution") + ", " +
                  std::to_string(n) + "D: input " + joined(p.input, n) + ", kernel " + joined(p.kernel, n) +
                  ", stride " + joined(p.stride, n) + ", dilation " + joined(p.dilation, n) + ", padding " +
                  e.padding_text;
  if (p.op == Op::conv_transpose) s += ", output padding " + joined(p.output_padding, n);
  s += "\n\nInput:\n" + grid(e.x.shape, [&](std::int64_t i) { return format_number(e.x.values[i]); }, "  ");
  s += "Kernel:\n" + grid(e.w.shape, [&](std::int64_t i) { return format_number(e.w.values[i]); }, "  ");
  return s;
}

// The kernel as the input sees it: taps spaced `dilation` apart, holes shown as '.'.
std::string kernel_with_holes(const Problem& p, const Example& e) {
  const int n = p.spatial_dims;
  Dims extent{1, 1, 1};
  for (int d = 0; d < n; ++d) extent[d] = effective_kernel(p.kernel[d], p.dilation[d]);
  std::string s = "\nThe kernel with its holes (dilation " + joined(p.dilation, n) + " puts dilation - 1 holes between taps):\n";
  s += grid(spatial(extent, n), [&](std::int64_t i) {
    const Dims pos = unflatten(i, extent, n);
    Dims tap{0, 0, 0};
    for (int d = 0; d < n; ++d) {
      if (pos[d] % p.dilation[d] != 0) return std::string(".");
      tap[d] = pos[d] / p.dilation[d];
    }
    return format_number(e.w.values[flatten(tap, p.kernel, n)]);
  }, "  ");
  s += "  effective kernel size: dilation * (kernel - 1) + 1 =";
  for (int d = 0; d < n; ++d) {
    s += std::string(d ? "," : "") + " " + std::to_string(p.dilation[d]) + " * (" + std::to_string(p.kernel[d]) +
         " - 1) + 1 = " + std::to_string(extent[d]) + dim_name(n, d);
  }
  return s + "\n";
}

bool dilated(const Problem& p) {
  for (int d = 0; d < p.spatial_dims; ++d) {
    if (p.dilation[d] > 1) return true;
  }
  return false;
}

std::string transpose_size_arithmetic(const Problem& p, const Dims& full, const Dims& out) {
  std::string s = "\nOutput size: (input - 1) * stride + dilation * (kernel - 1) + 1 - pad_begin - pad_end + output_padding\n";
  for (int d = 0; d < p.spatial_dims; ++d) {
    s += "  " + (p.spatial_dims > 1 ? "dim " + std::to_string(d) + dim_name(p.spatial_dims, d) + ": " : "") + "(" +
         std::to_string(p.input[d]) + " - 1) * " + std::to_string(p.stride[d]) + " + " + std::to_string(p.dilation[d]) +
         " * (" + std::to_string(p.kernel[d]) + " - 1) + 1 - " + std::to_string(p.pad_begin[d]) + " - " +
         std::to_string(p.pad_end[d]) + " + " + std::to_string(p.output_padding[d]) + " = " + std::to_string(out[d]) +
         "   (full output before cropping: " + std::to_string(full[d]) + ")\n";
  }
  return s;
}

std::string conv_size_arithmetic(const Problem& p, const Dims& out) {
  std::string s = "\nOutput size: floor((input + pad_begin + pad_end - effective kernel) / stride) + 1\n";
  for (int d = 0; d < p.spatial_dims; ++d) {
    const std::int64_t k_eff = effective_kernel(p.kernel[d], p.dilation[d]);
    s += "  " + (p.spatial_dims > 1 ? "dim " + std::to_string(d) + dim_name(p.spatial_dims, d) + ": " : "") +
         "floor((" + std::to_string(p.input[d]) + " + " + std::to_string(p.pad_begin[d]) + " + " +
         std::to_string(p.pad_end[d]) + " - " + std::to_string(k_eff) + ") / " + std::to_string(p.stride[d]) +
         ") + 1 = " + std::to_string(out[d]) + "\n";
  }
  return s;
}

// Transposed: scatter every input element's scaled kernel into the full output, then carve.
void walk_transpose(const Problem& p, const Example& e, Explanation& out) {
  const int n = p.spatial_dims;
  Dims full{1, 1, 1};
  for (int d = 0; d < n; ++d) full[d] = conv_transpose_full_size(p.input[d], p.kernel[d], p.stride[d], p.dilation[d]);
  const Dims result_size = output_size(p);
  std::string& s = out.text;
  s += transpose_size_arithmetic(p, full, result_size);
  out.full_output.assign(static_cast<std::size_t>(volume(full, n)), 0.0);
  const std::int64_t inputs = volume(p.input, n);
  const std::int64_t taps = volume(p.kernel, n);
  s += "\nEach input element scatters (element x kernel) into the full output, starting at input index * stride:\n";
  for (std::int64_t i = 0; i < inputs; ++i) {
    const Dims ipos = unflatten(i, p.input, n);
    const double v = e.x.values[i];
    std::string where;
    for (int d = 0; d < n; ++d) {
      const std::int64_t first = ipos[d] * p.stride[d];
      where += (d ? ", " : "") + std::string(n > 1 ? kDimNames[n - 1][d] : "positions") + " " + std::to_string(first) +
               ".." + std::to_string(first + (p.kernel[d] - 1) * p.dilation[d]) +
               (p.dilation[d] > 1 ? " (every " + std::to_string(p.dilation[d]) + ")" : "");
    }
    s += "\nStep " + std::to_string(i + 1) + ": input" + index_text(ipos, n) + " = " + format_number(v) + "; " +
         format_number(v) + " x kernel goes to " + where + ":\n";
    s += grid(e.w.shape, [&](std::int64_t k) { return format_number(v * e.w.values[k]); }, "    ");
    for (std::int64_t k = 0; k < taps; ++k) {
      const Dims kpos = unflatten(k, p.kernel, n);
      Dims o{0, 0, 0};
      for (int d = 0; d < n; ++d) o[d] = ipos[d] * p.stride[d] + kpos[d] * p.dilation[d];
      out.full_output[flatten(o, full, n)] += v * e.w.values[k];
    }
    if (inputs > kMaxStepsWithRunningTotal) continue;
    s += "  full output so far:\n" +
         grid(spatial(full, n), [&](std::int64_t k) { return format_number(out.full_output[k]); }, "    ");
  }
  s += "\nFull output (" + joined(full, n) + "):\n" +
       grid(spatial(full, n), [&](std::int64_t k) { return format_number(out.full_output[k]); }, "  ");

  s += "\nCarve off the padding:";
  for (int d = 0; d < n; ++d) {
    s += std::string(d ? ";" : "") + " drop " + std::to_string(p.pad_begin[d]) + " at the start and " +
         std::to_string(p.pad_end[d]) + " at the end" + (n > 1 ? " of the" + dim_name(n, d) : "");
    if (p.output_padding[d] > 0) {
      s += ", then append " + std::to_string(p.output_padding[d]) +
           " output-padding element(s) at the end (taken back from the crop where it reaches, else zeros)";
    }
  }
  s += "\n";
  out.result.assign(static_cast<std::size_t>(volume(result_size, n)), 0.0);
  for (std::int64_t r = 0; r < volume(result_size, n); ++r) {
    Dims pos = unflatten(r, result_size, n);
    bool inside = true;
    for (int d = 0; d < n; ++d) {
      pos[d] += p.pad_begin[d];
      inside = inside && pos[d] < full[d];
    }
    if (inside) out.result[r] = out.full_output[flatten(pos, full, n)];
  }
}

// Convolution: which inputs each output reads.
void walk_conv(const Problem& p, const Example& e, Explanation& out) {
  const int n = p.spatial_dims;
  const Dims result_size = output_size(p);
  std::string& s = out.text;
  s += conv_size_arithmetic(p, result_size);
  Dims padded{1, 1, 1};
  for (int d = 0; d < n; ++d) padded[d] = p.input[d] + p.pad_begin[d] + p.pad_end[d];
  s += "\nPadded input ('.' is padding, read as 0):\n" +
       grid(spatial(padded, n), [&](std::int64_t i) {
         Dims pos = unflatten(i, padded, n);
         for (int d = 0; d < n; ++d) {
           pos[d] -= p.pad_begin[d];
           if (pos[d] < 0 || pos[d] >= p.input[d]) return std::string(".");
         }
         return format_number(e.x.values[flatten(pos, p.input, n)]);
       }, "  ");
  s += "\nOutput o reads input o * stride + k * dilation - pad_begin for each tap k:\n";
  out.result.assign(static_cast<std::size_t>(volume(result_size, n)), 0.0);
  const std::int64_t taps = volume(p.kernel, n);
  for (std::int64_t r = 0; r < volume(result_size, n); ++r) {
    const Dims opos = unflatten(r, result_size, n);
    std::string terms;
    std::int64_t skipped = 0;
    double sum = 0;
    for (std::int64_t k = 0; k < taps; ++k) {
      const Dims kpos = unflatten(k, p.kernel, n);
      Dims ipos{0, 0, 0};
      bool inside = true;
      for (int d = 0; d < n; ++d) {
        ipos[d] = opos[d] * p.stride[d] + kpos[d] * p.dilation[d] - p.pad_begin[d];
        inside = inside && ipos[d] >= 0 && ipos[d] < p.input[d];
      }
      if (!inside) {
        ++skipped;
        continue;
      }
      const double xv = e.x.values[flatten(ipos, p.input, n)];
      sum += xv * e.w.values[k];
      const double wv = e.w.values[k];
      terms += (terms.empty() ? "" : " + ") + std::string("x") + index_text(ipos, n) + "*" +
               (wv < 0 ? "(" + format_number(wv) + ")" : format_number(wv));
    }
    out.result[r] = sum;
    s += "  out" + index_text(opos, n) + " = " + (terms.empty() ? "0" : terms) +
         (skipped ? "  (" + std::to_string(skipped) + " tap(s) in padding)" : "") + " = " + format_number(sum) + "\n";
  }
}

void check_against_library(const Problem& p, const Example& e, const Explanation& out) {
  std::vector<double> dst(out.result.size());
  Plan(p).forward(view(e.x.values.data(), src_shape(p)), view(e.w.values.data(), weights_shape(p)), TensorView{},
                  mutable_view(dst.data(), dst_shape(p)));
  for (std::size_t i = 0; i < dst.size(); ++i) {
    if (std::abs(dst[i] - out.result[i]) > 1e-9 * (1 + std::abs(dst[i]))) {
      throw std::logic_error("walk-through and library disagree at element " + std::to_string(i));
    }
  }
}

}  // namespace

Explanation explain(const Example& e) {
  Explanation out;
  out.problem = problem_of(e);
  const Problem& p = out.problem;
  out.text = header(p, e);
  if (dilated(p) || p.op == Op::conv) out.text += kernel_with_holes(p, e);
  if (p.op == Op::conv_transpose) {
    walk_transpose(p, e, out);
  } else {
    walk_conv(p, e, out);
  }
  const Dims result_size = output_size(p);
  out.result_shape = spatial(result_size, p.spatial_dims);
  out.text += "\nResult (" + joined(result_size, p.spatial_dims) + "):\n" +
              grid(out.result_shape, [&](std::int64_t i) { return format_number(out.result[i]); }, "  ");
  check_against_library(p, e, out);
  return out;
}

int run_explain(const Args& args) {
  if (args.empty() || (args[0] != "conv" && args[0] != "conv-transpose")) {
    throw Error("operation", "tdconv explain needs 'conv' or 'conv-transpose' first; see tdconv explain --help");
  }
  auto valued = geometry_options();
  valued.erase("--groups");
  valued.insert({"--x", "--w"});
  if (args[0] == "conv") valued.erase("--output-padding"), valued.erase("--output-size");
  const Options o(Args(args.begin() + 1, args.end()), valued, {}, "explain " + args[0]);
  Example e;
  e.op = args[0] == "conv" ? Op::conv : Op::conv_transpose;
  e.x = parse_inline_array(o.required("--x"), "--x", kMaxOperandElements);
  e.w = parse_inline_array(o.required("--w"), "--w", kMaxOperandElements);
  const int n = static_cast<int>(e.x.shape.size());
  e.stride = stride_option(o, n);
  e.dilation = dilation_option(o, n);
  e.padding = padding_request(o, n);
  e.padding_text = o.get("--padding").value_or("0");
  std::cout << explain(e).text;
  return 0;
}

}  // namespace tdconv::cli
