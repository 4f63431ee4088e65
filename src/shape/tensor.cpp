#include "tdconv/tensor.hpp"

#include "tdconv/error.hpp"
#include "tdconv/problem.hpp"

namespace tdconv {

Shape::Shape(const std::vector<std::int64_t>& v) {
  if (v.size() > dims.size()) throw Error("shape", "rank " + std::to_string(v.size()) + " exceeds 5");
  rank = static_cast<int>(v.size());
  for (int i = 0; i < rank; ++i) dims[i] = v[i];
}

bool Shape::operator==(const Shape& o) const {
  if (rank != o.rank) return false;
  for (int i = 0; i < rank; ++i) {
    if (dims[i] != o.dims[i]) return false;
  }
  return true;
}

std::string Shape::to_string() const { return shape_to_string({dims.begin(), dims.begin() + rank}); }

}  // namespace tdconv
