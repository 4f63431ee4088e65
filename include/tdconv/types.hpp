#pragma once
// The small vocabulary every other header uses: operations, element types, layouts, and fixed-rank spatial sizes.
#include <array>
#include <cstdint>
#include <string_view>

namespace tdconv {

inline constexpr int kMaxSpatialDims = 3;

// Per-spatial-dimension integers, outermost first (D, H, W). Only the first `spatial_dims` entries are used.
using Dims = std::array<std::int64_t, kMaxSpatialDims>;

enum class Op { conv, conv_transpose };
enum class DType { f32, f64 };
// channels_first: (N, C, spatial...). channels_last: (N, spatial..., C). Input and output share the layout.
enum class Layout { channels_first, channels_last };
// torch: conv (C_out, C_in/groups, k...), conv_transpose (C_in, C_out/groups, k...).
// tf:    conv (k..., C_in/groups, C_out), conv_transpose (k..., C_out/groups, C_in).
enum class WeightLayout { torch, tf };

inline std::size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 8; }
std::string_view to_string(Op op);
std::string_view to_string(DType t);
std::string_view to_string(Layout l);
std::string_view to_string(WeightLayout l);

}  // namespace tdconv
