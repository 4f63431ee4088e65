#pragma once
// TDCONV_VERBOSE=1 (anything but empty or 0): the planner explains its choices on stderr.
#include <cstdlib>
#include <string_view>

namespace tdconv::detail {

inline bool verbose() {
  const char* v = std::getenv("TDCONV_VERBOSE");
  return v != nullptr && *v != '\0' && std::string_view(v) != "0";
}

}  // namespace tdconv::detail
