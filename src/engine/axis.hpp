#pragma once
// One spatial axis of a problem, decomposed into dense stride-1 pieces (see docs/design.md, "The engine").
//
// Every output element o of an axis belongs to exactly one *sequence*: o = out_first + j * out_step for j in
// [0, count). Within a sequence, tap t of the sequence's tap list reads input element
//   i = in_first + j * in_step + tap.in_offset,
// so consecutive j walk the input with a fixed step and no tap ever multiplies an inserted zero:
//   conv:            one sequence, out_step 1, in_step = stride, taps k = 0..K-1 with in_offset k*dilation;
//   conv_transpose:  one sequence per phase c = o mod stride, out_step = stride, in_step 1, and only the taps k
//                    with (c + pad_begin - k*dilation) divisible by stride, in_offset (c + pad_begin - k*d)/stride.
// A sequence is cut into *segments*: runs of j over which the set of taps that land inside the input is the same
// contiguous range of the tap list. Taps in padding are never visited, and a segment with no taps is bias only.
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "tdconv/problem.hpp"

namespace tdconv::engine {

struct AxisTap {
  std::int64_t kernel_index;  // which tap of the kernel along this axis
  std::int64_t in_offset;
};

struct AxisSegment {
  std::int64_t j_begin, j_end;  // pixels [j_begin, j_end) of the sequence
  int tap_begin, tap_end;       // taps [tap_begin, tap_end) of the sequence land inside the input
};

struct AxisSequence {
  std::int64_t out_first = 0, out_step = 1, count = 0;
  std::int64_t in_first = 0, in_step = 1;
  std::vector<AxisTap> taps;
  std::vector<AxisSegment> segments;  // cover [0, count) in order
};

// An input element that a tap reads, and which tap of the kernel it is.
struct TapHit {
  std::int64_t in_index;
  std::int64_t kernel_index;
};

struct Axis {
  std::int64_t input = 1, output = 1;
  std::vector<AxisSequence> sequences;

  // Valid taps of output element o (sequence index, pixel j, and the segment it falls in).
  struct Position {
    const AxisSequence* sequence;
    std::int64_t j;
    const AxisSegment* segment;
  };
  Position locate(std::int64_t o) const;
  // The taps of output element o that land inside the input, in the sequence's order; returns how many.
  int taps_at(std::int64_t o, TapHit* out) const;
};

// The pixels [j_begin, j_end) of `seq` whose outputs out_first + j * out_step lie in [o_begin, o_end).
std::pair<std::int64_t, std::int64_t> pixels_in(const AxisSequence& seq, std::int64_t o_begin, std::int64_t o_end);

// Decomposes spatial dimension `d` of a validated problem.
Axis make_axis(const Problem& p, int d);

// A problem's spatial axes as (z, y, x): 1D and 2D problems get trivial leading axes (one output element reading
// one input element with one tap), so that engines loop over three dimensions alike.
struct Geometry {
  std::array<Axis, 3> axes;
  Dims kernel{1, 1, 1}, in{1, 1, 1}, out{1, 1, 1};
};
Geometry make_geometry(const Problem& p);

}  // namespace tdconv::engine
