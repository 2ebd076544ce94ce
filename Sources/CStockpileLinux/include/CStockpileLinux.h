// Wrappers for the Linux calls that Swift's Glibc module does not export, the one CPU instruction
// Swift cannot reach (SSE 4.2's CRC32, for the log's checksum), the compiler's prefetch hint, and an
// 8-byte atomic load of half of a 16-byte atomic word. The header defines no
// feature macros (a _GNU_SOURCE here would clash with SwiftGlibc's own view of the C library); the
// .c file defines what it needs.
#ifndef C_STOCKPILE_LINUX_H
#define C_STOCKPILE_LINUX_H

#include <stddef.h>
#include <stdint.h>

/// One readiness event. `struct epoll_event` is packed on x86_64 (12 bytes), which Swift cannot
/// describe; this unpacked copy is what the wrappers hand out.
typedef struct {
    uint32_t events;
    uint64_t data;
} stockpile_epoll_event;

/// Event bits, as epoll defines them.
extern const uint32_t STOCKPILE_EPOLLIN;
extern const uint32_t STOCKPILE_EPOLLOUT;
extern const uint32_t STOCKPILE_EPOLLERR;
extern const uint32_t STOCKPILE_EPOLLHUP;
extern const uint32_t STOCKPILE_EPOLLRDHUP;

/// epoll_create1(EPOLL_CLOEXEC). Returns the descriptor or -1 with errno set.
int stockpile_epoll_create(void);
/// op: 1 add, 2 delete, 3 modify (EPOLL_CTL_ADD/DEL/MOD). Returns 0 or -1 with errno set.
int stockpile_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/// Waits for up to `max` events; returns their count, or -1 with errno set (EINTR included).
int stockpile_epoll_wait(int epfd, stockpile_epoll_event *events, int max, int timeout_ms);

/// eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC). Returns the descriptor or -1 with errno set.
int stockpile_eventfd(void);
/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC. Returns the descriptor or -1 with errno set.
int stockpile_accept(int fd);
/// pipe2(fds, O_CLOEXEC): a pipe no child inherits unless it is dup2'ed. 0, or -1 with errno set.
int stockpile_pipe_cloexec(int fds[2]);
/// Names the calling thread for the kernel (`top -H`, `perf`, `/proc/PID/task/TID/comm`), cut to 15
/// bytes: Foundation's `Thread.name` is not passed on to the kernel on Linux.
void stockpile_name_thread(const char *name);

/// setpriority for the calling thread only (Linux nice values are per thread): 0, or -1 with errno set.
int stockpile_set_thread_nice(int nice);

/// 1 when this CPU has the SSE 4.2 CRC32 instruction (x86_64 only), 0 otherwise.
int stockpile_crc32c_hardware_available(void);
/// Advances a CRC-32C register (no initial or final xor: the caller does those) over `count` bytes
/// with the CRC32 instruction. Call only when `stockpile_crc32c_hardware_available()` is 1.
uint32_t stockpile_crc32c_hardware(uint32_t reg, const void *bytes, size_t count);

/// Asks the CPU to bring the cache line at `address` in ahead of its use (a hint: never faults). A bulk
/// load calls it for the hash-table slot of a row a few rows ahead, so that the slot's cache miss
/// overlaps the work on the rows before it instead of stalling on each in turn.
static inline void stockpile_prefetch(const void *address) { __builtin_prefetch(address, 1, 3); }

/// `stockpile_prefetch` for memory that will only be read (a snapshot's captured tables, which the
/// live shards share until they next write): it does not ask for the line to be owned for writing.
static inline void stockpile_prefetch_read(const void *address) { __builtin_prefetch(address, 0, 3); }

/// An 8-byte load with acquire ordering of one half of a 16-byte word that a `cmpxchg16b` writes
/// whole (the ledger's pair of next seq and last LSN): aligned 8-byte loads are atomic on x86-64 and
/// arm64, and reading one half this way is a plain load, where Swift's `Atomic<WordPair>.load` is a
/// locked compare-exchange that takes the line away from the core that writes it.
static inline uint64_t stockpile_load_acquire_u64(const void *address) { return __atomic_load_n((const uint64_t *)address, __ATOMIC_ACQUIRE); }

/// glibc's malloc_trim(0): gives the free memory of every arena back to the system (the top of each
/// heap, and whole free pages inside it), after a large one-off load such as a seed file, and before
/// the memory benchmark reads the resident set. Returns 1 when some memory was released, 0 otherwise.
int stockpile_malloc_trim(void);

#endif
