// Counts what the global operator new does in a test executable that links allocation_counter.cpp,
// so a test can check that a hot path does not allocate, or how much memory a structure holds.
#pragma once

#include <cstddef>

namespace token_broker::testing {

// How many times the global operator new (any form) has been called so far, on any thread.
std::size_t allocation_count() noexcept;

// Bytes currently held through operator new, as the C allocator reports them (malloc_usable_size:
// what was asked for, rounded up to the allocator's chunk size).
std::size_t live_bytes() noexcept;

} // namespace token_broker::testing
