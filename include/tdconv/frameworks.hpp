#pragma once
// How to say a resolved problem in PyTorch, Keras/TensorFlow and ONNX terms, and what each padding convention
// would give for the same sizes. Used by `tdconv shape`.
#include <string>
#include <vector>

#include "tdconv/problem.hpp"
#include "tdconv/shape.hpp"

namespace tdconv {

struct FrameworkEquivalent {
  std::string framework;  // "PyTorch", "Keras", "ONNX"
  bool exact = false;     // one layer of that framework computes exactly this problem
  std::string code;       // the layer (or, when not exact, the layer plus the extra step it needs)
  std::string note;       // why it is not exact, or a remark worth knowing
};

// One entry per framework, in the order PyTorch, Keras, ONNX. `p` must be valid.
std::vector<FrameworkEquivalent> framework_equivalents(const Problem& p);

// What a padding convention gives for p's sizes (p's own padding is ignored).
struct ConventionResult {
  std::string convention;  // "valid", "same", "same_upper", "same_lower", "torch_same", "fixed_padding"
  bool applies = false;
  std::vector<DimPadding> padding;  // per spatial dimension, when it applies
  Dims output{1, 1, 1};
  std::string why_not;  // when it does not apply
};
std::vector<ConventionResult> padding_conventions(const Problem& p);

}  // namespace tdconv
