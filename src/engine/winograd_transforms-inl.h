// Winograd F(2, r) input and output transforms, r = 1, 2 or 3 taps per axis (not necessarily the same on every
// axis), along every axis of a 1D, 2D or 3D tile, and F(4, r), r = 2 or 3, along the last axis (x) of a tile with r
// taps on every axis (F(2, r) along the others), vectorised over channels. Included by winograd_kernels.cpp inside
// its per-target namespace (Highway's "-inl.h" convention: no include guard, compiled once per target).
//
// A tile computes n = 2 outputs per axis (or 4 along x) of the correlation y[i] = sum g[a] d[i + a] (a sum over
// every axis) from an input patch d of r + n - 1 values per axis: V = B^T d B (B^T along each axis), products
// M = V . U with U = G g G^T (the transformed kernel, see winograd.cpp), outputs A^T M A.
//   F(2, 3): B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], A^T = [1 1 1 0; 0 1 -1 -1]
//   F(2, 2): B^T = [1 -1 0; 0 1 0; 0 -1 1],                 A^T = [1 1 0; 0 1 1]
//   F(2, 1): B^T = A^T = I (2 x 2): a stride phase of a transposed convolution with 1 tap along that axis
//   F(4, 3): B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1],
//            A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1] (Lavin and Gray's points 0, +-1, +-2)
//   F(4, 2): B^T = [2 -1 -2 1 0; 0 2 1 -1 0; 0 -2 3 -1 0; 0 -1 0 1 0; 0 2 -1 -2 1],
//            A^T = [1 1 1 1 0; 0 1 -1 2 0; 0 1 1 4 0; 0 1 -1 8 1] (points 0, 1, -1, 2; B^T scaled to whole numbers,
//            G carries the factors: see winograd.cpp)
// (F(2, 2): y0 = (d0 - d1) g0 + d1 (g0 + g1), y1 = d1 (g0 + g1) + (d2 - d1) g1.)
// An axis of kWinogradPaddedEnds (kernels.hpp) is F(2, 3) whose patch inputs d0 and d3 are padding: its patch holds
// d1, d2 and a third element that is never read (d3, in the padding), and
//   B^T = [1 1 0; 0 1 0; 1 0 0], A^T = [1 1 0; 1 0 1]   (G = [0 1 0; 0 -1 1; 1 -1 0], see winograd.cpp).

// Calls f(std::integral_constant<int, i>) for i < N, unrolled at compile time: the transforms index their vector
// arrays only with constants, so that the compiler keeps them in registers (written as loops, GCC 12 kept them on
// the stack, and Winograd on a 64-channel layer lost a quarter of its speed).
template <int N, class F>
HWY_INLINE void Unroll(F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) { (f(std::integral_constant<int, I>{}), ...); }
  (std::make_integer_sequence<int, N>{});
}
constexpr int IntPow(int base, int exponent) { return exponent == 0 ? 1 : base * IntPow(base, exponent - 1); }

// Patch (and transformed) elements of a tile of NX outputs along the last axis and 2 along the others.
template <int NX, int... R>
constexpr int TileElements() {
  constexpr std::array<int, sizeof...(R)> kTaps{R...};
  int elements = 1;
  for (std::size_t a = 0; a < kTaps.size(); ++a) {
    elements *= winograd_axis_elements(kTaps[a], a + 1 == kTaps.size() ? NX : 2);
  }
  return elements;
}

// Transform sizes of a tile of NX outputs along the last axis and 2 along the others, whose axes have R... taps each
// (one template argument per axis of the problem, outermost first; an axis with 1 tap has a trivial transform: n
// outputs from n inputs, each the input times the tap).
template <int NX, int... R>
struct TileShape {
  static constexpr int kDims = sizeof...(R);
  static constexpr std::array<int, kDims> kTaps{R...};
  static constexpr int Outputs(int axis) { return axis == kDims - 1 ? NX : 2; }  // along one axis
  static constexpr int Alpha(int axis) {
    return winograd_axis_elements(kTaps[static_cast<std::size_t>(axis)], Outputs(axis));
  }
  static constexpr int kElements = TileElements<NX, R...>();
  static constexpr int kOutputs = IntPow(2, kDims - 1) * NX;
  // Elements between consecutive patch elements along `axis`: the sizes of the axes after it.
  static constexpr int Step(int axis) {
    int step = 1;
    for (int a = axis + 1; a < kDims; ++a) step *= Alpha(a);
    return step;
  }
  // Patch elements before `axis` (outer positions).
  static constexpr int Outer(int axis) {
    int outer = 1;
    for (int a = 0; a < axis; ++a) outer *= Alpha(a);
    return outer;
  }
  // Outputs of the axes after `axis` (the packed results of the output transform's earlier steps).
  static constexpr int InnerOutputs(int axis) {
    int inner = 1;
    for (int a = axis + 1; a < kDims; ++a) inner *= Outputs(a);
    return inner;
  }
};

// B^T along one line of the patch: elements BASE, BASE + STEP, ... (R = 1: the identity).
template <int N, int R, int BASE, int STEP>
HWY_INLINE void InputTransformLine(V* x) {
  if constexpr (N == 4 && R == 2) {  // simd_common-inl.h
    V v[5];
    WinogradF42Input(D(), x[BASE], x[BASE + STEP], x[BASE + 2 * STEP], x[BASE + 3 * STEP], x[BASE + 4 * STEP], v);
    Unroll<5>([&](auto u) { x[BASE + u * STEP] = v[u]; });
  } else if constexpr (N == 4) {
    static_assert(R == 3, "F(4, r) is compiled for 2 and 3 taps only");
    const D d;
    const V d0 = x[BASE], d1 = x[BASE + STEP], d2 = x[BASE + 2 * STEP], d3 = x[BASE + 3 * STEP];
    const V d4 = x[BASE + 4 * STEP], d5 = x[BASE + 5 * STEP];
    const V four = hn::Set(d, 4.0f), two = hn::Set(d, 2.0f);
    const V t0 = hn::NegMulAdd(four, d2, d4), t1 = hn::NegMulAdd(four, d1, d3);  // d4 - 4 d2, d3 - 4 d1
    const V t2 = hn::Sub(d4, d2), t3 = hn::Mul(two, hn::Sub(d3, d1));
    x[BASE] = hn::MulAdd(four, hn::Sub(d0, d2), t2);
    x[BASE + STEP] = hn::Add(t0, t1);
    x[BASE + 2 * STEP] = hn::Sub(t0, t1);
    x[BASE + 3 * STEP] = hn::Add(t2, t3);
    x[BASE + 4 * STEP] = hn::Sub(t2, t3);
    x[BASE + 5 * STEP] = hn::MulAdd(four, hn::Sub(d1, d3), hn::Sub(d5, d3));
  } else if constexpr (R == kWinogradPaddedEnds) {  // x[BASE], x[BASE + STEP]: d1, d2
    const V d1 = x[BASE], d2 = x[BASE + STEP];
    x[BASE] = hn::Add(d1, d2);
    x[BASE + STEP] = d2;
    x[BASE + 2 * STEP] = d1;
  } else if constexpr (R == 3) {
    const V d0 = x[BASE], d1 = x[BASE + STEP], d2 = x[BASE + 2 * STEP], d3 = x[BASE + 3 * STEP];
    x[BASE] = hn::Sub(d0, d2);
    x[BASE + STEP] = hn::Add(d1, d2);
    x[BASE + 2 * STEP] = hn::Sub(d2, d1);
    x[BASE + 3 * STEP] = hn::Sub(d1, d3);
  } else if constexpr (R == 2) {
    const V d0 = x[BASE], d1 = x[BASE + STEP], d2 = x[BASE + 2 * STEP];
    x[BASE] = hn::Sub(d0, d1);
    x[BASE + 2 * STEP] = hn::Sub(d2, d1);
  }
}

// patch[i]: the input pixel of patch element i (row-major over the axes, R + N - 1 per axis; null: outside the
// input, read as zero). v[i * e_stride + c] receives element i of the transformed patch, for every channel c.
template <int NX, int... R>
void WinogradInput(const float* const* patch, std::int64_t channels, float* v, std::int64_t e_stride) {
  using S = TileShape<NX, R...>;
  constexpr int kElements = S::kElements;
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  for (std::int64_t c = 0; c < channels; c += lanes) {
    V x[kElements];
    Unroll<kElements>([&](auto i) { x[i] = patch[i] ? hn::LoadU(d, patch[i] + c) : hn::Zero(d); });
    Unroll<S::kDims>([&](auto axis) {
      constexpr int kAxisTaps = S::kTaps[axis], kAlpha = S::Alpha(axis), kStep = S::Step(axis);
      Unroll<kElements>([&](auto base) {
        // one line per position of the other axes
        if constexpr ((base / kStep) % kAlpha == 0) InputTransformLine<S::Outputs(axis), kAxisTaps, base, kStep>(x);
      });
    });
    Unroll<kElements>([&](auto i) { hn::StoreU(x[i], d, v + i * e_stride + c); });
  }
}

// m[i * e_stride + c]: the products, one per transformed element. out[j] receives output j (row-major, NX along x
// and 2 along the other axes) for every channel, plus the bias (may be null); a null output pointer is outside the
// output and skipped. `stream`: non-temporal stores where every output is vector-aligned (the caller fences).
template <int NX, int... R>
void WinogradOutput(const float* m, std::int64_t e_stride, std::int64_t channels, const float* bias,
                    float* const* out, bool stream) {
  using S = TileShape<NX, R...>;
  constexpr int kDims = S::kDims, kElements = S::kElements;
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  if (stream) {
    for (int j = 0; j < S::kOutputs; ++j) {
      stream = stream && reinterpret_cast<std::uintptr_t>(out[j]) % (lanes * sizeof(float)) == 0;
    }
  }
  for (std::int64_t c = 0; c < channels; c += lanes) {
    V x[kElements];
    Unroll<kElements>([&](auto i) { x[i] = hn::LoadU(d, m + i * e_stride + c); });
    // A^T along each axis, last axis first, packing the results: after axes kDims-1 .. a, the element
    // (a0 .. a_{a-1}, j_a .. j_{kDims-1}) sits at (a0 .. a_{a-1}) * (outputs of axes a..) + (j_a .. j_{kDims-1}),
    // row-major. An axis of 1 tap (n elements, n outputs) leaves every element where it is.
    Unroll<kDims>([&](auto done) {
      constexpr int kAxis = kDims - 1 - done, kAxisTaps = S::kTaps[kAxis], kAlpha = S::Alpha(kAxis);
      constexpr int N = S::Outputs(kAxis), kInner = S::InnerOutputs(kAxis), kOuter = S::Outer(kAxis);
      if constexpr (kAxisTaps > 1) {
        Unroll<kOuter>([&](auto o) {
          Unroll<kInner>([&](auto j) {
            constexpr int kIn = o * kAlpha * kInner + j;
            V y[N];
            if constexpr (N == 4 && kAxisTaps == 2) {
              const V m0 = x[kIn], m1 = x[kIn + kInner], m2 = x[kIn + 2 * kInner], m3 = x[kIn + 3 * kInner];
              const V m4 = x[kIn + 4 * kInner];
              const V a = hn::Add(m1, m2), b = hn::Sub(m1, m2);
              y[0] = hn::Add(hn::Add(m0, a), m3);
              y[1] = hn::MulAdd(hn::Set(d, 2.0f), m3, b);
              y[2] = hn::MulAdd(hn::Set(d, 4.0f), m3, a);
              y[3] = hn::Add(hn::MulAdd(hn::Set(d, 8.0f), m3, b), m4);
            } else if constexpr (N == 4) {
              const V m0 = x[kIn], m1 = x[kIn + kInner], m2 = x[kIn + 2 * kInner], m3 = x[kIn + 3 * kInner];
              const V m4 = x[kIn + 4 * kInner], m5 = x[kIn + 5 * kInner];
              const V a = hn::Add(m1, m2), b = hn::Sub(m1, m2), c3 = hn::Add(m3, m4), e = hn::Sub(m3, m4);
              y[0] = hn::Add(hn::Add(m0, a), c3);
              y[1] = hn::MulAdd(hn::Set(d, 2.0f), e, b);
              y[2] = hn::MulAdd(hn::Set(d, 4.0f), c3, a);
              y[3] = hn::Add(hn::MulAdd(hn::Set(d, 8.0f), e, b), m5);
            } else if constexpr (kAxisTaps == kWinogradPaddedEnds) {
              y[0] = hn::Add(x[kIn], x[kIn + kInner]);
              y[1] = hn::Add(x[kIn], x[kIn + 2 * kInner]);
            } else if constexpr (kAxisTaps == 3) {
              y[0] = hn::Add(hn::Add(x[kIn], x[kIn + kInner]), x[kIn + 2 * kInner]);
              y[1] = hn::Sub(hn::Sub(x[kIn + kInner], x[kIn + 2 * kInner]), x[kIn + 3 * kInner]);
            } else {
              y[0] = hn::Add(x[kIn], x[kIn + kInner]);
              y[1] = hn::Add(x[kIn + kInner], x[kIn + 2 * kInner]);
            }
            // Written at (o * N + k) * inner + j <= (o * kAlpha + k) * inner + j: never over an element still to
            // be read (those of this o were read just above, those of earlier o's are done).
            Unroll<N>([&](auto k) { x[(o * N + k) * kInner + j] = y[k]; });
          });
        });
      }
    });
    const V init = bias ? hn::LoadU(d, bias + c) : hn::Zero(d);
    if (stream) {
      Unroll<S::kOutputs>([&](auto j) {
        if (out[j]) hn::Stream(hn::Add(init, x[j]), d, out[j] + c);
      });
    } else {
      Unroll<S::kOutputs>([&](auto j) {
        if (out[j]) hn::StoreU(hn::Add(init, x[j]), d, out[j] + c);
      });
    }
  }
}
