// Derived numbers of a layer's results: the best peer and the ratios.
#include "results.hpp"

#include <cmath>

namespace bench {

bool PeerRun::mismatch() const { return max_rel_error && !(*max_rel_error <= kTolerance); }

namespace {
const PeerRun* faster(const PeerRun* a, const PeerRun* b) {
  if (a == nullptr || !a->available) return b != nullptr && b->available ? b : nullptr;
  if (b == nullptr || !b->available) return a;
  return b->timing.median_ms < a->timing.median_ms ? b : a;
}
}  // namespace

const PeerRun* LayerResult::onednn_best() const { return faster(&onednn_any, &onednn_plain); }
const PeerRun* LayerResult::best_peer() const { return faster(onednn_best(), &torch); }

std::optional<double> ratio(const LayerResult& r, const PeerRun* peer) {
  if (!r.tdconv || peer == nullptr || !peer->available || r.tdconv->timing.median_ms <= 0) return std::nullopt;
  return peer->timing.median_ms / r.tdconv->timing.median_ms;
}

double RunInfo::peak_for_threads() const {
  for (const auto& p : peaks) {
    if (p.threads == threads) return p.gflops;
  }
  return peaks.empty() ? 0 : peaks.back().gflops;
}

GeoMean geomean_ratio(const std::vector<LayerResult>& results, PeerOf peer, const std::string& pass) {
  GeoMean g;
  double log_sum = 0;
  for (const auto& r : results) {
    if (r.pass != pass) continue;
    if (const auto q = ratio(r, peer(r)); q && *q > 0) {
      log_sum += std::log(*q);
      ++g.layers;
    }
  }
  if (g.layers > 0) g.value = std::exp(log_sum / g.layers);
  return g;
}

const std::vector<PeerColumn>& peer_columns() {
  static const std::vector<PeerColumn> columns{
      {"onednn_any", "oneDNN (any)", [](const LayerResult& r) -> const PeerRun* { return &r.onednn_any; }},
      {"onednn_plain", "oneDNN (plain)", [](const LayerResult& r) -> const PeerRun* { return &r.onednn_plain; }},
      {"onednn_best", "oneDNN (best)", [](const LayerResult& r) { return r.onednn_best(); }},
      {"torch", "PyTorch", [](const LayerResult& r) -> const PeerRun* { return &r.torch; }},
      {"best_peer", "best peer", [](const LayerResult& r) { return r.best_peer(); }},
  };
  return columns;
}

}  // namespace bench
