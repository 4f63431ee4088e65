// libFuzzer target: the whole command line (argument parsing, validation, shape arithmetic, explain, and conv /
// conv-transpose on small .npy files) on arbitrary argument vectors.
//
// The input is split into arguments at every '\n' or '\0' (one trailing separator is ignored, so seed files can be
// plain text, one argument per line). Contract under test (docs/cli-contract.md, tools/tdconv/cli.hpp): run_cli
// returns 0 or 2; 1 means an internal error, which bad input must never cause, so it is reported as a bug, as is any
// exception escaping run_cli. Further checks:
//   - exit 2 writes a message on stderr starting "tdconv " and creates or changes no file;
//   - exit 0 from conv/conv-transpose leaves at most one new or changed file (the output), a valid .npy, and no
//     temporary file; any other command changes no file;
//   - `shape ... --json` prints valid JSON whose canonical problem string round-trips through parse_problem.
//
// Any first argument is accepted (conv, conv-transpose, shape, explain, help, --help, unknown words) except `demo`,
// which is slow and parses nothing. Safety: each command runs in a fresh temporary directory (under /dev/shm when it
// exists) holding a few tiny .npy files; arguments containing '/' or ".." are refused, so nothing outside it is
// touched; conv/conv-transpose are capped at --max-memory 8M (appended when absent, lowered when larger) so that no
// input asks for a huge computation. After each input the directory is restored to its initial state.
#include <dirent.h>
#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "io/npy.hpp"
#include "scratch_dir.hpp"
#include "tdconv/error.hpp"
#include "tdconv/problem.hpp"

namespace {

using Args = std::vector<std::string>;

// 8 MiB: about 700k float32 outputs. Under the fuzzing build (sanitizers and comparison tracing, 30-300x slower
// than a release build) the 64 MiB allowed before let an input run past libFuzzer's 10 s limit: a float64
// convolution with padding 500 on the reference (3M outputs) took 9.5 s, a transposed one at stride 500000 (4M
// outputs, 500000 phases) 23 s, where a release build takes 0.15 and 0.4 s.
constexpr std::int64_t kMemoryCap = std::int64_t{8} << 20;
const char* const kMemoryCapText = "8M";

std::string g_dir;
std::string g_home;  // the working directory libFuzzer was started in (its relative paths are relative to it)
// CLI_FUZZ_SHOW=1: print every command with its exit status and stderr (to see what a corpus exercises).
bool g_show = false;
// The files every input starts with: name -> bytes.
std::map<std::string, std::vector<std::byte>> g_files;

std::string quoted(const Args& args) {
  std::string s;
  for (const auto& a : args) {
    s += " '";
    for (const char c : a) {
      const auto byte = static_cast<unsigned char>(c);
      if (byte >= 0x20 && byte < 0x7f && c != '\'') {
        s += c;
      } else {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02x", byte);
        s += hex;
      }
    }
    s += "'";
  }
  return s;
}

[[noreturn]] void fail(const Args& args, const std::string& what, const std::string& detail = "") {
  if (::chdir(g_home.c_str()) != 0) std::fprintf(stderr, "cli_fuzz: cannot return to %s\n", g_home.c_str());
  std::fprintf(stderr, "cli_fuzz: BUG: %s\n  command: tdconv%s\n", what.c_str(), quoted(args).c_str());
  if (!detail.empty()) std::fprintf(stderr, "  detail: %s\n", detail.c_str());
  std::abort();
}

template <class T>
std::vector<std::byte> npy(tdconv::DType dtype, std::vector<std::int64_t> shape) {
  std::int64_t n = 1;
  for (const auto d : shape) n *= d;
  std::vector<T> values(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<T>(static_cast<int>(i % 7) - 3) / 2;
  return tdconv::io::encode_npy(dtype, shape, values.data());
}

std::vector<std::byte> read_file(const std::string& name, bool& exists) {
  std::vector<std::byte> bytes;
  std::FILE* f = std::fopen(name.c_str(), "rb");
  exists = f != nullptr;
  if (f == nullptr) return bytes;
  char buffer[4096];
  std::size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, f)) > 0) {
    const auto* b = reinterpret_cast<const std::byte*>(buffer);
    bytes.insert(bytes.end(), b, b + got);
  }
  std::fclose(f);
  return bytes;
}

void write_file(const std::string& name, const std::vector<std::byte>& bytes) {
  std::FILE* f = std::fopen(name.c_str(), "wb");
  if (f == nullptr || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || std::fclose(f) != 0) {
    std::fprintf(stderr, "cli_fuzz: cannot write %s in %s\n", name.c_str(), g_dir.c_str());
    std::abort();
  }
}

std::vector<std::string> directory_entries() {
  std::vector<std::string> names;
  DIR* d = ::opendir(".");
  if (d == nullptr) std::abort();
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  return names;
}

// Runs in the temporary directory for its lifetime, then returns to where libFuzzer was started.
class InDir {
 public:
  InDir() { change(g_dir); }
  ~InDir() { change(g_home); }
  InDir(const InDir&) = delete;
  InDir& operator=(const InDir&) = delete;

 private:
  static void change(const std::string& dir) {
    if (::chdir(dir.c_str()) != 0) {
      std::fprintf(stderr, "cli_fuzz: cannot enter %s\n", dir.c_str());
      std::abort();
    }
  }
};

void remove_dir() {
  if (!g_dir.empty()) tdconv_fuzz::remove_tree(g_dir);
}

// Mirrors the command's --max-memory parsing: INT with an optional K/M/G/T suffix. nullopt when it would be refused.
std::optional<std::int64_t> parse_bytes(std::string text) {
  int shift = 0;
  if (!text.empty()) {
    const std::string suffixes = "KMGT";
    const auto at = suffixes.find(static_cast<char>(std::toupper(static_cast<unsigned char>(text.back()))));
    if (at != std::string::npos) {
      shift = 10 * static_cast<int>(at + 1);
      text.pop_back();
    }
  }
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || n < 1) return std::nullopt;
  if (n > (std::numeric_limits<std::int64_t>::max() >> shift)) return std::numeric_limits<std::int64_t>::max();
  return n << shift;
}

// conv / conv-transpose: make sure no input can ask for more than kMemoryCap.
void cap_memory(Args& all) {
  bool present = false;
  const std::string flag = "--max-memory";
  for (std::size_t i = 1; i < all.size(); ++i) {
    std::string* value = nullptr;
    if (all[i] == flag && i + 1 < all.size() && all[i + 1].rfind("--", 0) != 0) {
      value = &all[i + 1];
    } else if (all[i].rfind(flag + "=", 0) == 0) {
      std::string v = all[i].substr(flag.size() + 1);
      if (const auto n = parse_bytes(v); n && *n > kMemoryCap) all[i] = flag + "=" + kMemoryCapText;
      present = true;
      continue;
    }
    if (all[i] == flag) present = true;
    if (value != nullptr) {
      if (const auto n = parse_bytes(*value); n && *n > kMemoryCap) *value = kMemoryCapText;
    }
  }
  if (!present) {
    all.push_back(flag);
    all.push_back(kMemoryCapText);
  }
}

class Capture {
 public:
  Capture() : old_out_(std::cout.rdbuf(out_.rdbuf())), old_err_(std::cerr.rdbuf(err_.rdbuf())) {}
  ~Capture() {
    std::cout.rdbuf(old_out_);
    std::cerr.rdbuf(old_err_);
  }
  std::string out() const { return out_.str(); }
  std::string err() const { return err_.str(); }

 private:
  std::ostringstream out_, err_;
  std::streambuf* old_out_;
  std::streambuf* old_err_;
};

void check_json(const Args& all, const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail(all, "shape --json printed invalid JSON", e.what());
  }
  try {
    const std::string problem = j.at("problem").get<std::string>();
    const tdconv::Problem p = tdconv::parse_problem(problem);
    if (tdconv::to_string(p) != problem) fail(all, "the canonical problem string does not round-trip", problem);
    const tdconv::Dims out = tdconv::output_size(p);
    const auto printed = j.at("output").get<std::vector<std::int64_t>>();
    if (printed != std::vector<std::int64_t>(out.begin(), out.begin() + p.spatial_dims)) {
      fail(all, "shape --json's output differs from output_size(problem)", problem);
    }
    if (j.at("dst_shape").get<std::vector<std::int64_t>>() != tdconv::dst_shape(p)) {
      fail(all, "shape --json's dst_shape differs from dst_shape(problem)", problem);
    }
  } catch (const tdconv::Error& e) {
    fail(all, "shape --json's problem string is refused by the library", e.what());
  } catch (const nlohmann::json::exception& e) {
    fail(all, "shape --json lacks an expected field", e.what());
  }
}

// Checks what the run left in the directory, then restores the initial files.
void check_and_restore(const Args& all, int status) {
  const bool operation = all[0] == "conv" || all[0] == "conv-transpose";
  std::vector<std::string> changed;
  for (const auto& name : directory_entries()) {
    const auto it = g_files.find(name);
    bool exists = false;
    if (it != g_files.end() && read_file(name, exists) == it->second) continue;
    changed.push_back(name);
    if (status == 0 && operation && name.find(".tmp.") == std::string::npos) {
      try {
        tdconv::io::read_npy(name);
      } catch (const tdconv::Error& e) {
        fail(all, "conv wrote an output that read_npy refuses", e.what());
      }
    }
    if (it == g_files.end()) ::unlink(name.c_str());
  }
  for (const auto& [name, bytes] : g_files) {
    bool exists = false;
    if (read_file(name, exists) != bytes || !exists) {
      if (!exists) changed.push_back(name + " (removed)");
      write_file(name, bytes);
    }
  }
  std::string list;
  for (const auto& name : changed) list += " " + name;
  if (status == 2 && !changed.empty()) fail(all, "exit status 2 but files were created or changed:" + list);
  if (status == 0 && changed.size() > (operation ? 1u : 0u)) fail(all, "unexpected files created or changed:" + list);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char* home = ::getcwd(nullptr, 0);
  if (home == nullptr) {
    std::fprintf(stderr, "cli_fuzz: cannot get the working directory\n");
    std::abort();
  }
  g_home = home;
  std::free(home);
  g_dir = tdconv_fuzz::make_scratch_dir("tdconv_cli_fuzz");
  std::atexit(remove_dir);
  ::unsetenv("TDCONV_VERBOSE");
  g_show = std::getenv("CLI_FUZZ_SHOW") != nullptr && *std::getenv("CLI_FUZZ_SHOW") != '\0';
  using tdconv::DType;
  g_files["x.npy"] = npy<float>(DType::f32, {1, 2, 5, 5});   // (N, C, H, W)
  g_files["w.npy"] = npy<float>(DType::f32, {3, 2, 3, 3});   // conv (C_out, C_in, kh, kw); groups 2 for convT
  g_files["b.npy"] = npy<float>(DType::f32, {3});
  g_files["t.npy"] = npy<float>(DType::f32, {2, 3, 2, 2});   // convT (C_in, C_out/g, kh, kw)
  g_files["l.npy"] = npy<float>(DType::f32, {2, 4, 4, 2});   // channels_last (N, H, W, C)
  g_files["f.npy"] = npy<float>(DType::f32, {3, 3, 2, 4});   // tf layout conv (kh, kw, C_in, C_out)
  g_files["k.npy"] = npy<float>(DType::f32, {3, 3, 4, 2});   // tf layout convT (kh, kw, C_out, C_in)
  g_files["x1.npy"] = npy<float>(DType::f32, {1, 4, 9});     // 1D
  g_files["w1.npy"] = npy<float>(DType::f32, {4, 1, 3});     // depthwise 1D (groups 4)
  g_files["x3.npy"] = npy<float>(DType::f32, {1, 1, 3, 3, 3});  // 3D
  g_files["w3.npy"] = npy<float>(DType::f32, {1, 1, 2, 2, 2});
  g_files["d.npy"] = npy<double>(DType::f64, {1, 2, 5, 5});  // float64
  g_files["e.npy"] = npy<double>(DType::f64, {3, 2, 3, 3});
  g_files["z.npy"] = npy<float>(DType::f32, {0, 2, 5, 5});   // empty batch
  const InDir in_dir;
  for (const auto& [name, bytes] : g_files) write_file(name, bytes);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Args all;
  std::string current;
  for (std::size_t i = 0; i < size; ++i) {
    const char c = static_cast<char>(data[i]);
    if (c == '\n' || c == '\0') {
      all.push_back(current);
      current.clear();
    } else {
      current += c;
    }
  }
  if (size == 0 || (data[size - 1] != '\n' && data[size - 1] != '\0')) all.push_back(current);
  if (all.empty() || all[0] == "demo") return 0;
  for (const auto& a : all) {
    if (a.find('/') != std::string::npos || a.find("..") != std::string::npos) return 0;
  }
  if (all[0] == "conv" || all[0] == "conv-transpose") cap_memory(all);

  const InDir in_dir;
  int status = -1;
  std::string out, err;
  {
    Capture capture;
    status = tdconv::cli::run_cli(all);  // an exception escaping here is a bug: libFuzzer reports the abort
    out = capture.out();
    err = capture.err();
  }
  if (g_show) {
    std::fprintf(stderr, "cli_fuzz: tdconv%s -> %d%s%s", quoted(all).c_str(), status, err.empty() ? "\n" : ": ",
                 err.c_str());
  }
  if (status == 1) fail(all, "exit status 1 (internal error)", err);
  if (status != 0 && status != 2) fail(all, "exit status " + std::to_string(status), err);
  if (status == 2 && err.rfind("tdconv ", 0) != 0) {
    fail(all, "exit status 2 without a message on stderr starting 'tdconv '", err);
  }
  bool help = false, json = false;
  for (std::size_t i = 1; i < all.size(); ++i) {
    help = help || all[i] == "--help" || all[i] == "-h";
    json = json || all[i] == "--json";
  }
  if (status == 0 && all[0] == "shape" && json && !help) check_json(all, out);
  check_and_restore(all, status);
  return 0;
}
