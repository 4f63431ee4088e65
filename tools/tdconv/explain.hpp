#pragma once
// Step-by-step walk-throughs of one small single-channel operation, shared by `tdconv explain` and `tdconv demo`.
#include <string>
#include <vector>

#include "inline_array.hpp"
#include "tdconv/problem.hpp"
#include "tdconv/shape.hpp"

namespace tdconv::cli {

struct Example {
  Op op = Op::conv_transpose;
  InlineArray x;  // spatial only: batch 1, one channel
  InlineArray w;
  Dims stride{1, 1, 1};
  Dims dilation{1, 1, 1};
  PaddingRequest padding;
  std::string padding_text = "0";  // as the user wrote it
};

struct Explanation {
  std::string text;
  Problem problem;
  std::vector<double> full_output;  // conv_transpose: before cropping
  std::vector<double> result;
  std::vector<std::int64_t> result_shape;
};

// Builds the walk-through. The result is computed twice, once by the walk-through's own loops and once by the
// library's plan, and a disagreement is an internal error.
Explanation explain(const Example& e);

}  // namespace tdconv::cli
