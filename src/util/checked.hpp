#pragma once
// Overflow-checked size arithmetic: sizes come from files and flags, so every product and sum is checked.
#include <cstdint>
#include <string>

#include "tdconv/error.hpp"

namespace tdconv::detail {

inline std::int64_t checked_mul(std::int64_t a, std::int64_t b, const std::string& subject) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) throw Error(subject, "size arithmetic overflows 64 bits");
  return r;
}

inline std::int64_t checked_add(std::int64_t a, std::int64_t b, const std::string& subject) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) throw Error(subject, "size arithmetic overflows 64 bits");
  return r;
}

inline std::int64_t checked_sub(std::int64_t a, std::int64_t b, const std::string& subject) {
  std::int64_t r = 0;
  if (__builtin_sub_overflow(a, b, &r)) throw Error(subject, "size arithmetic overflows 64 bits");
  return r;
}

}  // namespace tdconv::detail
