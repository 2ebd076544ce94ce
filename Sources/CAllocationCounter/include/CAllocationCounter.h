// Counts heap allocations in the process that links this target (the benchmark and the tests only;
// never the server or the library): malloc and its kin are defined here, count, and forward to
// glibc's own allocator. The count is what the allocation tests compare against a limit. The
// benchmark's memory scenario also asks glibc to hand freed memory back before it reads the resident
// set, and Swift's Glibc module does not export that call.
#ifndef C_ALLOCATION_COUNTER_H
#define C_ALLOCATION_COUNTER_H

#include <stdint.h>

/// Allocations (malloc, calloc, realloc of a new block, posix_memalign, aligned_alloc, memalign) made
/// by every thread since the process started.
uint64_t stockpile_allocation_count(void);

#endif
