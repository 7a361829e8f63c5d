#include "kb_curl.h"

#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

CURLcode kb_curl_easy_setopt_long(CURL *easy, CURLoption option, long value) { return curl_easy_setopt(easy, option, value); }
CURLcode kb_curl_easy_setopt_offset(CURL *easy, CURLoption option, curl_off_t value) { return curl_easy_setopt(easy, option, value); }
CURLcode kb_curl_easy_setopt_string(CURL *easy, CURLoption option, const char *value) { return curl_easy_setopt(easy, option, value); }
CURLcode kb_curl_easy_setopt_pointer(CURL *easy, CURLoption option, void *value) { return curl_easy_setopt(easy, option, value); }
CURLcode kb_curl_easy_setopt_callback(CURL *easy, CURLoption option, kb_curl_data_callback value) { return curl_easy_setopt(easy, option, value); }
CURLcode kb_curl_easy_getinfo_long(CURL *easy, CURLINFO info, long *value) { return curl_easy_getinfo(easy, info, value); }
CURLcode kb_curl_easy_getinfo_double(CURL *easy, CURLINFO info, double *value) { return curl_easy_getinfo(easy, info, value); }
CURLcode kb_curl_easy_getinfo_offset(CURL *easy, CURLINFO info, curl_off_t *value) { return curl_easy_getinfo(easy, info, value); }
CURLMcode kb_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) { return curl_multi_setopt(multi, option, value); }
size_t kb_curl_writefunc_pause(void) { return CURL_WRITEFUNC_PAUSE; }

// MARK: - Readiness of libcurl's sockets (epoll)

struct kb_curl_sockets {
    CURLM *multi;
    int epoll;
    int wake;
    int timer;
};

/// CURLMOPT_SOCKETFUNCTION: libcurl says which sockets to watch, and for what. epoll_ctl may be
/// called while another thread waits in epoll_wait on the same set (the change applies at once),
/// which is what lets any thread start a transfer without waking the loop thread. A socket in the
/// set carries a mark (`curl_multi_assign`, which libcurl forgets with the socket on REMOVE), so
/// a socket is added or changed with one call, not a failed change and then an add.
static int kb_curl_socket_changed(CURL *easy, curl_socket_t socket, int what, void *context, void *socket_context) {
    (void)easy;
    struct kb_curl_sockets *sockets = context;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(sockets->epoll, EPOLL_CTL_DEL, socket, NULL);  // ENOENT / EBADF: already gone
        return 0;
    }
    struct epoll_event event = {0};
    event.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    event.data.fd = socket;
    int operation = socket_context ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(sockets->epoll, operation, socket, &event) != 0) {
        // The set and the mark disagree (a socket closed and its number reused before libcurl
        // said REMOVE): the other operation fixes it. A change that fails otherwise (EBADF: a
        // socket already closed, whose REMOVE follows) is ignored; only a failed add, which would
        // leave a transfer unwatched, is an error.
        int expected = operation == EPOLL_CTL_ADD ? EEXIST : ENOENT;
        if (errno != expected) return operation == EPOLL_CTL_ADD ? -1 : 0;
        int other = operation == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(sockets->epoll, other, socket, &event) != 0 && other == EPOLL_CTL_ADD) return -1;
    }
    if (!socket_context) curl_multi_assign(sockets->multi, socket, sockets);
    return 0;
}

struct kb_curl_sockets *kb_curl_sockets_create(CURLM *multi) {
    struct kb_curl_sockets *sockets = calloc(1, sizeof *sockets);
    if (!sockets) return NULL;
    sockets->multi = multi;
    sockets->epoll = epoll_create1(EPOLL_CLOEXEC);
    sockets->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    sockets->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (sockets->epoll < 0 || sockets->wake < 0 || sockets->timer < 0) {
        if (sockets->epoll >= 0) close(sockets->epoll);
        if (sockets->wake >= 0) close(sockets->wake);
        if (sockets->timer >= 0) close(sockets->timer);
        free(sockets);
        return NULL;
    }
    struct epoll_event event = {0};
    event.events = EPOLLIN;
    event.data.fd = -1;  // the wake-up eventfd
    int added = epoll_ctl(sockets->epoll, EPOLL_CTL_ADD, sockets->wake, &event);
    event.data.fd = -2;  // libcurl's next time limit
    if (added == 0) added = epoll_ctl(sockets->epoll, EPOLL_CTL_ADD, sockets->timer, &event);
    if (added != 0) {  // without them no wake-up or time limit would ever end a wait
        close(sockets->epoll);
        close(sockets->wake);
        close(sockets->timer);
        free(sockets);
        return NULL;
    }
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, kb_curl_socket_changed);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, sockets);
    return sockets;
}

void kb_curl_sockets_destroy(struct kb_curl_sockets *sockets) {
    close(sockets->epoll);
    close(sockets->wake);
    close(sockets->timer);
    free(sockets);
}

int kb_curl_sockets_wait(struct kb_curl_sockets *sockets, int timeout_ms, int *fds, int *flags, int capacity) {
    struct epoll_event events[64];
    if (capacity > 64) capacity = 64;
    int count = epoll_wait(sockets->epoll, events, capacity, timeout_ms);
    if (count < 0) return errno == EINTR ? 0 : -1;
    int ready = 0;
    for (int index = 0; index < count; index++) {
        if (events[index].data.fd == -1 || events[index].data.fd == -2) {
            uint64_t value;
            int fd = events[index].data.fd == -1 ? sockets->wake : sockets->timer;
            while (read(fd, &value, sizeof value) == sizeof value) {}
            continue;
        }
        int mask = 0;
        if (events[index].events & EPOLLIN) mask |= CURL_CSELECT_IN;
        if (events[index].events & EPOLLOUT) mask |= CURL_CSELECT_OUT;
        if (events[index].events & (EPOLLERR | EPOLLHUP)) mask |= CURL_CSELECT_ERR;
        fds[ready] = events[index].data.fd;
        flags[ready] = mask;
        ready++;
    }
    return ready;
}

void kb_curl_sockets_arm(struct kb_curl_sockets *sockets, int64_t deadline_ns) {
    struct itimerspec when = {0};
    if (deadline_ns > 0) {  // 0 would disarm: a deadline already passed fires at once
        when.it_value.tv_sec = deadline_ns / 1000000000;
        when.it_value.tv_nsec = deadline_ns % 1000000000;
    } else {
        when.it_value.tv_nsec = 1;
    }
    timerfd_settime(sockets->timer, TFD_TIMER_ABSTIME, &when, NULL);
}

void kb_curl_sockets_wake(struct kb_curl_sockets *sockets) {
    uint64_t one = 1;
    ssize_t written = write(sockets->wake, &one, sizeof one);  // EAGAIN: the counter is full, it wakes anyway
    (void)written;
}

CURLMcode kb_curl_multi_socket_action(CURLM *multi, int socket, int flags, int *running) {
    return curl_multi_socket_action(multi, socket, flags, running);
}

CURLMcode kb_curl_multi_timeout_action(CURLM *multi, int *running) {
    return curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, running);
}
