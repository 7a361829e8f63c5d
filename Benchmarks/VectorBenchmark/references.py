#!/usr/bin/env python3
"""The reference engines for vector-benchmark, on the same data with the same m / ef_construction.

usage: references.py DATA_DIR M EF_CONSTRUCTION QUERIES EF1,EF2,...

Prints one JSON object per line: {"kind": "build", "engine", "build1", "build2", "memory"},
{"kind": "search", "engine", "ef", "recall", "qps1", "qps2"}, {"kind": "exact", ...}.
An engine that is not installed prints {"kind": "missing", "engine", "error"}.
"""
import json
import os
import resource
import sys
import time

import numpy as np


def fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].view(np.float32).copy()


def ivecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].copy()


def recall(found, truth):
    hits = 0
    for row, expected in zip(found, truth):
        hits += len(set(int(x) for x in row[:10]) & set(int(x) for x in expected[:10]))
    return hits / (len(found) * 10)


def emit(**fields):
    print(json.dumps(fields), flush=True)


def one_by_one(search, queries):
    """Queries one at a time from one thread, as our in-process figure is measured."""
    start = time.perf_counter()
    out = [search(q) for q in queries]
    return len(queries) / (time.perf_counter() - start), out


def main():
    data, m, efc, nq, sweep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), [int(x) for x in sys.argv[5].split(",")]
    base = fvecs(os.path.join(data, "base.fvecs"))
    queries = fvecs(os.path.join(data, "queries.fvecs"))[:nq]
    truth = ivecs(os.path.join(data, "groundtruth.ivecs"))[:nq]
    dim = base.shape[1]

    # faiss: HNSWFlat on inner product (the vectors are unit length, so cosine).
    try:
        import faiss
        builds = {}
        index = None
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            idx = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = efc
            start = time.perf_counter()
            idx.add(base)
            builds[threads] = time.perf_counter() - start
            if threads == 1:
                # The vectors plus the graph's neighbour table and level offsets.
                index = idx
                faiss_memory = len(base) * dim * 4 + faiss.vector_to_array(idx.hnsw.neighbors).nbytes + faiss.vector_to_array(idx.hnsw.offsets).nbytes
        emit(kind="build", engine="faiss", build1=builds[1], build2=builds[2], memory=faiss_memory)
        for ef in sweep:
            index.hnsw.efSearch = ef
            faiss.omp_set_num_threads(1)
            qps1, found = one_by_one(lambda q: index.search(q.reshape(1, -1), 10)[1][0], queries)
            faiss.omp_set_num_threads(2)
            start = time.perf_counter()
            index.search(queries, 10)
            qps2 = len(queries) / (time.perf_counter() - start)
            emit(kind="search", engine="faiss", ef=ef, recall=recall(found, truth), qps1=qps1, qps2=qps2)
        flat = faiss.IndexFlatIP(dim)
        flat.add(base)
        faiss.omp_set_num_threads(1)
        qps1, found = one_by_one(lambda q: flat.search(q.reshape(1, -1), 10)[1][0], queries)
        emit(kind="exact", engine="faiss", recall=recall(found, truth), qps1=qps1)
    except Exception as error:  # noqa: BLE001
        emit(kind="missing", engine="faiss", error=str(error))

    # hnswlib
    try:
        import hnswlib
        builds = {}
        index = None
        for threads in (1, 2):
            idx = hnswlib.Index(space="cosine", dim=dim)
            idx.init_index(max_elements=len(base), ef_construction=efc, M=m, random_seed=42)
            start = time.perf_counter()
            idx.add_items(base, np.arange(len(base)), num_threads=threads)
            builds[threads] = time.perf_counter() - start
            if threads == 1:
                # hnswlib's level-0 block per element (links, vector, label); upper levels are small.
                index = idx
                hnsw_memory = idx.element_count * (4 * (2 * m + 1) + 4 * dim + 8)
        emit(kind="build", engine="hnswlib", build1=builds[1], build2=builds[2], memory=hnsw_memory)
        for ef in sweep:
            index.set_ef(max(ef, 10))
            qps1, found = one_by_one(lambda q: index.knn_query(q, k=10, num_threads=1)[0][0], queries)
            start = time.perf_counter()
            index.knn_query(queries, k=10, num_threads=2)
            qps2 = len(queries) / (time.perf_counter() - start)
            emit(kind="search", engine="hnswlib", ef=ef, recall=recall(found, truth), qps1=qps1, qps2=qps2)
    except Exception as error:  # noqa: BLE001
        emit(kind="missing", engine="hnswlib", error=str(error))

    # usearch: connectivity = m, expansion_add = ef_construction, expansion_search = ef.
    try:
        from usearch.index import Index
        builds = {}
        index = None
        for threads in (1, 2):
            idx = Index(ndim=dim, metric="cos", dtype="f32", connectivity=m, expansion_add=efc)
            start = time.perf_counter()
            idx.add(np.arange(len(base)), base, threads=threads)
            builds[threads] = time.perf_counter() - start
            if threads == 1:
                index, usearch_memory = idx, int(idx.memory_usage)
        emit(kind="build", engine="usearch", build1=builds[1], build2=builds[2], memory=usearch_memory)
        for ef in sweep:
            index.expansion_search = ef
            qps1, found = one_by_one(lambda q: index.search(q, 10).keys, queries)
            start = time.perf_counter()
            index.search(queries, 10, threads=2)
            qps2 = len(queries) / (time.perf_counter() - start)
            emit(kind="search", engine="usearch", ef=ef, recall=recall(found, truth), qps1=qps1, qps2=qps2)
    except Exception as error:  # noqa: BLE001
        emit(kind="missing", engine="usearch", error=str(error))


if __name__ == "__main__":
    main()
