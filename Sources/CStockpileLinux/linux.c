// Wrappers for epoll, eventfd and accept4. _GNU_SOURCE is defined here only, for accept4.
#define _GNU_SOURCE
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <errno.h>
#include <stddef.h>
#include "CStockpileLinux.h"

const uint32_t STOCKPILE_EPOLLIN = EPOLLIN;
const uint32_t STOCKPILE_EPOLLOUT = EPOLLOUT;
const uint32_t STOCKPILE_EPOLLERR = EPOLLERR;
const uint32_t STOCKPILE_EPOLLHUP = EPOLLHUP;
const uint32_t STOCKPILE_EPOLLRDHUP = EPOLLRDHUP;

int stockpile_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int stockpile_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int stockpile_epoll_wait(int epfd, stockpile_epoll_event *events, int max, int timeout_ms) {
    struct epoll_event raw[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, raw, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        events[i].events = raw[i].events;
        events[i].data = raw[i].data.u64;
    }
    return n;
}

int stockpile_eventfd(void) {
    return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

int stockpile_accept(int fd) {
    return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
