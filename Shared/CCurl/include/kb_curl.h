// libcurl's C API for Swift: curl_easy_setopt and friends are variadic, which Swift cannot call,
// so each option kind gets a typed wrapper here. From Debian's libcurl4-openssl-dev.
#ifndef KB_CURL_H
#define KB_CURL_H

#include <curl/curl.h>

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

#endif
