// Winograd F(2x2, 3x3) input and output transforms, vectorised over channels. Included by kernels.cpp inside its
// per-target namespace (Highway's "-inl.h" convention: no include guard, compiled once per target).
//
// With B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] and A^T = [1 1 1 0; 0 1 -1 -1], a 4x4 input patch d becomes
// V = B^T d B, and 16 products M = V . U (U = G g G^T, the transformed 3x3 kernel) become the 2x2 outputs
// A^T M A of the correlation y[i][j] = sum g[a][b] d[i + a][j + b].

// 1D B^T applied to four values.
HWY_INLINE void InputTransform4(const V d0, const V d1, const V d2, const V d3, V& t0, V& t1, V& t2, V& t3) {
  t0 = hn::Sub(d0, d2);
  t1 = hn::Add(d1, d2);
  t2 = hn::Sub(d2, d1);
  t3 = hn::Sub(d1, d3);
}

// patch[a * 4 + b]: the input pixel at patch row a, column b (null: outside the input, read as zero).
// v[(a * 4 + b) * e_stride + c] receives element (a, b) of the transformed patch, for every channel c.
void WinogradInput(const float* const* patch, std::int64_t channels, float* v, std::int64_t e_stride) {
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  for (std::int64_t c = 0; c < channels; c += lanes) {
    V x[16], t[16];
    for (int i = 0; i < 16; ++i) x[i] = patch[i] ? hn::LoadU(d, patch[i] + c) : hn::Zero(d);
    for (int b = 0; b < 4; ++b) InputTransform4(x[b], x[4 + b], x[8 + b], x[12 + b], t[b], t[4 + b], t[8 + b], t[12 + b]);
    for (int a = 0; a < 4; ++a) {
      V* row = t + 4 * a;
      V r0, r1, r2, r3;
      InputTransform4(row[0], row[1], row[2], row[3], r0, r1, r2, r3);
      hn::StoreU(r0, d, v + (4 * a + 0) * e_stride + c);
      hn::StoreU(r1, d, v + (4 * a + 1) * e_stride + c);
      hn::StoreU(r2, d, v + (4 * a + 2) * e_stride + c);
      hn::StoreU(r3, d, v + (4 * a + 3) * e_stride + c);
    }
  }
}

// m[(a * 4 + b) * e_stride + c]: the 16 products. out[i * 2 + j] receives output (i, j) for every channel, plus the
// bias (may be null); a null output pointer is outside the output and skipped.
void WinogradOutput(const float* m, std::int64_t e_stride, std::int64_t channels, const float* bias,
                    float* const* out) {
  const D d;
  const auto lanes = static_cast<std::int64_t>(hn::Lanes(d));
  for (std::int64_t c = 0; c < channels; c += lanes) {
    V s0[4], s1[4];
    for (int b = 0; b < 4; ++b) {
      const V m0 = hn::LoadU(d, m + (0 + b) * e_stride + c), m1 = hn::LoadU(d, m + (4 + b) * e_stride + c);
      const V m2 = hn::LoadU(d, m + (8 + b) * e_stride + c), m3 = hn::LoadU(d, m + (12 + b) * e_stride + c);
      s0[b] = hn::Add(hn::Add(m0, m1), m2);
      s1[b] = hn::Sub(hn::Sub(m1, m2), m3);
    }
    const V init = bias ? hn::LoadU(d, bias + c) : hn::Zero(d);
    const V y[4] = {hn::Add(init, hn::Add(hn::Add(s0[0], s0[1]), s0[2])),
                    hn::Add(init, hn::Sub(hn::Sub(s0[1], s0[2]), s0[3])),
                    hn::Add(init, hn::Add(hn::Add(s1[0], s1[1]), s1[2])),
                    hn::Add(init, hn::Sub(hn::Sub(s1[1], s1[2]), s1[3]))};
    for (int i = 0; i < 4; ++i) {
      if (out[i]) hn::StoreU(y[i], d, out[i] + c);
    }
  }
}
