// Winograd F(2, 3) input and output transforms along every axis of a 1D, 2D or 3D tile, vectorised over channels.
// Included by kernels.cpp inside its per-target namespace (Highway's "-inl.h" convention: no include guard,
// compiled once per target).
//
// With B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] and A^T = [1 1 1 0; 0 1 -1 -1], an input patch d of 4 values
// per axis becomes V = B^T d B (B^T along each axis), and the products M = V . U (U = G g G^T along each axis, the
// transformed 3-tap kernel) become the outputs A^T M A, 2 per axis, of the correlation
// y[i] = sum g[a] d[i + a] (a sum over every axis).

// 1D B^T applied to four values.
HWY_INLINE void InputTransform4(const V d0, const V d1, const V d2, const V d3, V& t0, V& t1, V& t2, V& t3) {
  t0 = hn::Sub(d0, d2);
  t1 = hn::Add(d1, d2);
  t2 = hn::Sub(d2, d1);
  t3 = hn::Sub(d1, d3);
}

constexpr int Pow4(int dims) { return dims == 0 ? 1 : 4 * Pow4(dims - 1); }
constexpr int Pow2(int dims) { return dims == 0 ? 1 : 2 * Pow2(dims - 1); }

// x holds 4^DIMS vectors, element (a0, a1, ...) at a0 * 4^(DIMS-1) + ...; B^T along every axis, in place.
template <int DIMS>
HWY_INLINE void InputTransformAll(V* x) {
  constexpr int kElements = Pow4(DIMS);
  for (int axis = 0; axis < DIMS; ++axis) {
    const int step = Pow4(DIMS - 1 - axis);  // distance between consecutive elements along `axis`
    for (int base = 0; base < kElements; ++base) {
      if ((base / step) % 4 != 0) continue;  // one line per position of the other axes
      InputTransform4(x[base], x[base + step], x[base + 2 * step], x[base + 3 * step], x[base], x[base + step],
                      x[base + 2 * step], x[base + 3 * step]);
    }
  }
}

// patch[i]: the input pixel of patch element i (row-major over the DIMS axes, 4 per axis; null: outside the input,
// read as zero). v[i * e_stride + c] receives element i of the transformed patch, for every channel c.
template <int DIMS>
void WinogradInput(const float* const* patch, std::int64_t channels, float* v, std::int64_t e_stride) {
  constexpr int kElements = Pow4(DIMS);
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  for (std::int64_t c = 0; c < channels; c += lanes) {
    V x[kElements];
    for (int i = 0; i < kElements; ++i) x[i] = patch[i] ? hn::LoadU(d, patch[i] + c) : hn::Zero(d);
    InputTransformAll<DIMS>(x);
    for (int i = 0; i < kElements; ++i) hn::StoreU(x[i], d, v + i * e_stride + c);
  }
}

// m[i * e_stride + c]: the 4^DIMS products. out[j] receives output j (row-major, 2 per axis) for every channel,
// plus the bias (may be null); a null output pointer is outside the output and skipped.
template <int DIMS>
void WinogradOutput(const float* m, std::int64_t e_stride, std::int64_t channels, const float* bias,
                    float* const* out) {
  constexpr int kElements = Pow4(DIMS);
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  for (std::int64_t c = 0; c < channels; c += lanes) {
    V x[kElements];
    for (int i = 0; i < kElements; ++i) x[i] = hn::LoadU(d, m + i * e_stride + c);
    // A^T along each axis, last axis first, packing the results: after axes DIMS-1 .. a, the element
    // (a0 .. a_{a-1}, j_a .. j_{DIMS-1}) sits at (a0 .. a_{a-1}) * 2^(DIMS-a) + (j_a .. j_{DIMS-1}) in binary.
    int inner = 1;  // 2^(axes done)
    for (int axis = DIMS - 1; axis >= 0; --axis) {
      const int outer = Pow4(axis);
      for (int o = 0; o < outer; ++o)
        for (int j = 0; j < inner; ++j) {
          const V m0 = x[(o * 4 + 0) * inner + j], m1 = x[(o * 4 + 1) * inner + j];
          const V m2 = x[(o * 4 + 2) * inner + j], m3 = x[(o * 4 + 3) * inner + j];
          // Written at (o * 2 + k) * inner + j <= (o * 4 + k) * inner + j: never over an element still to be read.
          x[(o * 2 + 0) * inner + j] = hn::Add(hn::Add(m0, m1), m2);
          x[(o * 2 + 1) * inner + j] = hn::Sub(hn::Sub(m1, m2), m3);
        }
      inner *= 2;
    }
    const V init = bias ? hn::LoadU(d, bias + c) : hn::Zero(d);
    for (int j = 0; j < Pow2(DIMS); ++j) {
      if (out[j]) hn::StoreU(hn::Add(init, x[j]), d, out[j] + c);
    }
  }
}
