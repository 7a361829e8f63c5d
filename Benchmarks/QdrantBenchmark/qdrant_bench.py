"""Search through vector-search's Qdrant-compatible port with the real qdrant-client, beside
qdrant-client's local in-process mode (no Qdrant server can be installed here) on the same data.

    python3 Benchmarks/QdrantBenchmark/qdrant_bench.py --url http://127.0.0.1:6333 [--base 40000] [--queries 1000]

Uses ../shared/data/vectors/wordnet-minilm-384 (base.fvecs, queries.fvecs, groundtruth.ivecs).
Prints upsert rate, and for each engine QPS, p50, p99 and recall@10 with one client (ef 64).
The RPC figures for the same data come from `vector-benchmark` ("through the service").
"""
import argparse
import os
import time
import warnings

import numpy as np
from qdrant_client import QdrantClient, models

parser = argparse.ArgumentParser()
parser.add_argument("--url", default="http://127.0.0.1:6333")
parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../../shared/data/vectors/wordnet-minilm-384"))
parser.add_argument("--base", type=int, default=40000)
parser.add_argument("--queries", type=int, default=1000)
parser.add_argument("--no-local", action="store_true", help="skip qdrant-client's in-process mode")
args = parser.parse_args()
warnings.simplefilter("ignore")


def fvecs(path, limit):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:limit, 1:].view(np.float32)


def ivecs(path, limit):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:limit, 1:]


base = fvecs(os.path.join(args.data, "base.fvecs"), args.base)
queries = fvecs(os.path.join(args.data, "queries.fvecs"), args.queries)
truth = ivecs(os.path.join(args.data, "groundtruth.ivecs"), args.queries) if args.base == 40000 else None


def run(name, client):
    if client.collection_exists("bench"):
        client.delete_collection("bench")
    client.create_collection("bench", vectors_config=models.VectorParams(size=base.shape[1], distance=models.Distance.COSINE),
                             hnsw_config=models.HnswConfigDiff(m=16, ef_construct=100))
    start = time.perf_counter()
    for first in range(0, len(base), 1000):
        chunk = base[first:first + 1000]
        client.upsert("bench", points=models.Batch(ids=list(range(first, first + len(chunk))), vectors=chunk.tolist()), wait=True)
    upsert_rate = len(base) / (time.perf_counter() - start)
    timings, hits = [], []
    begin = time.perf_counter()
    for query in queries:
        t0 = time.perf_counter()
        answer = client.query_points("bench", query=query.tolist(), limit=10, search_params=models.SearchParams(hnsw_ef=64))
        timings.append(time.perf_counter() - t0)
        hits.append([p.id for p in answer.points])
    total = time.perf_counter() - begin
    timings.sort()
    recall = "n/a"
    if truth is not None:
        recall = "%.4f" % np.mean([len(set(h) & set(t[:10].tolist())) / 10 for h, t in zip(hits, truth)])
    print("| %s | %.0f points/s | %.0f | %.3f ms | %.3f ms | %s |" % (
        name, upsert_rate, len(queries) / total, timings[len(timings) // 2] * 1000, timings[int(len(timings) * 0.99)] * 1000, recall))
    client.delete_collection("bench")


print("qdrant-bench: %d x %d (cosine), m=16, ef_construct=100, %d queries, limit 10, ef 64, one client" % (len(base), base.shape[1], len(queries)))
print("| engine | upsert | QPS | p50 | p99 | recall@10 |\n|---|---|---|---|---|---|")
run("vector-search via qdrant-client (REST)", QdrantClient(url=args.url, prefer_grpc=False, timeout=600))
if not args.no_local:
    run("qdrant-client local mode (in-process, exact)", QdrantClient(location=":memory:"))
