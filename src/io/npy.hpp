#pragma once
// NumPy .npy files holding little-endian float32 ('<f4') or float64 ('<f8') arrays in C order.
// The reader treats every file as hostile: it checks each field against the bytes actually present before trusting
// it, so a damaged or malicious file yields a tdconv::Error naming the file and the broken rule, never a crash or a
// huge allocation.
#include "tdconv/error.hpp"
#include "tdconv/types.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace tdconv::io {

struct NpyArray {
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;  // may be empty (0-d array, one element)
  std::vector<std::byte> data;      // element data, little-endian, C order, exactly element_count*dtype_size bytes
  std::int64_t element_count() const;
  template <class T>
  const T* as() const {
    return reinterpret_cast<const T*>(data.data());
  }
};

// Parses a whole .npy file (format 1.0, 2.0 or 3.0) held in memory. `name` (usually the path) is the Error subject.
NpyArray parse_npy(std::span<const std::byte> bytes, const std::string& name);

// Reads a .npy file. The header's claimed data size is checked against the file size before the data buffer is
// allocated, and the file must hold exactly header + data bytes.
NpyArray read_npy(const std::string& path);

// Encodes an array as .npy format 1.0: the header is padded with spaces so the data starts at a multiple of 64 bytes
// and ends with '\n'. `data` holds the elements in C order; it may be null when the shape has no elements.
std::vector<std::byte> encode_npy(DType dtype, std::span<const std::int64_t> shape, const void* data);

// Writes a .npy file atomically: the bytes go to a new temporary file in the same directory, which is synced and then
// renamed over `path`. On any failure the temporary file is removed, `path` is left as it was, and
// tdconv::Error(path, reason) is thrown.
void write_npy_atomic(const std::string& path, DType dtype, std::span<const std::int64_t> shape, const void* data);

}  // namespace tdconv::io
