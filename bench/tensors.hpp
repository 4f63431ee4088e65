#pragma once
// Buffers the benchmark hands to every implementation: aligned, filled with reproducible random numbers, compared
// with a tolerance, and written to / read from raw files for the PyTorch subprocess.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bench {

// float32 storage aligned to 64 bytes (a cache line, and an AVX-512 register) so that no implementation is timed on
// a luckier or unluckier alignment than another.
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::int64_t count);
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  std::int64_t size() const { return count_; }
  std::size_t bytes() const { return static_cast<std::size_t>(count_) * sizeof(float); }

 private:
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], Free> data_;
  std::int64_t count_ = 0;
};

// Uniform in [-1, 1), reproducible from the seed.
Buffer random_buffer(std::int64_t count, std::uint32_t seed);
void fill(Buffer& b, float value);

// max |got - want| / max |want|: relative to the output's scale, so that outputs near zero (which every
// convolution of random data has) do not turn rounding into huge element-wise ratios. Infinite if got holds a
// NaN or an infinity.
double max_relative_error(const float* got, const float* want, std::int64_t count);
// The same for an output made of parts (a backward pass's diff_src and diff_weights, whose scales differ), each on
// its own scale: the largest. Part i is [parts[i], parts[i + 1]), the last one up to count.
double max_relative_error(const float* got, const float* want, std::int64_t count,
                          const std::vector<std::int64_t>& parts);
bool all_finite(const float* data, std::int64_t count);

void write_raw(const std::string& path, const Buffer& b);
// Throws std::runtime_error unless the file holds exactly b.size() floats.
void read_raw(const std::string& path, Buffer& b);

}  // namespace bench
