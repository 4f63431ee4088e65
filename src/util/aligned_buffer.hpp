#pragma once
// Vectors whose storage starts on a cache line, for the buffers the SIMD kernels read and write (packed weights,
// workspaces). std::vector<float> starts 16 bytes into a line wherever malloc puts it (glibc: large blocks are
// mmap'd pages plus a 16-byte header), and then every 64-byte AVX-512 load of a packed weight row spanned two
// lines. With packed weights on a line, in turns against the same buffers 16 bytes in (AVX-512, 1 thread,
// channels_last): ASPP rate 6 1.08-1.10x as fast, U-Net up1 1.14x, the dilated context layer 1.07-1.12x, the 3D
// transposed layer 1.05x; the planar paths (weights broadcast one float at a time) unchanged.
#include <cstddef>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace tdconv::util {

inline constexpr std::size_t kCacheLineBytes = 64;
// Buffers from kHugeBufferBytes on start on a 2 MiB boundary and ask Linux for transparent huge pages (madvise: on
// the hosts this runs on, THP is "madvise" only). The large ones are Winograd's transformed kernels (16-32 MiB,
// streamed by every batch of tiles), the gemm path's packed ASPP and DeepLab weights, and the channels_last copies
// of channels_first sources: with 4 KiB pages, each of their rows or channel blocks costs a TLB miss. Timed in turns
// against the same code without (Intel Xeon, AVX-512, run after run): ASPP rate 6 channels_first 1.08x at 1
// thread, channels_last 1.04x; DeepLab's res5 1.03-1.05x (channels_first at 1 and 2 threads, channels_last at 1);
// ASPP rate 18 1.02-1.03x except channels_last at 2 threads (1.00x); TCN and the 3D atrous layer within
// 1.00 +- 0.03. In tdconv-bench, with the Winograd batches sized to the workspace: ASPP channels_first 0.98-1.04x
// at 1 thread and 1.02-1.10x at 2.
inline constexpr std::size_t kHugePageBytes = 2 * 1024 * 1024;
inline constexpr std::size_t kHugeBufferBytes = 4 * 1024 * 1024;

inline void advise_huge_pages(void* p, std::size_t bytes) {
#ifdef MADV_HUGEPAGE
  madvise(p, bytes, MADV_HUGEPAGE);  // advice only: where the kernel declines, the pages stay small
#else
  (void)p, (void)bytes;
#endif
}

template <class T>
struct CacheLineAllocator {
  using value_type = T;

  CacheLineAllocator() = default;
  template <class U>
  explicit CacheLineAllocator(const CacheLineAllocator<U>&) {}

  T* allocate(std::size_t n) {
    // Room to round up to whole huge pages without overflowing.
    if (n > (static_cast<std::size_t>(-1) - kHugePageBytes) / sizeof(T)) throw std::bad_array_new_length();
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kHugeBufferBytes) {
      return static_cast<T*>(::operator new(bytes, std::align_val_t{kCacheLineBytes}));
    }
    const std::size_t whole = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    void* p = ::operator new(whole, std::align_val_t{kHugePageBytes});
    advise_huge_pages(p, whole);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) {
    if (n * sizeof(T) < kHugeBufferBytes) {
      ::operator delete(p, std::align_val_t{kCacheLineBytes});
    } else {
      ::operator delete(p, std::align_val_t{kHugePageBytes});
    }
  }
};

template <class T, class U>
bool operator==(const CacheLineAllocator<T>&, const CacheLineAllocator<U>&) {
  return true;
}
template <class T, class U>
bool operator!=(const CacheLineAllocator<T>&, const CacheLineAllocator<U>&) {
  return false;
}

// A float buffer starting on a cache line (on a huge page from kHugeBufferBytes on).
using AlignedFloats = std::vector<float, CacheLineAllocator<float>>;

}  // namespace tdconv::util
