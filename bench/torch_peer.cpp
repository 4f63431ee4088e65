// Runs bench/torch_peer.py and reads its JSON answer. The script's path and the Python interpreter are fixed at
// build time (TDCONV_BENCH_TORCH_SCRIPT, TDCONV_BENCH_PYTHON); the `python3` on PATH may lack torch.
#include "torch_peer.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "timing.hpp"

namespace bench {
namespace {

using nlohmann::json;

std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string command(const std::string& args, int threads) {
  return "env " + torch_environment(threads) + " " + quoted(TDCONV_BENCH_PYTHON) + " " +
         quoted(TDCONV_BENCH_TORCH_SCRIPT) + " " + args;
}

// Runs the script; its stdout is returned, its stderr goes to ours. Throws when it fails.
std::string run_script(const std::string& args, int threads) {
  FILE* pipe = popen(command(args, threads).c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot start " + std::string(TDCONV_BENCH_PYTHON));
  std::string out;
  char chunk[4096];
  std::size_t n = 0;
  while ((n = std::fread(chunk, 1, sizeof chunk, pipe)) > 0) out.append(chunk, n);
  const int status = pclose(pipe);
  if (status != 0) {
    throw std::runtime_error(std::string(TDCONV_BENCH_PYTHON) + " " + TDCONV_BENCH_TORCH_SCRIPT +
                             " failed (status " + std::to_string(status) + ")");
  }
  return out;
}

std::vector<std::int64_t> dims(const tdconv::Dims& d) { return {d.begin(), d.end()}; }

json layer_request(const std::string& name, const tdconv::Problem& p, const std::string& dir, bool check) {
  json layer = {{"name", name},
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
                {"weights_file", dir + "/weights.f32"}};
  if (check) layer["dst_file"] = dir + "/dst.f32";
  return layer;
}

}  // namespace

std::string torch_environment(int threads) {
  return "MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=17179869184 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=" +
         std::to_string(threads);
}

PeerStatus torch_status() {
  PeerStatus s;
  try {
    const json answer = json::parse(run_script("--probe", 1));
    s.available = answer.value("available", false);
    s.detail = s.available ? "PyTorch " + answer.value("torch", std::string("?")) + " (" +
                                 answer.value("python", std::string("?")) + ", mkldnn " +
                                 (answer.value("mkldnn", false) ? "on" : "off") +
                                 ", BLAS: " + answer.value("blas", std::string("?")) + ")"
                           : answer.value("reason", std::string("torch does not import"));
  } catch (const std::exception& e) {
    s.detail = e.what();
  }
  return s;
}

PeerRun run_torch(const std::string& name, const tdconv::Problem& p, const Buffer& src, const Buffer& weights,
                  const Buffer* tdconv_dst, int threads, const TimingRule& rule, const std::string& scratch_dir) {
  PeerRun run;
  try {
    write_raw(scratch_dir + "/src.f32", src);
    write_raw(scratch_dir + "/weights.f32", weights);
    const json request = {{"threads", threads},
                          {"runs", rule.min_runs},
                          {"min_seconds", rule.min_seconds},
                          {"layout", std::string(tdconv::to_string(p.layout))},
                          {"layers", json::array({layer_request(name, p, scratch_dir, tdconv_dst != nullptr)})}};
    const std::string request_file = scratch_dir + "/request.json";
    std::ofstream(request_file) << request.dump();
    const LoadMeter load;  // over the whole subprocess: its timing happens inside, out of our sight
    const json answer = json::parse(run_script("--request " + quoted(request_file), threads));
    run.timing.other_load = load.other_load();
    const json& result = answer.at("results").at(0);
    run.detail = result.value("call", std::string());
    if (result.contains("error")) {
      run.reason = "PyTorch: " + result.at("error").get<std::string>();
      run.failed = true;
      return run;
    }
    run.timing.times_ms = result.at("times_ms").get<std::vector<double>>();
    run.timing.median_ms = result.at("median_ms").get<double>();
    run.available = true;
    if (tdconv_dst != nullptr) {
      Buffer out(tdconv_dst->size());
      read_raw(scratch_dir + "/dst.f32", out);
      run.max_rel_error = max_relative_error(out.data(), tdconv_dst->data(), out.size());
    }
  } catch (const std::exception& e) {
    run = PeerRun{};
    run.reason = e.what();
    run.failed = true;
  }
  for (const char* f : {"/src.f32", "/weights.f32", "/dst.f32", "/request.json"}) {
    std::error_code ignored;  // a file the run never wrote is not an error
    std::filesystem::remove(scratch_dir + f, ignored);
  }
  return run;
}

}  // namespace bench
