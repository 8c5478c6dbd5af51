#include "cxr/cpu_cache.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <unistd.h>

#include <cstdlib>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cxr/torch_compat.h"

namespace cxr {

namespace {

// Every block starts with a 64-byte header that holds its (rounded) size; the tensor data follows it, so the
// data keeps c10's 64-byte alignment and the deleter needs no lookup.
constexpr std::size_t kHeader = 64;
constexpr std::size_t kMinCached = 64 * 1024;
constexpr std::size_t kPage = 4096;

using Lru = std::list<std::pair<std::size_t, char*>>;  // (size, block), front = least recently freed

struct Cache {
  std::mutex mu;
  Lru lru;
  std::unordered_map<std::size_t, std::vector<Lru::iterator>> free_by_size;
  std::size_t limit = 0, cached = 0, in_use = 0;
  int64_t hits = 0, misses = 0, released = 0;
  bool installed = false;
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may be freed during exit
  return *c;
}

std::size_t default_limit() {
  if (const char* e = std::getenv("CXR_CPU_CACHE_MB")) {
    char* end = nullptr;
    const double mb = std::strtod(e, &end);
    if (end != e && *end == '\0' && mb >= 0) return static_cast<std::size_t>(mb * 1024.0 * 1024.0);
  }
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return std::size_t(1) << 30;
  return static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) / 4;
}

// Drops one cached block (the least recently freed); the caller holds the lock.
void evict_one(Cache& c) {
  auto it = c.lru.begin();
  const std::size_t size = it->first;
  char* block = it->second;
  auto& v = c.free_by_size[size];
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] == it) {
      v[i] = v.back();
      v.pop_back();
      break;
    }
  }
  if (v.empty()) c.free_by_size.erase(size);
  c.lru.erase(it);
  c.cached -= size;
  ++c.released;
  c10::free_cpu(block);
}

void release_block(void* data) {
  if (data == nullptr) return;
  char* block = static_cast<char*>(data) - kHeader;
  const std::size_t size = *reinterpret_cast<std::size_t*>(block);
  if (size >= kMinCached) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lk(c.mu);
    c.in_use -= size;
    if (size <= c.limit) {
      while (c.cached + size > c.limit) evict_one(c);
      c.free_by_size[size].push_back(c.lru.insert(c.lru.end(), {size, block}));
      c.cached += size;
      return;
    }
  }
  c10::free_cpu(block);
}

class CachingCpuAllocator final : public compat::AllocatorBase {
 public:
  c10::DataPtr allocate_bytes(std::size_t n) const override {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (n == 0) return {nullptr, nullptr, &release_block, cpu};
    const std::size_t size = n >= kMinCached ? (n + kPage - 1) / kPage * kPage : n;
    char* block = nullptr;
    if (size >= kMinCached) {
      Cache& c = cache();
      std::lock_guard<std::mutex> lk(c.mu);
      auto f = c.free_by_size.find(size);
      if (f != c.free_by_size.end()) {
        auto it = f->second.back();
        f->second.pop_back();
        if (f->second.empty()) c.free_by_size.erase(f);
        block = it->second;
        c.lru.erase(it);
        c.cached -= size;
        ++c.hits;
      } else {
        ++c.misses;
      }
      c.in_use += size;
    }
    if (block == nullptr) {
      try {
        block = static_cast<char*>(c10::alloc_cpu(size + kHeader));
      } catch (...) {
        if (size >= kMinCached) {
          Cache& c = cache();
          std::lock_guard<std::mutex> lk(c.mu);
          c.in_use -= size;
          // Out of memory with blocks held: give them back and try once more.
          while (!c.lru.empty()) evict_one(c);
        }
        block = static_cast<char*>(c10::alloc_cpu(size + kHeader));
        if (size >= kMinCached) {
          Cache& c = cache();
          std::lock_guard<std::mutex> lk(c.mu);
          c.in_use += size;
        }
      }
    }
    *reinterpret_cast<std::size_t*>(block) = size;
    char* data = block + kHeader;
    return {data, data, &release_block, cpu};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release_block; }
};

}  // namespace

void install_cpu_cache() {
  static std::once_flag once;
  std::call_once(once, [] {
    Cache& c = cache();
    {
      std::lock_guard<std::mutex> lk(c.mu);
      c.limit = default_limit();
    }
    static CachingCpuAllocator* allocator = new CachingCpuAllocator();
    // Above libtorch's default CPU allocator (priority 0); a program's own wrapper installed later with a
    // higher priority (step_bench's counting allocator) sits on top of it.
    c10::SetCPUAllocator(allocator, /*priority=*/10);
    std::lock_guard<std::mutex> lk(c.mu);
    c.installed = true;
  });
}

void cpu_cache_release() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.mu);
  while (!c.lru.empty()) evict_one(c);
}

void cpu_cache_set_limit(std::size_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.mu);
  c.limit = bytes;
  while (c.cached > c.limit) evict_one(c);
}

CpuCacheStats cpu_cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.mu);
  CpuCacheStats s;
  s.installed = c.installed;
  s.limit_bytes = c.limit;
  s.cached_bytes = c.cached;
  s.in_use_bytes = c.in_use;
  s.hits = c.hits;
  s.misses = c.misses;
  s.released = c.released;
  return s;
}

}  // namespace cxr
