// An interposer around glibc's malloc, as swift-nio's allocation tests use: the executable defines
// the allocation functions, so every library's calls reach these first; each counts with one relaxed
// atomic add and forwards to glibc's __libc_* entry points, which never call back into here.
#include <stddef.h>
#include <stdatomic.h>
#include <errno.h>
#include "CAllocationCounter.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);
// Declared here rather than by <malloc.h>, whose prototypes of malloc and its kin would have to
// agree with the definitions below, attribute for attribute.

static _Atomic uint64_t allocation_count = 0;

static inline void count_one(void) { atomic_fetch_add_explicit(&allocation_count, 1, memory_order_relaxed); }

uint64_t stockpile_allocation_count(void) { return atomic_load_explicit(&allocation_count, memory_order_relaxed); }

void *malloc(size_t size) {
    count_one();
    return __libc_malloc(size);
}

void *calloc(size_t count, size_t size) {
    count_one();
    return __libc_calloc(count, size);
}

void *realloc(void *pointer, size_t size) {
    // Growing in place is not a new allocation to the caller, but glibc may move the block: count
    // every realloc of a block, as a growth that a hot path should not need.
    count_one();
    return __libc_realloc(pointer, size);
}

void free(void *pointer) { __libc_free(pointer); }

void *memalign(size_t alignment, size_t size) {
    count_one();
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    count_one();
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    count_one();
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (p == NULL && size != 0) return ENOMEM;
    *out = p;
    return 0;
}

