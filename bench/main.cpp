// tdconv-bench: times tdconv's forward pass on the layers of bench/layers.json (or --layers FILE) and compares it
// with oneDNN and PyTorch on the same data. Exit status: 0 done; 2 bad usage or a bad suite file (the first line on
// stderr says which option or which layer and field); 3 with --fail-on-mismatch when a peer's output disagreed with
// tdconv's or an installed peer failed on a layer; 1 an internal error, or tdconv failing on a layer or leaving
// non-finite output.
#include <algorithm>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "geometry.hpp"
#include "layers.hpp"
#include "onednn_peer.hpp"
#include "options.hpp"
#include "peak.hpp"
#include "report.hpp"
#include "results.hpp"
#include "tdconv/error.hpp"
#include "tdconv_run.hpp"
#include "tensors.hpp"
#include "timing.hpp"
#include "torch_peer.hpp"

#if defined(TDCONV_BENCH_OPENMP)
#include <omp.h>
#endif

namespace bench {
namespace {

constexpr double kPeakSeconds = 0.2;

// Progress goes to stderr only when a person watches it: logs and CI stay clean.
class Progress {
 public:
  Progress() : on_(isatty(STDERR_FILENO) != 0) {}
  void say(const std::string& text) const {
    if (on_) std::cerr << "tdconv-bench: " << text << std::endl;
  }

 private:
  bool on_;
};

// tdconv and oneDNN use OpenMP in this process; PyTorch reads OMP_NUM_THREADS in its own (set on its command line).
void set_threads(int threads) {
#if defined(TDCONV_BENCH_OPENMP)
  omp_set_num_threads(threads);
#endif
  setenv("OMP_NUM_THREADS", std::to_string(threads).c_str(), 1);
}

std::string build_description() {
  std::string text = TDCONV_BENCH_BUILD_TYPE;
#if defined(TDCONV_BENCH_OPENMP)
  text += ", OpenMP";
#else
  text += ", no OpenMP (oneDNN threads follow OMP_NUM_THREADS of the environment)";
#endif
#if !defined(__OPTIMIZE__) || defined(__SANITIZE_ADDRESS__)
  text += "; WARNING: unoptimised or sanitized build, the times mean nothing";
#endif
  return text;
}

RunInfo describe_run(const Options& o, const Progress& progress) {
  RunInfo info;
  info.threads = o.threads;
  info.layout = std::string(tdconv::to_string(o.layout));
  info.layers_file = o.layers_file;
  info.build = build_description();
  info.rule = {o.min_runs, o.min_seconds, nullptr};
  info.rounds = o.rounds;
  progress.say("measuring the FMA peak");
  info.peaks.push_back(measure_fma_peak(1, kPeakSeconds));
  if (o.threads > 1) info.peaks.push_back(measure_fma_peak(o.threads, kPeakSeconds));
  info.speed_gate = !o.all_runs;
  if (info.speed_gate) {
    auto gate = std::make_shared<SpeedGate>(o.threads, info.peaks.back().gflops / o.threads);
    info.rule.full_speed = [gate] { return (*gate)(); };
  }
  info.onednn.wanted = wants_onednn(o.peers);
  info.torch.wanted = wants_torch(o.peers);
  info.onednn.detail = info.torch.detail = "not requested (--peers)";
  if (info.onednn.wanted) {
    const PeerStatus s = onednn_status();
    info.onednn.available = s.available;
    info.onednn.detail = s.detail;
  }
  if (info.torch.wanted) {
    progress.say("looking for PyTorch");
    const PeerStatus s = torch_status();
    info.torch.available = s.available;
    info.torch.detail = s.detail + (s.available ? "; run with " + torch_environment(o.threads) : "");
  }
  return info;
}

// At 1 thread, this process and the PyTorch helper (started later, it inherits the mask) run on one CPU: the speed
// checks around a run (SpeedGate) then look at the core the run used, whichever process it was in.
void pin_to_one_cpu() {
  const int cpu = sched_getcpu();
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof(set), &set);
}

// The peak again after a round of the suite, keeping the better: the machine's speed drifts over seconds, and one
// start-of-run measurement read 108 GFLOP/s against 170 in the runs before and after it (every %peak of that run
// was 1.6x too high). %peak is against what the machine can do.
void remeasure_peaks(RunInfo& info) {
  for (Peak& peak : info.peaks) {
    const Peak again = measure_fma_peak(peak.threads, kPeakSeconds);
    if (again.gflops > peak.gflops) peak = again;
  }
}

void unavailable(PeerRun& run, const std::string& why) { run.reason = why; }

// The PyTorch helper process, started when first needed and again after it has died.
class TorchPeerSlot {
 public:
  explicit TorchPeerSlot(int threads) : threads_(threads) {}
  TorchPeer& get() {
    if (!peer_ || !peer_->alive()) {
      peer_.reset();  // the dead one is reaped first
      peer_.emplace(threads_);
    }
    return *peer_;
  }

 private:
  int threads_;
  std::optional<TorchPeer> peer_;
};

// Times tdconv, oneDNN's two variants and PyTorch on one layer, in turns (time_in_turns): timed one after the
// other, their ratios would carry the machine's drift.
LayerResult measure_layer(const Layer& layer, const RunInfo& info, const std::string& scratch, TorchPeerSlot& torch,
                          const Progress& progress) {
  LayerResult r;
  r.name = layer.name;
  r.problem = tdconv::to_string(layer.problem);
  r.pass = layer.pass == Pass::forward ? "forward" : "backward";
  const tdconv::Problem& p = layer.problem;
  // The backward pass: both gradients, each as many multiply-adds as the forward pass.
  r.flops = nominal_flops(p) * (layer.pass == Pass::backward ? 2 : 1);
  r.valid_taps = valid_tap_fraction(p);
  const Buffer src = random_buffer(tdconv::element_count(tdconv::src_shape(p), "src"), 1);
  const Buffer weights = random_buffer(tdconv::element_count(tdconv::weights_shape(p), "weights"), 2);
  const Buffer diff_dst = layer.pass == Pass::backward
                              ? random_buffer(tdconv::element_count(tdconv::dst_shape(p), "dst"), 3)
                              : Buffer();

  progress.say(layer.name + ": setting up");
  std::optional<TdconvContender> td;
  try {
    td.emplace(p, layer.pass, src, weights, diff_dst);
  } catch (const std::exception& e) {
    r.error = e.what();
    return r;
  }
  std::vector<Contender> contenders{in_process([&] { td->run(); })};
  std::optional<OneDnnVariant> any, plain;
  if (info.onednn.wanted && info.onednn.available) {
    any.emplace(p, layer.pass, true, src, weights, diff_dst);
    plain.emplace(p, layer.pass, false, src, weights, diff_dst);
    for (OneDnnVariant* v : {&*any, &*plain}) {
      if (v->ready()) contenders.push_back(in_process([v] { v->run(); }));
    }
  } else {
    unavailable(r.onednn_any, info.onednn.wanted ? "oneDNN unavailable" : "not requested");
    unavailable(r.onednn_plain, r.onednn_any.reason);
  }
  std::optional<TorchContender> pytorch;
  if (info.torch.wanted && info.torch.available) {
    try {
      pytorch.emplace(torch.get(), layer.name, p, layer.pass, src, weights, diff_dst, scratch);
      if (pytorch->ready()) contenders.push_back(pytorch->contender());
    } catch (const std::exception& e) {  // the helper could not be started
      r.torch.reason = std::string("PyTorch: ") + e.what();
      r.torch.failed = true;
    }
  } else {
    unavailable(r.torch, info.torch.wanted ? "PyTorch unavailable" : "not requested");
  }

  progress.say(layer.name + ": timing");
  const std::vector<Timing> timings = time_in_turns(contenders, info.rule);
  if (!timings[0].error.empty()) {
    r.error = timings[0].error;
    return r;
  }
  r.tdconv = td->result(timings[0]);
  std::size_t next = 1;
  for (auto [variant, into] : {std::pair{&any, &r.onednn_any}, std::pair{&plain, &r.onednn_plain}}) {
    if (!variant->has_value()) continue;
    const Timing timing = (*variant)->ready() ? timings[next++] : Timing{};
    *into = (*variant)->result(timing, &td->dst(), td->parts());
  }
  if (pytorch) r.torch = pytorch->result(pytorch->ready() ? timings[next++] : Timing{}, td->dst(), td->parts());
  return r;
}

// Adds a later round's runs of one layer to the first round's (same implementations, same output checks).
void pool_timing(Timing& into, const Timing& from) {
  into.times_ms.insert(into.times_ms.end(), from.times_ms.begin(), from.times_ms.end());
  into.full_speed.insert(into.full_speed.end(), from.full_speed.begin(), from.full_speed.end());
  into.other_load = std::max(into.other_load, from.other_load);
}

void pool_peer(PeerRun& into, const PeerRun& from) {
  if (!into.available || !from.available) return;
  pool_timing(into.timing, from.timing);
  if (from.max_rel_error && (!into.max_rel_error || *from.max_rel_error > *into.max_rel_error)) {
    into.max_rel_error = from.max_rel_error;
  }
  into.failed = into.failed || from.failed;
}

// Pools a later round's runs of one layer into the first round's and sets the medians of all its implementations
// together (summarize_together).
void pool(LayerResult& into, const LayerResult& from, int min_runs) {
  if (!into.error.empty() || !into.skip_reason.empty()) return;
  if (!from.error.empty()) {
    into.error = from.error;
    return;
  }
  if (into.tdconv && from.tdconv) {
    pool_timing(into.tdconv->timing, from.tdconv->timing);
    into.tdconv->finite = into.tdconv->finite && from.tdconv->finite;
  }
  pool_peer(into.onednn_any, from.onednn_any);
  pool_peer(into.onednn_plain, from.onednn_plain);
  pool_peer(into.torch, from.torch);
  if (!into.tdconv) return;
  std::vector<Timing*> together{&into.tdconv->timing};
  for (PeerRun* peer : {&into.onednn_any, &into.onednn_plain, &into.torch}) {
    if (peer->available) together.push_back(&peer->timing);
  }
  summarize_together(together, min_runs);
}

std::vector<Layer> selected_layers(const Options& o) {
  std::vector<Layer> layers;
  for (auto& layer : load_layers(o.layers_file)) {
    if (layer.name.find(o.filter) == std::string::npos) continue;
    layer.problem.layout = o.layout;
    layers.push_back(std::move(layer));
  }
  if (layers.empty()) throw UsageError("--filter: no layer of " + o.layers_file + " has '" + o.filter + "' in its name");
  return layers;
}

std::string make_scratch_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/tdconv-bench.XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("cannot create a scratch folder " + pattern);
  return pattern;
}

int run(const Options& o) {
  const std::vector<Layer> layers = selected_layers(o);
  if (o.list) {
    print_layer_list(std::cout, layers);
    return 0;
  }
  set_threads(o.threads);
  if (o.threads == 1) pin_to_one_cpu();
  const Progress progress;
  RunInfo info = describe_run(o, progress);
  print_header(std::cout, info);
  std::cout.flush();

  const std::string scratch = make_scratch_dir();
  TorchPeerSlot torch(o.threads);
  std::vector<LayerResult> results;
  for (int round = 0; round < o.rounds; ++round) {
    for (std::size_t i = 0; i < layers.size(); ++i) {
      progress.say((o.rounds > 1 ? "round " + std::to_string(round + 1) + "/" + std::to_string(o.rounds) + " " : "") +
                   "[" + std::to_string(i + 1) + "/" + std::to_string(layers.size()) + "] " + layers[i].name);
      LayerResult r = measure_layer(layers[i], info, scratch, torch, progress);
      if (round == 0) {
        results.push_back(std::move(r));
      } else {
        pool(results[i], r, info.rule.min_runs);
      }
    }
    progress.say("measuring the FMA peak again");
    remeasure_peaks(info);
  }
  std::filesystem::remove_all(scratch);

  print_report(std::cout, info, results);
  if (!o.json_file.empty()) write_json(o.json_file, info, results);

  bool failed = false;
  bool mismatch = false;
  for (const auto& r : results) {
    failed = failed || !r.error.empty() || (r.tdconv && !r.tdconv->finite);
    for (const PeerRun* peer : {&r.onednn_any, &r.onednn_plain, &r.torch}) {
      mismatch = mismatch || peer->mismatch() || peer->failed;
    }
  }
  if (failed) return 1;
  return o.fail_on_mismatch && mismatch ? 3 : 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  try {
    const bench::Options options = bench::parse_options(argc, argv);
    if (options.help) {
      std::cout << bench::usage();
      return 0;
    }
    return bench::run(options);
  } catch (const bench::UsageError& e) {
    std::cerr << "tdconv-bench: " << e.what() << "\n" << "(tdconv-bench --help for usage)\n";
    return 2;
  } catch (const bench::SuiteError& e) {
    std::cerr << "tdconv-bench: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "tdconv-bench: internal error: " << e.what() << "\n";
    return 1;
  }
}
