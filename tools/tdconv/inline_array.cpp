#include "inline_array.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "tdconv/error.hpp"

namespace tdconv::cli {
namespace {

class Parser {
 public:
  Parser(const std::string& text, const std::string& option, std::int64_t max_elements)
      : text_(text), option_(option), max_elements_(max_elements) {}

  InlineArray parse() {
    InlineArray a;
    std::vector<std::int64_t> shape;
    parse_list(0, a, shape);
    skip_space();
    if (pos_ != text_.size()) fail("unexpected '" + text_.substr(pos_, 10) + "' after the array");
    a.shape = shape;
    a.shape.resize(leaf_depth_ + 1);  // levels below the numbers (none) are dropped
    return a;
  }

 private:
  // Parses one '[...]' at nesting level `depth`, recording (or checking) the length of that level.
  void parse_list(std::size_t depth, InlineArray& a, std::vector<std::int64_t>& shape) {
    if (depth >= 3) fail("nests deeper than 3 levels");
    expect('[');
    std::int64_t count = 0;
    skip_space();
    if (peek() == ']') fail("has an empty list");
    while (true) {
      skip_space();
      if (peek() == '[') {
        if (depth + 1 > leaf_depth_ && leaf_depth_ != kUnknown) fail("mixes numbers and lists at one level");
        parse_list(depth + 1, a, shape);
      } else {
        if (leaf_depth_ == kUnknown) leaf_depth_ = depth;
        if (leaf_depth_ != depth) fail("is not rectangular: numbers at different depths");
        if (static_cast<std::int64_t>(a.values.size()) >= max_elements_) {
          fail("has more than " + std::to_string(max_elements_) + " numbers; explain is for small examples");
        }
        a.values.push_back(parse_number());
      }
      ++count;
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect(']');
      break;
    }
    if (shape.size() <= depth) shape.resize(depth + 1, kUnset);
    if (shape[depth] == kUnset) shape[depth] = count;
    if (shape[depth] != count) fail("is not rectangular: lists of length " + std::to_string(shape[depth]) + " and " + std::to_string(count));
  }

  double parse_number() {
    const std::size_t start = pos_;
    while (pos_ < text_.size() && (std::isdigit(static_cast<unsigned char>(text_[pos_])) ||
                                   std::string_view("+-.eE").find(text_[pos_]) != std::string_view::npos)) {
      ++pos_;
    }
    const char* first = text_.data() + start;
    if (*first == '+') ++first;
    double v = 0;
    const auto [end, ec] = std::from_chars(first, text_.data() + pos_, v);
    if (pos_ == start || ec != std::errc() || end != text_.data() + pos_ || !std::isfinite(v)) {
      fail("has '" + text_.substr(start, std::max<std::size_t>(pos_ - start, 1)) + "' where a finite number belongs");
    }
    return v;
  }

  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail(std::string("expects '") + c + "' at character " + std::to_string(pos_ + 1));
    ++pos_;
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(option_, option_ + " " + why + " (write nested lists like [[1,2],[3,4]])");
  }

  static constexpr std::int64_t kUnset = -1;
  static constexpr std::size_t kUnknown = ~std::size_t{0};
  const std::string& text_;
  const std::string& option_;
  std::int64_t max_elements_;
  std::size_t pos_ = 0;
  std::size_t leaf_depth_ = kUnknown;
};

}  // namespace

InlineArray parse_inline_array(const std::string& text, const std::string& option, std::int64_t max_elements) {
  InlineArray a = Parser(text, option, max_elements).parse();
  return a;
}

std::string format_number(double v) {
  if (v == 0) return "0";
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : "?";
}

std::string grid(const std::vector<std::int64_t>& shape, const std::function<std::string(std::int64_t)>& cell,
                 const std::string& indent) {
  const std::int64_t cols = shape.back();
  const std::int64_t rows = shape.size() >= 2 ? shape[shape.size() - 2] : 1;
  const std::int64_t blocks = shape.size() == 3 ? shape[0] : 1;
  std::vector<std::string> cells(static_cast<std::size_t>(blocks * rows * cols));
  std::size_t width = 1;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    cells[i] = cell(static_cast<std::int64_t>(i));
    width = std::max(width, cells[i].size());
  }
  std::string out;
  for (std::int64_t b = 0; b < blocks; ++b) {
    if (shape.size() == 3) out += indent + "[" + std::to_string(b) + ", :, :]\n";
    for (std::int64_t r = 0; r < rows; ++r) {
      out += indent + "[";
      for (std::int64_t c = 0; c < cols; ++c) {
        const std::string& s = cells[static_cast<std::size_t>((b * rows + r) * cols + c)];
        out += (c ? " " : "") + std::string(width - s.size(), ' ') + s;
      }
      out += "]\n";
    }
  }
  return out;
}

}  // namespace tdconv::cli
