// Aligned buffers, random data, comparison and raw float32 files.
#include "tensors.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <new>
#include <random>
#include <stdexcept>

namespace bench {

void Buffer::Free::operator()(float* p) const { std::free(p); }

Buffer::Buffer(std::int64_t count) : count_(count) {
  const std::size_t bytes = std::max<std::size_t>(64, (static_cast<std::size_t>(count) * sizeof(float) + 63) / 64 * 64);
  data_.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
  if (!data_) throw std::bad_alloc();
}

Buffer random_buffer(std::int64_t count, std::uint32_t seed) {
  Buffer b(count);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (std::int64_t i = 0; i < count; ++i) b.data()[i] = uniform(rng);
  return b;
}

void fill(Buffer& b, float value) { std::fill(b.data(), b.data() + b.size(), value); }

double max_relative_error(const float* got, const float* want, std::int64_t count) {
  double worst = 0;
  double scale = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(got[i]) || !std::isfinite(want[i])) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, std::abs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::abs(static_cast<double>(want[i])));
  }
  return scale > 0 ? worst / scale : worst;
}

double max_relative_error(const float* got, const float* want, std::int64_t count,
                          const std::vector<std::int64_t>& parts) {
  double worst = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::int64_t end = i + 1 < parts.size() ? parts[i + 1] : count;
    worst = std::max(worst, max_relative_error(got + parts[i], want + parts[i], end - parts[i]));
  }
  return worst;
}

bool all_finite(const float* data, std::int64_t count) {
  return std::all_of(data, data + count, [](float v) { return std::isfinite(v); });
}

void write_raw(const std::string& path, const Buffer& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.bytes()));
  if (!out) throw std::runtime_error(path + ": cannot write");
}

void read_raw(const std::string& path, Buffer& b) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error(path + ": cannot open");
  if (static_cast<std::size_t>(in.tellg()) != b.bytes()) {
    throw std::runtime_error(path + ": holds " + std::to_string(static_cast<std::size_t>(in.tellg())) +
                             " bytes, expected " + std::to_string(b.bytes()));
  }
  in.seekg(0);
  in.read(reinterpret_cast<char*>(b.data()), static_cast<std::streamsize>(b.bytes()));
  if (!in) throw std::runtime_error(path + ": cannot read");
}

}  // namespace bench
