// The canonical problem string: one line that names a problem completely, printed and parsed identically.
#include <charconv>

#include "tdconv/error.hpp"
#include "tdconv/problem.hpp"

namespace tdconv {
namespace {

const char* const kSubject = "problem string";

std::string join_dims(const Dims& v, int n) {
  std::string s;
  for (int d = 0; d < n; ++d) s += (d ? "x" : "") + std::to_string(v[d]);
  return s;
}

std::string join_pads(const Problem& p) {
  std::string s;
  for (int d = 0; d < p.spatial_dims; ++d) {
    s += (d ? "x" : "") + std::to_string(p.pad_begin[d]) + ":" + std::to_string(p.pad_end[d]);
  }
  return s;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t at = text.find(sep, start);
    parts.push_back(text.substr(start, at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

std::int64_t parse_int(std::string_view text, std::string_view field) {
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || (text.size() > 1 && text[0] == '0')) {
    throw Error(kSubject, "field '" + std::string(field) + "' needs a non-negative integer, got '" +
                              std::string(text) + "'");
  }
  return v;
}

// Reads the next '_'-separated field, which must start with `prefix`, and returns what follows the prefix.
class FieldReader {
 public:
  explicit FieldReader(std::string_view text) : fields_(split(text, '_')) {}

  std::string_view next(std::string_view prefix) {
    if (pos_ >= fields_.size()) {
      throw Error(kSubject, "ends early: expected a field starting with '" + std::string(prefix) + "'");
    }
    const std::string_view f = fields_[pos_];
    if (f.substr(0, prefix.size()) != prefix) {
      throw Error(kSubject, "expected a field starting with '" + std::string(prefix) + "', got '" + std::string(f) +
                                "'");
    }
    ++pos_;
    return f.substr(prefix.size());
  }
  bool next_is(std::string_view prefix) const {
    return pos_ < fields_.size() && fields_[pos_].substr(0, prefix.size()) == prefix;
  }
  void expect_end() const {
    if (pos_ != fields_.size()) throw Error(kSubject, "unexpected field '" + std::string(fields_[pos_]) + "'");
  }

 private:
  std::vector<std::string_view> fields_;
  std::size_t pos_ = 0;
};

// Unused trailing dimensions get `fill`: 1 for sizes, 0 for output padding (the neutral values validate() expects).
Dims parse_dims(std::string_view text, std::string_view field, int expected_count, std::int64_t fill = 1) {
  const auto parts = split(text, 'x');
  if (static_cast<int>(parts.size()) != expected_count) {
    throw Error(kSubject, "field '" + std::string(field) + "' needs " + std::to_string(expected_count) +
                              " values joined by 'x', got '" + std::string(text) + "'");
  }
  Dims v{fill, fill, fill};
  for (int d = 0; d < expected_count; ++d) v[d] = parse_int(parts[d], field);
  return v;
}

void parse_pads(std::string_view text, Problem& p) {
  const auto parts = split(text, 'x');
  if (static_cast<int>(parts.size()) != p.spatial_dims) {
    throw Error(kSubject, "field 'p' needs " + std::to_string(p.spatial_dims) + " BEGIN:END pairs joined by 'x'");
  }
  for (int d = 0; d < p.spatial_dims; ++d) {
    const auto pair = split(parts[d], ':');
    if (pair.size() != 2) throw Error(kSubject, "field 'p' needs BEGIN:END, got '" + std::string(parts[d]) + "'");
    p.pad_begin[d] = parse_int(pair[0], "p");
    p.pad_end[d] = parse_int(pair[1], "p");
  }
}

template <class Enum>
Enum parse_choice(std::string_view got, std::string_view a, Enum ea, std::string_view b, Enum eb) {
  if (got == a) return ea;
  if (got == b) return eb;
  throw Error(kSubject, "expected '" + std::string(a) + "' or '" + std::string(b) + "', got '" + std::string(got) +
                            "'");
}

}  // namespace

std::string to_string(const Problem& p) {
  const int n = p.spatial_dims;
  std::string s = p.op == Op::conv ? "conv" : "convT";
  s += "_mb" + std::to_string(p.batch) + "_g" + std::to_string(p.groups) + "_ic" + std::to_string(p.in_channels) +
       "_oc" + std::to_string(p.out_channels) + "_i" + join_dims(p.input, n) + "_k" + join_dims(p.kernel, n) + "_s" +
       join_dims(p.stride, n) + "_d" + join_dims(p.dilation, n) + "_p" + join_pads(p);
  if (p.op == Op::conv_transpose) s += "_op" + join_dims(p.output_padding, n);
  s += p.dtype == DType::f32 ? "_f32" : "_f64";
  s += p.layout == Layout::channels_first ? "_cfirst" : "_clast";
  s += p.weight_layout == WeightLayout::torch ? "_wtorch" : "_wtf";
  return s;
}

Problem parse_problem(std::string_view text) {
  FieldReader in(text);
  Problem p;
  if (in.next_is("convT")) {
    in.next("convT");  // "convT" must be the whole field
    p.op = Op::conv_transpose;
  } else {
    if (!in.next("conv").empty()) throw Error(kSubject, "must start with 'conv' or 'convT'");
    p.op = Op::conv;
  }
  p.batch = parse_int(in.next("mb"), "mb");
  p.groups = parse_int(in.next("g"), "g");
  p.in_channels = parse_int(in.next("ic"), "ic");
  p.out_channels = parse_int(in.next("oc"), "oc");
  const std::string_view input = in.next("i");
  p.spatial_dims = static_cast<int>(split(input, 'x').size());
  if (p.spatial_dims > kMaxSpatialDims) throw Error(kSubject, "at most 3 spatial dimensions");
  p.input = parse_dims(input, "i", p.spatial_dims);
  p.kernel = parse_dims(in.next("k"), "k", p.spatial_dims);
  p.stride = parse_dims(in.next("s"), "s", p.spatial_dims);
  p.dilation = parse_dims(in.next("d"), "d", p.spatial_dims);
  parse_pads(in.next("p"), p);
  if (p.op == Op::conv_transpose) p.output_padding = parse_dims(in.next("op"), "op", p.spatial_dims, 0);
  p.dtype = parse_choice(in.next(""), "f32", DType::f32, "f64", DType::f64);
  p.layout = parse_choice(in.next(""), "cfirst", Layout::channels_first, "clast", Layout::channels_last);
  p.weight_layout = parse_choice(in.next("w"), "torch", WeightLayout::torch, "tf", WeightLayout::tf);
  in.expect_end();
  return p;
}

}  // namespace tdconv
