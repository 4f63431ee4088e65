#pragma once
// The command line of tdconv-bench. Parsing is strict: an unknown option or a bad value is an error that names the
// option, so a typo never silently benchmarks something else.
#include <stdexcept>
#include <string>

#include "tdconv/types.hpp"

namespace bench {

enum class Peers { none, onednn, torch, all };

struct Options {
  std::string layers_file;  // defaults to the project's bench/layers.json
  int threads = 0;          // 0: one per hardware thread
  std::string filter;       // substring of layer names; empty: every layer
  std::string json_file;    // empty: no JSON report
  Peers peers = Peers::all;
  tdconv::Layout layout = tdconv::Layout::channels_first;
  int min_runs = 5;
  double min_seconds = 0.5;
  int rounds = 1;  // passes over the whole suite; each layer's timings are pooled over them
  bool fail_on_mismatch = false;
  bool all_runs = false;  // no speed checks: medians over every run
  bool list = false;  // print the selected layers and exit
  bool help = false;
};

// Throws UsageError naming the option on anything it does not understand.
Options parse_options(int argc, char** argv);
std::string usage();

bool wants_onednn(Peers p);
bool wants_torch(Peers p);

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace bench
