// A caching allocator for CPU tensors: freed blocks of 64 KiB and more are kept and handed out again to the
// next allocation of the same (page-rounded) size, as PyTorch's CUDA caching allocator does on the GPU.
//
// Why: libtorch's default CPU allocator is posix_memalign/free. glibc serves blocks above its mmap threshold
// with mmap and returns them with munmap, so every large tensor of a train step (activations, gradients,
// AdamW's temporaries) costs fresh zeroed pages and one page fault per 4 KiB on first touch, every step.
// Measured with native/bench/step_bench on this project's machine (libtorch 1.13, 1 thread): the test-vit
// step fell from 98 to 16 ms with the faults gone (AdamW on the 12.6 MB token embedding: 88 → 8 ms).
// A train step allocates the same sizes in the same order every step, so an exact-size cache hits every
// time after the first step.
//
// Bounded: at most `limit` bytes are kept (least recently freed blocks are released first). The limit is
// CXR_CPU_CACHE_MB (MiB; 0 turns the cache off) when set, else a quarter of physical memory. Blocks in use
// are not counted against it. Thread-safe (one mutex; the hot path is a hash lookup and a vector pop).
#pragma once
#include <cstddef>
#include <cstdint>

namespace cxr {

struct CpuCacheStats {
  bool installed = false;
  std::size_t limit_bytes = 0;   // 0: caching off (allocations pass through)
  std::size_t cached_bytes = 0;  // held for reuse now
  std::size_t in_use_bytes = 0;  // live cacheable blocks (page-rounded sizes)
  int64_t hits = 0, misses = 0, released = 0;
};

// Makes the cache libtorch's CPU allocator (once per process; later calls do nothing). Every cxr::Engine calls
// it; a program that wants to install its own CPU allocator on top (a counting wrapper) calls it first.
void install_cpu_cache();

// Releases every cached block to the system (blocks in use are untouched).
void cpu_cache_release();

// Changes the limit (bytes; 0 turns caching off and releases what is held).
void cpu_cache_set_limit(std::size_t bytes);

CpuCacheStats cpu_cache_stats();

}  // namespace cxr
