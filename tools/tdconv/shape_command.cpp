// `tdconv shape`: output size and padding arithmetic, the padding each convention needs, and the equivalent layer in
// PyTorch, Keras and ONNX. No tensors.
#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "options.hpp"
#include "tdconv/error.hpp"
#include "tdconv/frameworks.hpp"
#include "tdconv/tensor.hpp"

namespace tdconv::cli {
namespace {

std::string joined(const Dims& v, int n, const char* sep = "x") {
  std::string s;
  for (int d = 0; d < n; ++d) s += (d ? sep : "") + std::to_string(v[d]);
  return s;
}

std::string pads_text(const std::vector<DimPadding>& pads) {
  std::string s;
  for (std::size_t d = 0; d < pads.size(); ++d) {
    s += (d ? " x " : "") + std::to_string(pads[d].begin) + ":" + std::to_string(pads[d].end);
  }
  return s;
}

std::vector<DimPadding> problem_pads(const Problem& p) {
  std::vector<DimPadding> pads;
  for (int d = 0; d < p.spatial_dims; ++d) pads.push_back({p.pad_begin[d], p.pad_end[d], p.output_padding[d]});
  return pads;
}

nlohmann::json dims_json(const Dims& v, int n) { return std::vector<std::int64_t>(v.begin(), v.begin() + n); }

nlohmann::json pads_json(const std::vector<DimPadding>& pads) {
  nlohmann::json begin = nlohmann::json::array(), end = nlohmann::json::array(), op = nlohmann::json::array();
  for (const auto& d : pads) {
    begin.push_back(d.begin);
    end.push_back(d.end);
    op.push_back(d.output_padding);
  }
  return {{"begin", begin}, {"end", end}, {"output_padding", op}};
}

Dims effective(const Problem& p) {
  Dims k{1, 1, 1};
  for (int d = 0; d < p.spatial_dims; ++d) k[d] = effective_kernel(p.kernel[d], p.dilation[d]);
  return k;
}

Dims full_output(const Problem& p) {
  Dims f{1, 1, 1};
  for (int d = 0; d < p.spatial_dims; ++d) f[d] = conv_transpose_full_size(p.input[d], p.kernel[d], p.stride[d], p.dilation[d]);
  return f;
}

Problem problem_from(const std::string& op, const Options& o, PaddingRequest& request) {
  Problem p;
  if (op != "conv" && op != "conv-transpose") {
    throw Error("operation", "tdconv shape needs 'conv' or 'conv-transpose' first, got '" + op + "'");
  }
  p.op = op == "conv" ? Op::conv : Op::conv_transpose;
  const std::string input = o.required("--input");
  p.spatial_dims = static_cast<int>(std::count(input.begin(), input.end(), ',')) + 1;
  if (p.spatial_dims > kMaxSpatialDims) {
    throw Error("--input", "--input '" + input + "' has more than 3 spatial dimensions");
  }
  p.input = parse_dims(input, "--input", p.spatial_dims, 1);
  p.kernel = parse_dims(o.required("--kernel"), "--kernel", p.spatial_dims, 1);
  p.stride = stride_option(o, p.spatial_dims);
  p.dilation = dilation_option(o, p.spatial_dims);
  p.groups = parse_int(o.get("--groups").value_or("1"), "--groups");
  p.in_channels = parse_int(o.get("--in-channels").value_or(std::to_string(p.groups)), "--in-channels");
  p.out_channels = parse_int(o.get("--out-channels").value_or(std::to_string(p.groups)), "--out-channels");
  p.batch = parse_int(o.get("--batch").value_or("1"), "--batch");
  p.layout = parse_layout(o.get("--layout").value_or("channels_first"));
  request = padding_request(o, p.spatial_dims);
  resolve_padding(p, request);
  return p;
}

std::string request_text(const Options& o) { return o.get("--padding").value_or("0"); }

void print_text(const Problem& p, const Options& o) {
  const int n = p.spatial_dims;
  const bool transpose = p.op == Op::conv_transpose;
  std::cout << (transpose ? "conv-transpose" : "conv") << ", " << n << " spatial dim" << (n > 1 ? "s" : "")
            << ": input " << joined(p.input, n) << ", kernel " << joined(p.kernel, n) << ", stride "
            << joined(p.stride, n) << ", dilation " << joined(p.dilation, n) << ", padding " << request_text(o)
            << "\n";
  std::cout << "  effective kernel  dilation*(kernel-1)+1 = " << joined(effective(p), n) << "\n";
  if (transpose) {
    std::cout << "  full output       (input-1)*stride + effective kernel = " << joined(full_output(p), n) << "\n";
    std::cout << "  cropped           " << pads_text(problem_pads(p)) << " (begin:end per dim), then output padding "
              << joined(p.output_padding, n) << " appended\n";
  } else {
    std::cout << "  padding           " << pads_text(problem_pads(p)) << " (begin:end per dim)\n";
  }
  std::cout << "  output            " << joined(output_size(p), n) << "\n";
  std::cout << "  tensors           input " << Shape(src_shape(p)).to_string() << ", weight "
            << Shape(weights_shape(p)).to_string() << " (torch layout), output " << Shape(dst_shape(p)).to_string()
            << "\n";
  std::cout << "  problem           " << to_string(p) << "\n\n";

  std::cout << "What each convention gives for these sizes:\n";
  for (const auto& c : padding_conventions(p)) {
    std::cout << "  " << std::left << std::setw(14) << c.convention;
    if (!c.applies) {
      std::cout << "does not apply: " << c.why_not << "\n";
      continue;
    }
    std::cout << (transpose ? "crop " : "pad ") << pads_text(c.padding);
    if (transpose) {
      Dims op{0, 0, 0};
      for (int d = 0; d < n; ++d) op[d] = c.padding[d].output_padding;
      std::cout << ", output padding " << joined(op, n);
    }
    std::cout << " -> output " << joined(c.output, n) << "\n";
  }
  std::cout << "\nThe same layer elsewhere:\n";
  for (const auto& f : framework_equivalents(p)) {
    std::cout << "  " << std::left << std::setw(8) << f.framework
              << (f.exact ? "" : "NOT one layer: ") << (f.code.empty() ? "(no equivalent)" : f.code) << "\n";
    if (!f.note.empty()) std::cout << "          " << f.note << "\n";
  }
}

void print_json(const Problem& p) {
  const int n = p.spatial_dims;
  nlohmann::json j{{"op", std::string(to_string(p.op))},
                   {"problem", to_string(p)},
                   {"input", dims_json(p.input, n)},
                   {"kernel", dims_json(p.kernel, n)},
                   {"stride", dims_json(p.stride, n)},
                   {"dilation", dims_json(p.dilation, n)},
                   {"effective_kernel", dims_json(effective(p), n)},
                   {"padding", pads_json(problem_pads(p))},
                   {"output", dims_json(output_size(p), n)},
                   {"src_shape", src_shape(p)},
                   {"weights_shape", weights_shape(p)},
                   {"dst_shape", dst_shape(p)}};
  if (p.op == Op::conv_transpose) j["full_output"] = dims_json(full_output(p), n);
  j["conventions"] = nlohmann::json::array();
  for (const auto& c : padding_conventions(p)) {
    nlohmann::json cj{{"convention", c.convention}, {"applies", c.applies}};
    if (c.applies) {
      cj["padding"] = pads_json(c.padding);
      cj["output"] = dims_json(c.output, n);
    } else {
      cj["why_not"] = c.why_not;
    }
    j["conventions"].push_back(cj);
  }
  j["frameworks"] = nlohmann::json::array();
  for (const auto& f : framework_equivalents(p)) {
    j["frameworks"].push_back({{"framework", f.framework}, {"exact", f.exact}, {"code", f.code}, {"note", f.note}});
  }
  std::cout << j.dump(2) << "\n";
}

}  // namespace

int run_shape(const Args& args) {
  if (args.empty()) throw Error("operation", "tdconv shape needs 'conv' or 'conv-transpose' first; see tdconv shape --help");
  auto valued = geometry_options();
  valued.insert({"--input", "--kernel", "--in-channels", "--out-channels", "--batch", "--layout"});
  const Options o(Args(args.begin() + 1, args.end()), valued, {"--json"}, "shape");
  PaddingRequest request;
  const Problem p = problem_from(args[0], o, request);
  if (o.has("--json")) {
    print_json(p);
  } else {
    print_text(p, o);
  }
  return 0;
}

}  // namespace tdconv::cli
