#pragma once
// The benchmark suite file (bench/layers.json): layers taken from published networks. It is read strictly, so that
// a typo in the suite is an error naming the layer and the field rather than a silently different benchmark.
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tdconv/problem.hpp"

namespace bench {

enum class Pass { forward, backward };

struct Layer {
  std::string name;
  std::string source;  // the network it comes from (may be empty)
  Pass pass = Pass::forward;
  // f32, channels-first activations and torch weights; the benchmark sets the layout it measures.
  tdconv::Problem problem;
};

// An error in the suite file: "FILE: layers[3] 'name': field: rule".
struct SuiteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::vector<Layer> load_layers(const std::string& path);

}  // namespace bench
