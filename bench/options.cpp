// Command-line parsing for tdconv-bench: `--name value` or `--name=value`, every value checked.
#include "options.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace bench {
namespace {

int parse_int(const std::string& option, const std::string& text, int lowest) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < lowest) {
    throw UsageError(option + ": expected an integer >= " + std::to_string(lowest) + ", got '" + text + "'");
  }
  return value;
}

double parse_seconds(const std::string& option, const std::string& text) {
  std::size_t used = 0;
  double value = -1;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || !(value >= 0) || value > 3600) {
    throw UsageError(option + ": expected seconds between 0 and 3600, got '" + text + "'");
  }
  return value;
}

Peers parse_peers(const std::string& text) {
  if (text == "none") return Peers::none;
  if (text == "onednn") return Peers::onednn;
  if (text == "torch") return Peers::torch;
  if (text == "all") return Peers::all;
  throw UsageError("--peers: expected none, onednn, torch or all, got '" + text + "'");
}

tdconv::Layout parse_layout(const std::string& text) {
  if (text == "channels_first") return tdconv::Layout::channels_first;
  if (text == "channels_last") return tdconv::Layout::channels_last;
  throw UsageError("--layout: expected channels_first or channels_last, got '" + text + "'");
}

// Applies one option that takes a value.
void apply(Options& o, const std::string& name, const std::string& value) {
  if (name == "--layers") {
    if (value.empty()) throw UsageError("--layers: expected a file name");
    o.layers_file = value;
  } else if (name == "--threads") {
    o.threads = parse_int(name, value, 1);
  } else if (name == "--filter") {
    o.filter = value;
  } else if (name == "--json") {
    if (value.empty()) throw UsageError("--json: expected a file name");
    o.json_file = value;
  } else if (name == "--peers") {
    o.peers = parse_peers(value);
  } else if (name == "--layout") {
    o.layout = parse_layout(value);
  } else if (name == "--runs") {
    o.min_runs = parse_int(name, value, 1);
  } else if (name == "--rounds") {
    o.rounds = parse_int(name, value, 1);
  } else if (name == "--min-seconds") {
    o.min_seconds = parse_seconds(name, value);
  } else {
    throw UsageError(name + ": unknown option (see --help)");
  }
}

}  // namespace

Options parse_options(int argc, char** argv) {
  Options o;
  o.layers_file = TDCONV_BENCH_DEFAULT_LAYERS;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      continue;
    }
    if (arg == "--list") {
      o.list = true;
      continue;
    }
    if (arg == "--fail-on-mismatch") {
      o.fail_on_mismatch = true;
      continue;
    }
    if (arg == "--all-runs") {
      o.all_runs = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) throw UsageError(arg + ": unexpected argument (options start with --)");
    const auto eq = arg.find('=');
    if (eq != std::string::npos) {
      apply(o, arg.substr(0, eq), arg.substr(eq + 1));
    } else {
      if (i + 1 >= argc) throw UsageError(arg + ": missing its value");
      apply(o, arg, argv[++i]);
    }
  }
  if (o.threads == 0) o.threads = std::max(1u, std::thread::hardware_concurrency());
  return o;
}

std::string usage() {
  return "usage: tdconv-bench [--layers FILE] [--threads N] [--filter SUBSTR] [--json FILE]\n"
         "                    [--peers none|onednn|torch|all] [--layout channels_first|channels_last]\n"
         "                    [--runs N] [--min-seconds S] [--rounds N] [--all-runs] [--fail-on-mismatch]\n"
         "                    [--list]\n"
         "\n"
         "Times tdconv's forward pass on every forward layer of the suite (default " TDCONV_BENCH_DEFAULT_LAYERS
         ")\n"
         "and, as peers, oneDNN (best of format_tag::any and plain activations) and PyTorch (a subprocess).\n"
         "Each measurement: 1 warm-up run, then at least --runs runs (default 5) and at least --min-seconds\n"
         "(default 0.5) in all; the median is reported. Ratios are peer_ms / tdconv_ms (>1: tdconv is faster).\n"
         "Every run is bracketed by two 0.3 ms checks that the cores run at 80% of the measured FMA peak or more\n"
         "(on a shared host they drop to about half for stretches of milliseconds to seconds): medians are over\n"
         "the runs that pass both, as long as every implementation of the layer has --runs of them within 3x\n"
         "its minimums; else over every run, for all of them. At 1 thread the benchmark and its PyTorch helper\n"
         "are pinned to one CPU, the one the checks look at.\n"
         "\n"
         "  --layers FILE       the suite (JSON; see the \"about\" field of bench/layers.json)\n"
         "  --threads N         threads for tdconv and the peers (default: hardware threads)\n"
         "  --filter SUBSTR     only layers whose name contains SUBSTR\n"
         "  --json FILE         also write every number as JSON\n"
         "  --peers WHICH       which peers to run (default all); a peer that is not installed is reported\n"
         "                      as unavailable, not an error\n"
         "  --layout L          activation layout for every implementation (default channels_first)\n"
         "  --rounds N          measure the whole suite N times (default 1) and pool each layer's runs: every\n"
         "                      implementation then samples the same stretches of a shared machine's load,\n"
         "                      which on a busy machine moves single medians by tens of percent\n"
         "  --all-runs          no speed checks: medians over every run\n"
         "  --list              print the selected layers (problem, GFLOP, valid taps) and exit\n"
         "  --fail-on-mismatch  exit 3 if a peer's output differs from tdconv's (max error > 1e-3 of max |y|)\n"
         "                      or an installed peer fails on a layer it can express\n"
         "\n"
         "example: tdconv-bench --filter dcgan --threads 1 --json dcgan.json\n";
}

bool wants_onednn(Peers p) { return p == Peers::onednn || p == Peers::all; }
bool wants_torch(Peers p) { return p == Peers::torch || p == Peers::all; }

}  // namespace bench
