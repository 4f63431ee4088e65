// Per-target helpers shared by kernels.cpp, planar_kernels.cpp and winograd_kernels.cpp. Included inside their
// per-target namespace after the aliases hn, D and V (Highway's "-inl.h" convention: no include guard, compiled once
// per target).

// Vector registers of the target: 32 with AVX-512, 16 otherwise (x86 AVX2/SSE; NEON has 32 but stays safe).
constexpr int kRegisters = (HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL) ? 32 : 16;

// Tile height for `vectors` accumulator columns: as many rows as leave `spare` registers beside the b vectors.
constexpr int RowsLeaving(int vectors, int spare) {
  const int rows = (kRegisters - vectors - spare) / vectors;
  return rows < 1 ? 1 : (rows > 16 ? 16 : rows);
}
// Dot and planar tiles: room for a broadcast and one register more.
constexpr int TileRows(int vectors) { return RowsLeaving(vectors, 2); }

// Gemm and depthwise tiles: as many rows as leave room for the NV weight vectors and one broadcast, every register
// in use (their loops keep it so). With 16 registers the three-vector tile then has 4 rows instead of 3: FCN-8s' 21
// output channels ran 1.06-1.15x as fast with it (paired in turns, Zen 3), and the one-vector tile 14 instead of 13.
constexpr int GemmRows(int vectors) { return RowsLeaving(vectors, 1); }

// A vector loaded once for several multiply-adds: GCC otherwise folds the load into each of them as a memory
// operand, which loads it again for every one.
template <class DT>
HWY_INLINE hn::Vec<DT> LoadOnce(const DT d, const float* HWY_RESTRICT p) {
  hn::Vec<DT> v = hn::LoadU(d, p);
#if HWY_ARCH_X86 && HWY_TARGET != HWY_EMU128 && HWY_TARGET != HWY_SCALAR  // native vector registers only
  asm("" : "+x"(v.raw));
#endif
  return v;
}

// Lanes [lo, hi) of p (0 <= lo <= hi <= lanes), zeros elsewhere, without touching memory outside p + lo .. p + hi:
// AVX2 and AVX-512 masked loads suppress faults; other targets copy through a buffer.
HWY_INLINE V LoadRange(const D d, const float* p, size_t lo, size_t hi) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX2
  return hn::MaskedLoad(hn::AndNot(hn::FirstN(d, lo), hn::FirstN(d, hi)), d, p);
#else
  HWY_ALIGN float buffer[HWY_MAX_BYTES / sizeof(float)] = {};
  for (size_t i = lo; i < hi; ++i) buffer[i] = p[i];
  return hn::Load(d, buffer);
#endif
}

// The first `count` floats at p, zeros after them.
HWY_INLINE V LoadPartial(const D d, const float* HWY_RESTRICT p, size_t count) { return LoadRange(d, p, 0, count); }

// The first `count` lanes of v stored at p, nothing past them (a masked store may not exist, and an emulated one
// would write the neighbours' values back: a race with the thread that owns them; Highway's BlendedStore on NEON
// is such a load, blend and store).
template <class DT>
HWY_INLINE void StorePartial(const DT d, hn::Vec<DT> v, float* HWY_RESTRICT p, size_t count) {
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX2
  hn::BlendedStore(v, hn::FirstN(d, count), d, p);  // vmaskmovps / masked vmovups: lanes past count untouched
#else
  HWY_ALIGN float buffer[HWY_MAX_BYTES / sizeof(float)];
  hn::Store(v, d, buffer);
  for (size_t i = 0; i < count; ++i) p[i] = buffer[i];
#endif
}

// Winograd F(4, 2)'s input transform for the points 0, 1, -1, 2 and infinity, its rows scaled to whole coefficients
// (the transformed weights carry the factors): from d0 .. d4,
//   2 d0 - d1 - 2 d2 + d3,  2 d1 + d2 - d3,  -2 d1 + 3 d2 - d3,  d3 - d1,  2 d1 - d2 - 2 d3 + d4.
// The planar path's transformed rows (winograd_rows) and the winograd path's tiles both use it.
HWY_INLINE void WinogradF42Input(const D d, V d0, V d1, V d2, V d3, V d4, V (&v)[5]) {
  const V two = hn::Set(d, 2.0f), three = hn::Set(d, 3.0f);
  v[0] = hn::MulAdd(two, hn::Sub(d0, d2), hn::Sub(d3, d1));
  v[1] = hn::MulAdd(two, d1, hn::Sub(d2, d3));
  v[2] = hn::NegMulAdd(two, d1, hn::MulSub(three, d2, d3));
  v[3] = hn::Sub(d3, d1);
  v[4] = hn::MulAdd(two, hn::Sub(d1, d3), hn::Sub(d4, d2));
}
