// libcurl's C API for Swift: curl_easy_setopt and friends are variadic, which Swift cannot call,
// so each option kind gets a typed wrapper here. From Debian's libcurl4-openssl-dev.
#ifndef KB_CURL_H
#define KB_CURL_H

#include <curl/curl.h>
#include <stdint.h>
#include <stdlib.h>

typedef size_t (*kb_curl_data_callback)(char *data, size_t size, size_t count, void *context);

CURLcode kb_curl_easy_setopt_long(CURL *easy, CURLoption option, long value);
CURLcode kb_curl_easy_setopt_offset(CURL *easy, CURLoption option, curl_off_t value);
CURLcode kb_curl_easy_setopt_string(CURL *easy, CURLoption option, const char *value);
CURLcode kb_curl_easy_setopt_pointer(CURL *easy, CURLoption option, void *value);
CURLcode kb_curl_easy_setopt_callback(CURL *easy, CURLoption option, kb_curl_data_callback value);
CURLcode kb_curl_easy_getinfo_long(CURL *easy, CURLINFO info, long *value);
CURLcode kb_curl_easy_getinfo_double(CURL *easy, CURLINFO info, double *value);
CURLcode kb_curl_easy_getinfo_offset(CURL *easy, CURLINFO info, curl_off_t *value);
CURLMcode kb_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value);

/// The value a write callback returns to pause the transfer (CURL_WRITEFUNC_PAUSE).
size_t kb_curl_writefunc_pause(void);

/// The sockets of a multi handle, watched with epoll: libcurl's socket callback (installed on
/// `multi`) keeps the epoll set current, from whichever thread drives libcurl; an eventfd in the
/// set wakes the waiting thread, and a timerfd in it ends the wait at libcurl's next time limit.
struct kb_curl_sockets;

/// Makes the epoll set, the wake-up eventfd and the timerfd and installs the socket callback;
/// NULL on failure.
struct kb_curl_sockets *kb_curl_sockets_create(CURLM *multi);
void kb_curl_sockets_destroy(struct kb_curl_sockets *sockets);
/// Waits up to `timeout_ms` (-1: no limit) for sockets to be ready, a wake-up or the timer;
/// writes up to `capacity` (at most 64) ready sockets and their CURL_CSELECT_* masks; returns how
/// many (a wake-up or timer expiry is consumed, not returned), -1 on an epoll error.
int kb_curl_sockets_wait(struct kb_curl_sockets *sockets, int timeout_ms, int *fds, int *flags, int capacity);
/// Makes `kb_curl_sockets_wait` return at `deadline_ns` (CLOCK_MONOTONIC nanoseconds; a time
/// already passed: at once), in place of any earlier setting. Callable from any thread while
/// another waits: the change applies to the wait under way.
void kb_curl_sockets_arm(struct kb_curl_sockets *sockets, int64_t deadline_ns);
/// Makes the thread in (or next entering) `kb_curl_sockets_wait` return at once.
void kb_curl_sockets_wake(struct kb_curl_sockets *sockets);

/// curl_multi_socket_action on a ready socket, and on the timeout (CURL_SOCKET_TIMEOUT).
CURLMcode kb_curl_multi_socket_action(CURLM *multi, int socket, int flags, int *running);
CURLMcode kb_curl_multi_timeout_action(CURLM *multi, int *running);

#endif
