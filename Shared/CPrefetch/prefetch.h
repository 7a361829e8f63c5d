// The CPU's cache prefetch hint, which Swift does not expose: the HNSW walk asks for the next
// neighbours' vectors while it computes the current distance (as hnswlib does with _mm_prefetch).
#pragma once

static inline void kb_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}
