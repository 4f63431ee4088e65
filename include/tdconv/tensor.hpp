#pragma once
// Non-owning views of dense, C-ordered tensors. A view carries its dtype and shape so that a plan can check what it
// is handed before it reads or writes a byte; building one allocates nothing.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "tdconv/types.hpp"

namespace tdconv {

inline constexpr int kMaxRank = kMaxSpatialDims + 2;

struct Shape {
  std::array<std::int64_t, kMaxRank> dims{};
  int rank = 0;

  Shape() = default;
  Shape(const std::vector<std::int64_t>& v);  // NOLINT(google-explicit-constructor): shapes convert freely
  Shape(std::initializer_list<std::int64_t> v) : Shape(std::vector<std::int64_t>(v)) {}
  bool operator==(const Shape& o) const;
  std::string to_string() const;  // "(2, 3, 4)"
};

template <class Pointer>
struct BasicTensorView {
  Pointer data = nullptr;
  DType dtype = DType::f32;
  Shape shape;
};

using TensorView = BasicTensorView<const void*>;  // read
using MutableTensorView = BasicTensorView<void*>;  // written

template <class T>
constexpr DType dtype_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "tdconv computes float32 and float64");
  return std::is_same_v<T, float> ? DType::f32 : DType::f64;
}

template <class T>
TensorView view(const T* data, const Shape& shape) {
  return {data, dtype_of<std::remove_const_t<T>>(), shape};
}
template <class T>
MutableTensorView mutable_view(T* data, const Shape& shape) {
  return {data, dtype_of<T>(), shape};
}

}  // namespace tdconv
