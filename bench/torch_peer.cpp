// Runs bench/torch_peer.py and speaks its line protocol (JSON). The script's path and the Python interpreter are
// fixed at build time (TDCONV_BENCH_TORCH_SCRIPT, TDCONV_BENCH_PYTHON); the `python3` on PATH may lack torch.
#include "torch_peer.hpp"

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "child_process.hpp"

namespace bench {
namespace {

using nlohmann::json;

std::vector<std::string> environment_entries(int threads) {
  return {"MALLOC_MMAP_THRESHOLD_=33554432", "MALLOC_TRIM_THRESHOLD_=17179869184", "OPENBLAS_NUM_THREADS=1",
          "OMP_NUM_THREADS=" + std::to_string(threads)};
}

// `env ENTRIES... python script ARGS...`, as an argument vector.
std::vector<std::string> script_command(int threads, const std::vector<std::string>& args) {
  std::vector<std::string> argv{"env"};
  for (const std::string& e : environment_entries(threads)) argv.push_back(e);
  argv.insert(argv.end(), {TDCONV_BENCH_PYTHON, TDCONV_BENCH_TORCH_SCRIPT});
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::vector<std::int64_t> dims(const tdconv::Dims& d) { return {d.begin(), d.end()}; }

json layer_request(const std::string& name, const tdconv::Problem& p, Pass pass, const std::string& dir) {
  json request = {{"name", name},
          {"op", p.op == tdconv::Op::conv ? "conv" : "conv_transpose"},
          {"spatial_dims", p.spatial_dims},
          {"batch", p.batch},
          {"in_channels", p.in_channels},
          {"out_channels", p.out_channels},
          {"groups", p.groups},
          {"input", dims(p.input)},
          {"kernel", dims(p.kernel)},
          {"stride", dims(p.stride)},
          {"dilation", dims(p.dilation)},
          {"pad_begin", dims(p.pad_begin)},
          {"pad_end", dims(p.pad_end)},
          {"output_padding", dims(p.output_padding)},
          {"output", dims(tdconv::output_size(p))},
          {"src_file", dir + "/src.f32"},
          {"weights_file", dir + "/weights.f32"},
          {"dst_file", dir + "/dst.f32"}};
  if (pass == Pass::backward) {
    request["pass"] = "backward";
    request["diff_dst_file"] = dir + "/diff_dst.f32";
  }
  return request;
}

json ask_json(TorchPeer& peer, const json& request) { return json::parse(peer.ask(request.dump())); }

}  // namespace

std::string torch_environment(int threads) {
  std::string text;
  for (const std::string& e : environment_entries(threads)) text += (text.empty() ? "" : " ") + e;
  return text;
}

PeerStatus torch_status() {
  PeerStatus s;
  try {
    ChildProcess probe(script_command(1, {"--probe"}));  // writes one line and ends
    const json answer = json::parse(probe.read_line());
    s.available = answer.value("available", false);
    s.detail = s.available ? "PyTorch " + answer.value("torch", std::string("?")) + " (" +
                                 answer.value("python", std::string("?")) + ", mkldnn " +
                                 (answer.value("mkldnn", false) ? "on" : "off") +
                                 ", BLAS: " + answer.value("blas", std::string("?")) + ")"
                           : answer.value("reason", std::string("torch does not import"));
  } catch (const std::exception& e) {
    s.detail = std::string("cannot run ") + TDCONV_BENCH_PYTHON + " " + TDCONV_BENCH_TORCH_SCRIPT + ": " + e.what();
  }
  return s;
}

TorchPeer::TorchPeer(int threads)
    : process_(std::make_unique<ChildProcess>(
          script_command(threads, {"--serve", "--threads", std::to_string(threads)}))) {}

TorchPeer::~TorchPeer() = default;

bool TorchPeer::alive() const { return process_->alive(); }

int TorchPeer::pid() const { return process_->pid(); }

std::string TorchPeer::ask(const std::string& request) { return process_->ask(request); }

TorchContender::TorchContender(TorchPeer& peer, const std::string& name, const tdconv::Problem& p, Pass pass,
                               const Buffer& src, const Buffer& weights, const Buffer& diff_dst,
                               std::string scratch_dir)
    : peer_(peer), scratch_dir_(std::move(scratch_dir)) {
  try {
    write_raw(scratch_dir_ + "/src.f32", src);
    write_raw(scratch_dir_ + "/weights.f32", weights);
    if (pass == Pass::backward) write_raw(scratch_dir_ + "/diff_dst.f32", diff_dst);
    const json answer = ask_json(peer_, {{"cmd", "setup"},
                                         {"layout", std::string(tdconv::to_string(p.layout))},
                                         {"layer", layer_request(name, p, pass, scratch_dir_)}});
    call_ = answer.value("call", std::string());
    error_ = answer.value("error", std::string());
    ready_ = error_.empty();
  } catch (const std::exception& e) {
    error_ = e.what();
  }
}

TorchContender::~TorchContender() {
  for (const char* f : {"/src.f32", "/weights.f32", "/diff_dst.f32", "/dst.f32"}) {
    std::error_code ignored;  // a file the run never wrote is not an error
    std::filesystem::remove(scratch_dir_ + f, ignored);
  }
}

Contender TorchContender::contender() {
  return {[this] {
            const json answer = ask_json(peer_, {{"cmd", "run"}});
            if (answer.contains("error")) throw std::runtime_error(answer.at("error").get<std::string>());
            return answer.at("ms").get<double>() * 1e-3;
          },
          peer_.pid()};
}

PeerRun TorchContender::result(const Timing& timing, const Buffer& tdconv_dst,
                               const std::vector<std::int64_t>& parts) const {
  PeerRun run;
  run.detail = call_;
  const std::string error = ready_ ? timing.error : error_;
  if (!error.empty()) {
    run.reason = "PyTorch: " + error;
    run.failed = true;
    return run;
  }
  run.timing = timing;
  run.available = true;
  try {
    Buffer out(tdconv_dst.size());
    read_raw(scratch_dir_ + "/dst.f32", out);
    run.max_rel_error = max_relative_error(out.data(), tdconv_dst.data(), out.size(), parts);
  } catch (const std::exception& e) {
    run.reason = std::string("PyTorch's output: ") + e.what();
    run.failed = true;
  }
  return run;
}

}  // namespace bench
