#pragma once
// What one benchmark run found: per layer, tdconv's measurement and each peer's, as the report prints them.
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "peak.hpp"
#include "timing.hpp"

namespace bench {

// A peer's measurement of one layer: either a timing or the reason there is none.
struct PeerRun {
  bool available = false;
  std::string reason;  // why not available
  Timing timing;
  std::string detail;  // what ran: oneDNN's implementation name, PyTorch's call
  std::optional<double> max_rel_error;  // against tdconv's output, when both ran
  // The peer is installed and should have run the layer but failed (refused the configuration, wrong output
  // shape, crashed): a bug in how the benchmark drives it, as serious as a mismatch.
  bool failed = false;
  bool mismatch() const;  // the error exceeds kTolerance
};

inline constexpr double kTolerance = 1e-3;

struct TdconvRun {
  std::string implementation;
  double plan_ms = 0;
  double pack_ms = 0;
  std::size_t workspace_bytes = 0;  // Plan::forward_workspace_bytes: scratch at this thread count
  std::size_t packed_bytes = 0;     // PackedWeights::bytes
  Timing timing;
  bool finite = true;  // every output element was written with a finite value
};

struct LayerResult {
  std::string name;
  std::string problem;       // tdconv's canonical problem string
  std::string pass = "forward";  // or "backward": both gradients (data and weights) per run
  std::string skip_reason;   // non-empty: not measured
  std::string error;         // non-empty: tdconv failed on it
  double flops = 0;
  double valid_taps = 1;
  std::optional<TdconvRun> tdconv;
  PeerRun onednn_any;
  PeerRun onednn_plain;
  PeerRun torch;

  const PeerRun* onednn_best() const;  // the faster available oneDNN variant, or null
  const PeerRun* best_peer() const;    // the fastest available peer, or null
};

// peer_ms / tdconv_ms (> 1: tdconv is faster), when both were measured.
std::optional<double> ratio(const LayerResult& r, const PeerRun* peer);

struct PeerStatus {
  bool wanted = false;
  bool available = false;
  std::string detail;  // version and configuration, or why it is unavailable
};

struct RunInfo {
  int threads = 1;
  std::string layout;
  std::string layers_file;
  std::string build;  // build type, and a warning when unoptimised
  std::vector<Peak> peaks;  // 1 thread, then `threads` threads when more than 1
  PeerStatus onednn;
  PeerStatus torch;
  TimingRule rule;
  int rounds = 1;  // passes over the suite whose runs are pooled (--rounds)
  bool speed_gate = true;  // medians over the runs at full speed (TimingRule::full_speed; off with --all-runs)
  double peak_for_threads() const;
};

// Geometric mean of peer_ms / tdconv_ms over the layers of one pass ("forward" or "backward") where both ran.
struct GeoMean {
  double value = 0;
  int layers = 0;
};
using PeerOf = const PeerRun* (*)(const LayerResult&);
GeoMean geomean_ratio(const std::vector<LayerResult>& results, PeerOf peer, const std::string& pass);

// The selectors, in report order, with their names in the JSON report.
struct PeerColumn {
  const char* key;    // "onednn_any", ..., "best_peer"
  const char* label;  // for people
  PeerOf peer;
};
const std::vector<PeerColumn>& peer_columns();

}  // namespace bench
