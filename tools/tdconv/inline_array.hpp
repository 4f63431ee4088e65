#pragma once
// Small arrays written inline on the command line, e.g. "[[1,2],[3,4]]", and their text rendering as grids.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace tdconv::cli {

struct InlineArray {
  std::vector<std::int64_t> shape;  // 1 to 3 dims
  std::vector<double> values;       // C order
};

// Nested lists of numbers, 1 to 3 levels deep, rectangular, at most `max_elements` numbers.
InlineArray parse_inline_array(const std::string& text, const std::string& option, std::int64_t max_elements);

// Shortest text that reads back as the same double ("2", "0.5", "-3"); -0 prints as 0.
std::string format_number(double v);

// Renders a 1D/2D/3D array as aligned rows (3D: one block per outer index), each line prefixed by `indent`.
// `cell(i)` gives the text of flat element i.
std::string grid(const std::vector<std::int64_t>& shape, const std::function<std::string(std::int64_t)>& cell,
                 const std::string& indent);

}  // namespace tdconv::cli
