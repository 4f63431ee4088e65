// `tdconv demo`: the study page's worked examples and two dilated ones, explained and checked against the numbers
// worked out by hand. Exits 1 if any result differs.
#include <iostream>

#include "commands.hpp"
#include "explain.hpp"
#include "options.hpp"
#include "tdconv/frameworks.hpp"
#include "tdconv/tensor.hpp"

namespace tdconv::cli {
namespace {

class Checker {
 public:
  void check(const std::string& what, const std::vector<double>& got, const std::vector<double>& expected) {
    const bool ok = got == expected;
    failures_ += ok ? 0 : 1;
    std::cout << (ok ? "  [ok] " : "  [MISMATCH] ") << what << ": " << list(got);
    if (!ok) std::cout << ", expected " << list(expected);
    std::cout << "\n";
  }
  int failures() const { return failures_; }

 private:
  static std::string list(const std::vector<double>& v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + format_number(v[i]);
    return s + "]";
  }
  int failures_ = 0;
};

void title(const std::string& t) { std::cout << "\n==== " << t << " ====\n\n"; }

Example example(Op op, const std::string& x, const std::string& w, const std::string& stride,
                const std::string& dilation, const std::string& padding) {
  Example e;
  e.op = op;
  e.x = parse_inline_array(x, "--x", 256);
  e.w = parse_inline_array(w, "--w", 256);
  const int n = static_cast<int>(e.x.shape.size());
  e.stride = parse_dims(stride, "--stride", n, 1);
  e.dilation = parse_dims(dilation, "--dilation", n, 1);
  e.padding = parse_padding(padding, n);
  e.padding_text = padding;
  return e;
}

void seed_1d(Checker& c) {
  title("1D transposed convolution: input [2, 3], kernel [1, 2, 3], stride 2");
  const auto r = explain(example(Op::conv_transpose, "[2,3]", "[1,2,3]", "2", "1", "0"));
  std::cout << r.text << "\n";
  c.check("1D result", r.result, {2, 4, 9, 6, 9});
}

void seed_2d(Checker& c) {
  title("2D transposed convolution: stride 2, padding 1");
  const auto r = explain(example(Op::conv_transpose, "[[1,2],[3,4]]", "[[1,1,1],[0,0,0],[-1,-1,-1]]", "2", "1", "1"));
  std::cout << r.text << "\n";
  c.check("2D full output", r.full_output,
          {1, 1, 3, 2, 2, 0, 0, 0, 0, 0, 2, 2, 4, 2, 2, 0, 0, 0, 0, 0, -3, -3, -7, -4, -4});
  c.check("2D result", r.result, {0, 0, 0, 2, 4, 2, 0, 0, 0});
}

void seed_arithmetic(Checker& c) {
  title("Output-size arithmetic");
  const std::int64_t o = conv_transpose_output_size(4, 3, 1, 1, 2, 2, 0);
  std::cout << "Transposed convolution, i=4, k=3, p=2, s=1: (4 - 1) * 1 + 3 - 2 * 2 = " << o << "\n";
  c.check("transposed output size", {double(o)}, {2});
  const DimPadding f = fixed_padding(3, 2);
  std::cout << "MobileNet's fixed_padding(kernel 3, dilation 2): effective kernel 2 * (3 - 1) + 1 = 5, total 4, "
               "begin 4 // 2, end the rest = ("
            << f.begin << ", " << f.end << ")\n";
  c.check("fixed_padding(3, 2)", {double(f.begin), double(f.end)}, {2, 2});
  const DimPadding same = conv_transpose_padding(PaddingMode::same, {2, 3, 2, 1});
  const std::int64_t same_out = conv_transpose_output_size(2, 3, 2, 1, same.begin, same.end, same.output_padding);
  std::cout << "TensorFlow 'same' transposed convolution, input 2, kernel 3, stride 2: output = stride * input = "
            << same_out << " (crop " << same.begin << " at the start, " << same.end << " at the end)\n";
  c.check("'same' transposed output size", {double(same_out)}, {4});
}

void channels_mistake(Checker& c) {
  title("The common mistake: channels in the wrong dimension");
  // An array of shape (1, 1, 2, 2) meant as N, C, H, W, read by a channels-last framework as N, H, W, C.
  Problem p;
  p.op = Op::conv_transpose;
  p.kernel = {3, 3, 1};
  p.stride = {2, 2, 1};
  p.layout = Layout::channels_last;
  p.input = {1, 2, 1};
  p.in_channels = 2;
  p.out_channels = 1;
  PaddingRequest same;
  same.mode = PaddingMode::same;
  resolve_padding(p, same);
  const auto shape = dst_shape(p);
  std::cout << "Input (1, 1, 2, 2) with 1 filter, stride 2, 'same', read channels-last as N=1, H=1, W=2, C=2, gives "
            << Shape(shape).to_string() << ", not (1, 1, 4, 4).\n"
            << "tdconv conv-transpose refuses such a mismatch and says: pass --layout channels_last if the input is "
               "channels-last.\n";
  c.check("channels-last output shape", {double(shape[0]), double(shape[1]), double(shape[2]), double(shape[3])},
          {1, 2, 4, 1});
}

void dilated(Checker& c) {
  title("Dilated convolution, 1D: rate 2");
  const auto r1 = explain(example(Op::conv, "[1,2,3,4,5,6,7]", "[1,0,-1]", "1", "2", "0"));
  std::cout << r1.text << "\n";
  c.check("1D dilated result (x[o] - x[o+4])", r1.result, {-4, -4, -4});

  title("Dilated convolution, 2D: rate 2, no padding");
  const auto r2 = explain(example(Op::conv, "[[1,2,3,4,5],[6,7,8,9,10],[11,12,13,14,15],[16,17,18,19,20],[21,22,23,24,25]]",
                                  "[[1,0],[0,1]]", "1", "2", "valid"));
  std::cout << r2.text << "\n";
  c.check("2D dilated result (x[i][j] + x[i+2][j+2])", r2.result, {14, 16, 18, 24, 26, 28, 34, 36, 38});
}

}  // namespace

int run_demo(const Args& args) {
  const Options o(args, {}, {}, "demo");
  Checker c;
  seed_1d(c);
  seed_2d(c);
  seed_arithmetic(c);
  channels_mistake(c);
  dilated(c);
  std::cout << "\n" << (c.failures() == 0 ? "All demo results match the worked examples." : "SOME RESULTS DIFFER.")
            << "\n";
  return c.failures() == 0 ? 0 : 1;
}

}  // namespace tdconv::cli
