#include "engine/axis.hpp"

#include <algorithm>

#include "tdconv/shape.hpp"

namespace tdconv::engine {
namespace {

// Pixels j in [0, count) for which tap `t` lands inside [0, input): an interval [lo, hi), possibly empty.
std::pair<std::int64_t, std::int64_t> valid_pixels(const AxisSequence& s, const AxisTap& t, std::int64_t input) {
  // in_first + j * in_step + in_offset in [0, input)  <=>  j in [ceil(-a / step), ceil((input - a) / step))
  const std::int64_t a = s.in_first + t.in_offset;
  const std::int64_t lo = std::max<std::int64_t>(ceil_div(-a, s.in_step), 0);
  const std::int64_t hi = std::min<std::int64_t>(ceil_div(input - a, s.in_step), s.count);
  return {lo, std::max(lo, hi)};
}

bool tap_valid(const AxisSequence& s, const AxisTap& t, std::int64_t j, std::int64_t input) {
  const std::int64_t i = s.in_first + j * s.in_step + t.in_offset;
  return i >= 0 && i < input;
}

// Cuts a sequence into segments at every pixel where some tap enters or leaves the input.
void segment(AxisSequence& s, std::int64_t input) {
  std::vector<std::int64_t> cuts{0, s.count};
  for (const AxisTap& t : s.taps) {
    const auto [lo, hi] = valid_pixels(s, t, input);
    cuts.push_back(lo);
    cuts.push_back(hi);
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  for (std::size_t c = 0; c + 1 < cuts.size(); ++c) {
    if (cuts[c] >= s.count || cuts[c + 1] <= 0) continue;
    const std::int64_t j = cuts[c];
    // The valid taps of a pixel form a contiguous run of the tap list (in_offset is monotonic in the list).
    int first = 0;
    const int n = static_cast<int>(s.taps.size());
    while (first < n && !tap_valid(s, s.taps[first], j, input)) ++first;
    int last = first;
    while (last < n && tap_valid(s, s.taps[last], j, input)) ++last;
    if (first == last) first = last = 0;
    s.segments.push_back({j, cuts[c + 1], first, last});
  }
}

}  // namespace

std::pair<std::int64_t, std::int64_t> pixels_in(const AxisSequence& seq, std::int64_t o_begin, std::int64_t o_end) {
  const auto first_at = [&](std::int64_t o) {
    return std::clamp<std::int64_t>(ceil_div(o - seq.out_first, seq.out_step), 0, seq.count);
  };
  return {first_at(o_begin), first_at(o_end)};
}

Axis make_axis(const Problem& p, int d) {
  Axis axis;
  axis.input = p.input[d];
  axis.output = output_size(p)[d];
  const std::int64_t s = p.stride[d], dil = p.dilation[d], pad = p.pad_begin[d], k = p.kernel[d];
  if (p.op == Op::conv) {
    AxisSequence seq{0, 1, axis.output, -pad, s, {}, {}};
    for (std::int64_t t = 0; t < k; ++t) seq.taps.push_back({t, t * dil});
    axis.sequences.push_back(std::move(seq));
  } else {
    const std::int64_t phases = std::min(s, axis.output);
    for (std::int64_t c = 0; c < phases; ++c) {
      axis.sequences.push_back({c, s, ceil_div(axis.output - c, s), 0, 1, {}, {}});
    }
    // Tap t belongs to the phase c with c + pad - t * dil divisible by the stride. Dealt out in one pass over the
    // taps, in increasing t within each phase: asking every phase about every tap took O(stride x taps), seconds
    // for a 40000-tap kernel at stride 20000 (a plan must stay cheap).
    for (std::int64_t t = 0; t < k; ++t) {
      const std::int64_t r = t * dil - pad;
      const std::int64_t c = r - floor_div(r, s) * s;
      if (c < phases) axis.sequences[static_cast<std::size_t>(c)].taps.push_back({t, (c + pad - t * dil) / s});
    }
  }
  for (AxisSequence& seq : axis.sequences) segment(seq, axis.input);
  return axis;
}

Geometry make_geometry(const Problem& p) {
  Geometry g;
  const int lead = kMaxSpatialDims - p.spatial_dims;
  for (int d = 0; d < kMaxSpatialDims; ++d) {
    if (d < lead) {
      g.axes[d].sequences.push_back({0, 1, 1, 0, 1, {{0, 0}}, {{0, 1, 0, 1}}});
      continue;
    }
    g.axes[d] = make_axis(p, d - lead);
    g.kernel[d] = p.kernel[d - lead];
    g.in[d] = g.axes[d].input;
    g.out[d] = g.axes[d].output;
  }
  return g;
}

Axis::Position Axis::locate(std::int64_t o) const {
  const AxisSequence& seq = sequences.size() == 1 ? sequences[0] : sequences[o % sequences.size()];
  const std::int64_t j = (o - seq.out_first) / seq.out_step;
  const auto it = std::upper_bound(seq.segments.begin(), seq.segments.end(), j,
                                   [](std::int64_t v, const AxisSegment& sg) { return v < sg.j_begin; });
  return {&seq, j, &*(it - 1)};
}

int Axis::taps_at(std::int64_t o, TapHit* out) const {
  const Position pos = locate(o);
  int n = 0;
  for (int t = pos.segment->tap_begin; t < pos.segment->tap_end; ++t) {
    const AxisTap& tap = pos.sequence->taps[static_cast<std::size_t>(t)];
    out[n++] = {pos.sequence->in_first + pos.j * pos.sequence->in_step + tap.in_offset, tap.kernel_index};
  }
  return n;
}

}  // namespace tdconv::engine
