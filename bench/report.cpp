// The table for people and the JSON record for scripts. Ratios are peer_ms / tdconv_ms: above 1, tdconv is faster.
#include "report.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "geometry.hpp"
#include "layers.hpp"

namespace bench {
namespace {

using nlohmann::ordered_json;

// Above this share of the CPUs used by other processes a timing is flagged (BENCHMARKING.md: shared machine).
constexpr double kBusy = 0.1;

std::string format(const char* fmt, double v) {
  char text[64];
  std::snprintf(text, sizeof text, fmt, v);
  return text;
}

// Four significant digits without an exponent: 0.004213, 12.35, 1235, 123457.
std::string number(double v) { return v >= 1000 ? format("%.0f", v) : format("%.4g", v); }
std::string percent(double fraction) { return format("%.1f%%", 100 * fraction); }
std::string times(std::optional<double> r) { return r ? format("%.3gx", *r) : "-"; }

std::string bytes(std::size_t n) {
  const double v = static_cast<double>(n);
  if (n < 1024) return std::to_string(n) + " B";
  if (n < 1024 * 1024) return format("%.1f KiB", v / 1024);
  if (n < 1024ull * 1024 * 1024) return format("%.1f MiB", v / (1024.0 * 1024));
  return format("%.2f GiB", v / (1024.0 * 1024 * 1024));
}

std::string peer_ms(const PeerRun* run) {
  if (run == nullptr || !run->available) return "-";
  return number(run->timing.median_ms) + (run->mismatch() ? "!" : "");
}

std::string variant_of(const LayerResult& r) {
  const PeerRun* best = r.onednn_best();
  if (best == nullptr) return "";
  return best == &r.onednn_any ? " (any)" : " (plain)";
}

using Row = std::vector<std::string>;

// "8/13": runs at full speed of all runs, with "*" where the medians are over every run (too few at full speed).
std::string full_speed(const Timing& t) {
  return std::to_string(t.full_speed_runs()) + "/" + std::to_string(t.times_ms.size()) +
         (t.from_full_speed_runs ? "" : "*");
}

Row header_row() {
  return {"layer", "impl", "ms", "full speed", "GFLOP/s", "%peak", "valid taps", "oneDNN ms", "torch ms",
          "vs oneDNN", "vs torch", "vs best", "workspace", "packed", "plan ms"};
}

Row layer_row(const LayerResult& r, const RunInfo& info) {
  if (!r.skip_reason.empty()) return {r.name, "skipped: " + r.skip_reason};
  if (!r.error.empty()) return {r.name, "error: " + r.error};
  const TdconvRun& t = *r.tdconv;
  const double gflops = r.flops / (t.timing.median_ms * 1e-3) * 1e-9;
  const double peak = info.peak_for_threads();
  return {r.name,
          t.implementation,
          number(t.timing.median_ms) + (t.finite ? "" : "!"),
          full_speed(t.timing),
          number(gflops),
          peak > 0 ? percent(gflops / peak) : "-",
          percent(r.valid_taps),
          peer_ms(r.onednn_best()) + variant_of(r),
          peer_ms(&r.torch),
          times(ratio(r, r.onednn_best())),
          times(ratio(r, &r.torch)),
          times(ratio(r, r.best_peer())),
          r.pass == "forward" ? bytes(t.workspace_bytes) : "-",  // the backward passes report neither
          r.pass == "forward" ? bytes(t.packed_bytes) : "-",
          number(t.plan_ms)};
}

// Text columns left-aligned, numbers right-aligned; a row with fewer cells (skipped, error) runs on freely.
void print_rows(std::ostream& out, const std::vector<Row>& rows) {
  std::vector<std::size_t> width(header_row().size(), 0);
  for (const auto& row : rows) {
    if (row.size() != width.size()) continue;
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      const bool full = row.size() == width.size();
      const std::size_t pad = full && row[c].size() < width[c] ? width[c] - row[c].size() : 0;
      const bool left = c < 2;
      if (c > 0) line += "  ";
      line += left ? row[c] + (full ? std::string(pad, ' ') : "") : std::string(pad, ' ') + row[c];
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  }
}

void print_peer_detail(std::ostream& out, const char* label, const PeerRun& run) {
  out << "    " << label << ": ";
  if (!run.available) {
    out << "unavailable: " << run.reason << "\n";
    return;
  }
  out << number(run.timing.median_ms) << " ms, " << run.detail;
  if (run.max_rel_error) out << ", max error " << format("%.2g", *run.max_rel_error) << " of max |y|";
  out << "\n";
}

void print_details(std::ostream& out, const RunInfo& info, const std::vector<LayerResult>& results) {
  out << "\nDetails (oneDNN: implementation and layouts; PyTorch: the call timed):\n";
  for (const auto& r : results) {
    if (!r.skip_reason.empty() || !r.error.empty()) continue;
    out << "  " << r.name << "  " << r.problem << "\n";
    if (info.onednn.wanted) {
      print_peer_detail(out, "oneDNN any  ", r.onednn_any);
      print_peer_detail(out, "oneDNN plain", r.onednn_plain);
    }
    if (info.torch.wanted) print_peer_detail(out, "PyTorch     ", r.torch);
  }
}

void print_warnings(std::ostream& out, const std::vector<LayerResult>& results) {
  std::vector<std::string> lines;
  for (const auto& r : results) {
    if (!r.tdconv) continue;
    if (!r.tdconv->finite) lines.push_back(r.name + ": tdconv's output holds NaN or infinity (marked !)");
    for (const auto& [label, run] : {std::pair{"oneDNN any", &r.onednn_any}, std::pair{"oneDNN plain", &r.onednn_plain},
                                     std::pair{"PyTorch", &r.torch}}) {
      if (run->failed) lines.push_back(r.name + ": " + label + " failed: " + run->reason);
      if (run->mismatch()) {
        lines.push_back(r.name + ": " + label + " disagrees with tdconv: max error " +
                        format("%.3g", *run->max_rel_error) + " of max |y| (tolerance " + format("%g", kTolerance) +
                        "; marked !)");
      }
    }
    std::string busy;
    for (const auto& [label, timing] : {std::pair{"tdconv", &r.tdconv->timing}, std::pair{"oneDNN any", &r.onednn_any.timing},
                                        std::pair{"oneDNN plain", &r.onednn_plain.timing},
                                        std::pair{"PyTorch", &r.torch.timing}}) {
      if (timing->other_load > kBusy) busy += std::string(busy.empty() ? "" : ", ") + label + " " + percent(timing->other_load);
    }
    if (!busy.empty()) {
      lines.push_back(r.name + ": other processes used the CPUs while it was timed (" + busy +
                      " of all CPU time); rerun for clean numbers");
    }
  }
  if (lines.empty()) return;
  out << "\nWarnings:\n";
  for (const auto& l : lines) out << "  " << l << "\n";
}

bool column_wanted(const PeerColumn& c, const RunInfo& info) {
  const std::string key = c.key;
  if (key == "torch") return info.torch.wanted;
  if (key == "best_peer") return info.torch.wanted || info.onednn.wanted;
  return info.onednn.wanted;
}

void print_geomeans(std::ostream& out, const RunInfo& info, const std::vector<LayerResult>& results) {
  if (!info.torch.wanted && !info.onednn.wanted) return;
  for (const char* pass : {"forward", "backward"}) {
    if (std::none_of(results.begin(), results.end(), [&](const LayerResult& r) { return r.pass == pass; })) continue;
    out << "\nGeometric mean of peer_ms / tdconv_ms over the " << pass << " layers (>1: tdconv is faster):\n";
    for (const auto& c : peer_columns()) {
      if (!column_wanted(c, info)) continue;
      const GeoMean g = geomean_ratio(results, c.peer, pass);
      out << "  vs " << c.label << ": "
          << (g.layers ? format("%.3gx", g.value) + " over " + std::to_string(g.layers) + " layers" : "no layers")
          << "\n";
    }
  }
}

ordered_json optional_number(std::optional<double> v) { return v ? ordered_json(*v) : ordered_json(nullptr); }

ordered_json other_load_json(double load) { return load < 0 ? ordered_json(nullptr) : ordered_json(load); }

// The medians and every run of one implementation (the JSON report's per-implementation fields).
void add_timing(ordered_json& j, const Timing& t) {
  j["median_ms"] = t.median_ms;
  j["median_from_full_speed_runs"] = t.from_full_speed_runs;
  j["median_all_runs_ms"] = t.median_all_ms;
  j["times_ms"] = t.times_ms;
  j["full_speed"] = t.full_speed;
  j["other_load"] = other_load_json(t.other_load);
}

ordered_json peer_json(const LayerResult& r, const PeerRun* run) {
  ordered_json j;
  const bool ok = run != nullptr && run->available;
  j["available"] = ok;
  j["median_ms"] = ok ? ordered_json(run->timing.median_ms) : ordered_json(nullptr);
  if (!ok) {
    j["reason"] = run != nullptr ? run->reason : "no variant ran";
    j["failed"] = run != nullptr && run->failed;
    return j;
  }
  j["ratio"] = optional_number(ratio(r, run));
  j["detail"] = run->detail;
  add_timing(j, run->timing);
  j["max_rel_error"] = optional_number(run->max_rel_error);
  j["mismatch"] = run->mismatch();
  return j;
}

ordered_json layer_json(const LayerResult& r, const RunInfo& info) {
  ordered_json j;
  j["name"] = r.name;
  j["pass"] = r.pass;
  j["problem"] = r.problem;
  j["status"] = !r.skip_reason.empty() ? "skipped" : !r.error.empty() ? "error" : "ok";
  if (!r.skip_reason.empty()) j["skip_reason"] = r.skip_reason;
  if (!r.error.empty()) j["error"] = r.error;
  j["gflop"] = r.flops * 1e-9;
  j["valid_tap_fraction"] = r.valid_taps;
  if (!r.tdconv) return j;
  const TdconvRun& t = *r.tdconv;
  const double gflops = r.flops / (t.timing.median_ms * 1e-3) * 1e-9;
  ordered_json td;
  add_timing(td, t.timing);
  td["gflops"] = gflops;
  td["peak_fraction"] = info.peak_for_threads() > 0 ? ordered_json(gflops / info.peak_for_threads()) : nullptr;
  td["implementation"] = t.implementation;
  td["plan_ms"] = t.plan_ms;
  td["pack_ms"] = t.pack_ms;
  td["workspace_bytes"] = t.workspace_bytes;
  td["packed_bytes"] = t.packed_bytes;
  td["output_finite"] = t.finite;
  j["tdconv"] = td;
  for (const auto& c : peer_columns()) j[c.key] = peer_json(r, c.peer(r));
  if (const PeerRun* best = r.onednn_best()) j["onednn_best"]["variant"] = best == &r.onednn_any ? "any" : "plain";
  if (const PeerRun* best = r.best_peer()) {
    j["best_peer"]["peer"] = best == &r.torch ? "torch" : best == &r.onednn_any ? "onednn_any" : "onednn_plain";
  }
  return j;
}

ordered_json peer_status_json(const PeerStatus& s) {
  return {{"wanted", s.wanted}, {"available", s.available}, {"detail", s.detail}};
}

}  // namespace

void print_layer_list(std::ostream& out, const std::vector<Layer>& layers) {
  std::vector<Row> rows;
  for (const auto& l : layers) {
    rows.push_back({l.name, l.pass == Pass::forward ? "forward" : "backward", tdconv::to_string(l.problem),
                    number(nominal_flops(l.problem) * (l.pass == Pass::forward ? 1e-9 : 2e-9)),
                    percent(valid_tap_fraction(l.problem))});
  }
  std::vector<std::size_t> width(5, 0);
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  out << "layer, pass, problem, GFLOP (nominal), valid taps\n";
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < row.size(); ++c) {
      out << (c ? "  " : "") << row[c] << (c + 1 < row.size() ? std::string(width[c] - row[c].size(), ' ') : "");
    }
    out << "\n";
  }
}

void print_header(std::ostream& out, const RunInfo& info) {
  out << "tdconv-bench: " << info.layers_file << "\n"
      << "  threads " << info.threads << ", layout " << info.layout << ", f32, torch weight layout; "
      << "each timing: 1 warm-up, median of >= " << info.rule.min_runs << " runs and >= " << info.rule.min_seconds
      << " s" << (info.speed_gate ? " at full speed (checked before and after each run)" : "")
      << (info.rounds > 1 ? ", pooled over " + std::to_string(info.rounds) + " rounds of the suite" : "") << "\n"
      << "  build: " << info.build << "\n";
  for (const auto& p : info.peaks) {
    out << "  FMA peak (" << p.isa << ", measured): " << number(p.gflops) << " GFLOP/s on " << p.threads
        << (p.threads == 1 ? " thread" : " threads");
    if (p.other_load > kBusy) out << "  WARNING: other processes used " << percent(p.other_load) << " of the CPUs meanwhile";
    out << "\n";
  }
  auto peer = [&](const char* name, const PeerStatus& s) {
    out << "  " << name << ": " << (!s.wanted ? "not requested" : s.available ? s.detail : "unavailable: " + s.detail)
        << "\n";
  };
  peer("oneDNN peer", info.onednn);
  peer("PyTorch peer", info.torch);
}

void print_report(std::ostream& out, const RunInfo& info, const std::vector<LayerResult>& results) {
  std::vector<Row> rows{header_row()};
  for (const auto& r : results) rows.push_back(layer_row(r, info));
  out << "\n";
  print_rows(out, rows);
  out << "(ms: median" << (info.speed_gate ? " of the runs at full speed" : "")
      << "; full speed: tdconv's runs with the cores at >= 80% of the FMA peak before and after, of all its runs (*: "
         "too few for some implementation, so every median is over all runs); %peak: of the measured FMA peak on "
      << info.threads
      << " thread(s); valid taps: share of nominal multiply-adds whose tap lands inside the tensor; vs X: X's ms / "
         "tdconv's ms, >1 means tdconv is faster; workspace: scratch of one forward call at this thread count, packed "
         "weights not counted; packed: packed weights; ! marks a wrong or non-finite output; impl 'backward': "
         "a backward layer's run is both gradients, data and weights, from unpacked weights, and its GFLOP twice "
         "the forward pass's)\n";
  if (info.onednn.wanted || info.torch.wanted) print_details(out, info, results);
  print_warnings(out, results);
  print_geomeans(out, info, results);
}

void write_json(const std::string& path, const RunInfo& info, const std::vector<LayerResult>& results) {
  ordered_json j;
  j["tool"] = "tdconv-bench";
  j["layers_file"] = info.layers_file;
  j["threads"] = info.threads;
  j["layout"] = info.layout;
  j["build"] = info.build;
  j["min_runs"] = info.rule.min_runs;
  j["min_seconds"] = info.rule.min_seconds;
  j["rounds"] = info.rounds;
  j["speed_gate"] = info.speed_gate;
  ordered_json peaks = ordered_json::array();
  for (const auto& p : info.peaks) {
    peaks.push_back(
        {{"isa", p.isa}, {"threads", p.threads}, {"gflops", p.gflops}, {"other_load", other_load_json(p.other_load)}});
  }
  j["fma_peak"] = peaks;
  j["fma_peak_gflops"] = info.peak_for_threads();
  j["peers"] = {{"onednn", peer_status_json(info.onednn)}, {"torch", peer_status_json(info.torch)}};
  j["tolerance"] = kTolerance;
  ordered_json layers = ordered_json::array();
  for (const auto& r : results) layers.push_back(layer_json(r, info));
  j["layers"] = layers;
  // geomean_ratio: the forward layers (as before there were backward ones); geomean_ratio_backward: the others.
  for (const char* pass : {"forward", "backward"}) {
    ordered_json means;
    for (const auto& c : peer_columns()) {
      const GeoMean g = geomean_ratio(results, c.peer, pass);
      means[c.key] = {{"value", g.layers ? ordered_json(g.value) : ordered_json(nullptr)}, {"layers", g.layers}};
    }
    j[std::string(pass) == "forward" ? "geomean_ratio" : "geomean_ratio_backward"] = means;
  }

  std::ofstream file(path);
  file << j.dump(2) << "\n";
  if (!file) throw std::runtime_error(path + ": cannot write the JSON report");
}

}  // namespace bench
