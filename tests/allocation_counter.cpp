// Replaces the global allocation functions with counting ones. Kept in its own translation unit:
// GCC warns about malloc/free pairs when a replacement is inlined into its callers.
#include "allocation_counter.hpp"

#include <atomic>
#include <cstdlib>
#include <malloc.h>
#include <new>

namespace {
std::atomic<std::size_t> count{0};
std::atomic<std::size_t> bytes{0};

void* allocate(std::size_t size) {
    void* p = std::malloc(size == 0 ? 1 : size);
    if (!p)
        throw std::bad_alloc();
    count.fetch_add(1, std::memory_order_relaxed);
    bytes.fetch_add(malloc_usable_size(p), std::memory_order_relaxed);
    return p;
}

void release(void* p) noexcept {
    if (p)
        bytes.fetch_sub(malloc_usable_size(p), std::memory_order_relaxed);
    std::free(p);
}
} // namespace

std::size_t token_broker::testing::allocation_count() noexcept {
    return count.load();
}
std::size_t token_broker::testing::live_bytes() noexcept {
    return bytes.load();
}

void* operator new(std::size_t size) {
    return allocate(size);
}
void* operator new[](std::size_t size) {
    return allocate(size);
}
void operator delete(void* p) noexcept {
    release(p);
}
void operator delete[](void* p) noexcept {
    release(p);
}
void operator delete(void* p, std::size_t) noexcept {
    release(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    release(p);
}
