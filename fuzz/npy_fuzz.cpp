// libFuzzer target: the .npy reader on arbitrary bytes.
//
// Contract under test (src/io/npy.hpp): parse_npy treats every file as hostile, so any bytes either parse or yield a
// tdconv::Error; any other exception, a crash, a sanitizer report or a huge allocation is a bug. When the bytes
// parse, encode_npy must write them back so that they parse to the same array, and the writer's output must be
// stable (encoding the re-parsed array gives the same bytes). read_npy on the same bytes stored in a file must agree
// with parse_npy exactly: the same array, or an error with the same message.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "io/npy.hpp"
#include "scratch_dir.hpp"
#include "tdconv/error.hpp"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "npy_fuzz: BUG: %s\n", what);
  std::abort();
}

struct Outcome {
  bool ok = false;
  tdconv::io::NpyArray array;
  std::string error;
};

bool same_array(const tdconv::io::NpyArray& a, const tdconv::io::NpyArray& b) {
  return a.dtype == b.dtype && a.shape == b.shape && a.data == b.data;
}

void check_consistent(const tdconv::io::NpyArray& a) {
  std::uint64_t elements = 1;
  for (const std::int64_t d : a.shape) {
    if (d < 0) fail("parsed shape has a negative dimension");
    elements *= static_cast<std::uint64_t>(d);
  }
  if (elements * tdconv::dtype_size(a.dtype) != a.data.size()) fail("data size differs from the shape's byte size");
  if (a.element_count() != static_cast<std::int64_t>(elements)) fail("element_count() differs from the shape");
}

// A private directory for the file that read_npy reads; removed at exit.
std::string g_dir;
std::string g_path;

void remove_temp() {
  ::unlink(g_path.c_str());
  ::rmdir(g_dir.c_str());
}

Outcome read_through_file(const std::uint8_t* data, std::size_t size) {
  const std::string& path = g_path;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) fail("cannot create the temporary file");
  if (size > 0 && std::fwrite(data, 1, size, f) != size) fail("cannot write the temporary file");
  if (std::fclose(f) != 0) fail("cannot close the temporary file");
  Outcome o;
  try {
    o.array = tdconv::io::read_npy(path);
    o.ok = true;
  } catch (const tdconv::Error& e) {
    // read_npy names the path; parse_npy the name it is given. Compare the rules only.
    o.error = std::string(e.what()).substr(e.subject().size());
    if (e.subject() != path) fail("read_npy's error does not name the file");
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_dir = tdconv_fuzz::make_scratch_dir("tdconv_npy_fuzz");
  g_path = g_dir + "/input.npy";
  std::atexit(remove_temp);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string name = "fuzz.npy";
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);

  Outcome parsed;
  try {
    parsed.array = tdconv::io::parse_npy(bytes, name);
    parsed.ok = true;
  } catch (const tdconv::Error& e) {
    if (e.subject() != name) fail("parse_npy's error does not name the file");
    parsed.error = std::string(e.what()).substr(e.subject().size());
  }

  const Outcome from_file = read_through_file(data, size);
  if (parsed.ok != from_file.ok) {
    std::fprintf(stderr, "parse_npy: %s\nread_npy: %s\n", parsed.ok ? "ok" : parsed.error.c_str(),
                 from_file.ok ? "ok" : from_file.error.c_str());
    fail("parse_npy and read_npy disagree on whether the bytes are valid");
  }
  if (!parsed.ok) {
    if (parsed.error != from_file.error) {
      std::fprintf(stderr, "parse_npy: %s\nread_npy: %s\n", parsed.error.c_str(), from_file.error.c_str());
      fail("parse_npy and read_npy give different errors");
    }
    return 0;
  }
  if (!same_array(parsed.array, from_file.array)) fail("parse_npy and read_npy give different arrays");

  const tdconv::io::NpyArray& a = parsed.array;
  check_consistent(a);
  if (a.data.size() + 10 > size) fail("the parsed data is larger than the file could hold");

  // Round trip: encode, parse again, compare; the encoding of the re-parsed array is byte-identical.
  const std::vector<std::byte> encoded = tdconv::io::encode_npy(a.dtype, a.shape, a.data.data());
  if ((encoded.size() - a.data.size()) % 64 != 0) fail("encode_npy's data does not start 64-byte aligned");
  tdconv::io::NpyArray b;
  try {
    b = tdconv::io::parse_npy(encoded, "encoded");
  } catch (const tdconv::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    fail("encode_npy's output does not parse");
  }
  if (!same_array(a, b)) fail("round trip through encode_npy changed the array");
  const std::vector<std::byte> encoded_again = tdconv::io::encode_npy(b.dtype, b.shape, b.data.data());
  if (encoded_again != encoded) fail("encode_npy is not stable across a round trip");
  return 0;
}
