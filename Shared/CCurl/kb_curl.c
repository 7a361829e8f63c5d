#include "kb_curl.h"

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
