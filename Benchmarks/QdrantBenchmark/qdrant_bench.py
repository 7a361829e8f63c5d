"""vector-search's Qdrant-compatible REST port with the real qdrant-client, the same data and
queries through our protobuf RPC, and qdrant-client's local in-process mode (no Qdrant server can
be installed here: the weaker reference), in one run, side by side.

    swift build -c release --product vector-search && swift build -c release --product vector-benchmark
    python3 Benchmarks/QdrantBenchmark/qdrant_bench.py [--bin-dir .build/release] [--base 40000] [--queries 1000] [--runs 3]

Starts `vector-search` from --bin-dir on a temporary folder (free ports, no token) and stops it at
the end; `--url http://HOST:6333 --rpc HOST:7102` measures a running one instead. Uses
../shared/data/vectors/wordnet-minilm-384 (base.fvecs, queries.fvecs, groundtruth.ivecs).
Rows, each on the same vectors and queries (limit 10, ef 64, one client, one query at a time):
  - REST with qdrant-client (`upsert` of models.Batch, 1,000 a call; `query_points`);
  - REST with a plain HTTP client (httpx, JSON written with json.dumps): the interface without
    qdrant-client's own cost;
  - RPC: `vector-benchmark --rpc-service` (Swift RPCClient, length-prefixed protobuf);
  - qdrant-client's local mode (an exact NumPy scan in this process), on --local-queries queries.
Upsert rates include the client's serialisation; every upsert is acknowledged on disk. With
--runs N every figure is the median of N runs (each run writes the collection anew).
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings

import httpx
import numpy as np
from qdrant_client import QdrantClient, models

root = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
parser = argparse.ArgumentParser()
parser.add_argument("--bin-dir", default=os.path.join(root, ".build/release"), help="where vector-search and vector-benchmark are")
parser.add_argument("--url", help="a running vector-search's Qdrant port (then --rpc is its RPC address)")
parser.add_argument("--rpc", help="a running vector-search's RPC address HOST:PORT")
parser.add_argument("--data", default=os.path.join(root, "../shared/data/vectors/wordnet-minilm-384"))
parser.add_argument("--base", type=int, default=40000)
parser.add_argument("--queries", type=int, default=1000)
parser.add_argument("--local-queries", type=int, default=200, help="queries for the local mode (an exact scan: about 100 ms each)")
parser.add_argument("--runs", type=int, default=1)
parser.add_argument("--no-local", action="store_true", help="skip qdrant-client's in-process mode")
args = parser.parse_args()
warnings.simplefilter("ignore")
EF = 64


def fvecs(path, limit):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:limit, 1:].view(np.float32)


def ivecs(path, limit):
    raw = np.fromfile(path, dtype=np.int32)
    return raw.reshape(-1, raw[0] + 1)[:limit, 1:]


base = fvecs(os.path.join(args.data, "base.fvecs"), args.base)
queries = fvecs(os.path.join(args.data, "queries.fvecs"), args.queries)
full = len(fvecs(os.path.join(args.data, "base.fvecs"), 1 << 30))
# The ground truth is for the whole file: recall only when every base vector is loaded.
truth = ivecs(os.path.join(args.data, "groundtruth.ivecs"), args.queries) if len(base) == full else None


def recall_of(hits):
    if truth is None or not hits:
        return None
    return float(np.mean([len(set(h) & set(t[:10].tolist())) / 10 for h, t in zip(hits, truth)]))


def figures(upsert_rate, timings, total, hits):
    timings = sorted(timings)
    return {"upsert_rate": upsert_rate, "qps": len(timings) / total, "p50": timings[len(timings) // 2],
            "p99": timings[min(len(timings) - 1, int(len(timings) * 0.99))], "recall": recall_of(hits)}


def with_client(client, query_count):
    """qdrant-client: upsert models.Batch of 1,000, then query_points one at a time."""
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
    for query in queries[:query_count]:
        t0 = time.perf_counter()
        answer = client.query_points("bench", query=query.tolist(), limit=10, search_params=models.SearchParams(hnsw_ef=EF))
        timings.append(time.perf_counter() - t0)
        hits.append([p.id for p in answer.points])
    result = figures(upsert_rate, timings, time.perf_counter() - begin, hits)
    client.delete_collection("bench")
    return result


def with_plain_http(url):
    """The same REST calls with httpx and json.dumps: what the interface costs without qdrant-client."""
    http = httpx.Client(base_url=url, timeout=600, headers={"content-type": "application/json"})

    def call(method, path, body=None):
        answer = http.request(method, path, content=None if body is None else json.dumps(body))
        answer.raise_for_status()
        return json.loads(answer.content)["result"]

    http.request("DELETE", "/collections/bench-http")
    call("PUT", "/collections/bench-http", {"vectors": {"size": int(base.shape[1]), "distance": "Cosine"}, "hnsw_config": {"m": 16, "ef_construct": 100}})
    start = time.perf_counter()
    for first in range(0, len(base), 1000):
        chunk = base[first:first + 1000]
        call("PUT", "/collections/bench-http/points?wait=true", {"batch": {"ids": list(range(first, first + len(chunk))), "vectors": chunk.tolist()}})
    upsert_rate = len(base) / (time.perf_counter() - start)
    timings, hits = [], []
    begin = time.perf_counter()
    for query in queries:
        t0 = time.perf_counter()
        answer = call("POST", "/collections/bench-http/points/query", {"query": query.tolist(), "limit": 10, "params": {"hnsw_ef": EF}})
        timings.append(time.perf_counter() - t0)
        hits.append([p["id"] for p in answer["points"]])
    result = figures(upsert_rate, timings, time.perf_counter() - begin, hits)
    call("DELETE", "/collections/bench-http")
    return result


def with_rpc(address):
    """`vector-benchmark --rpc-service`: the same vectors and queries over our RPC (Swift client)."""
    command = [os.path.join(args.bin_dir, "vector-benchmark"), "--rpc-service", address, "--data", args.data,
               "--base", str(len(base)), "--queries", str(len(queries)), "--ef", str(EF), "--collection", "bench-rpc"]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit("vector-benchmark --rpc-service failed (%d): %s%s" % (run.returncode, run.stdout, run.stderr))
    row = next(json.loads(line) for line in run.stdout.splitlines() if line.startswith("{"))
    return {key: row[key] for key in ("upsert_rate", "qps", "p50", "p99", "recall")}


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_service():
    """vector-search from --bin-dir on a temporary folder; returns (process, folder, REST url, RPC address)."""
    folder = tempfile.mkdtemp(prefix="qdrant-bench-")
    rest, rpc = free_port(), free_port()
    environment = dict(os.environ, KB_DATA_DIR=folder, KB_VECTOR_SEARCH_PORT=str(rpc), KB_VECTOR_SEARCH_ADMIN_PORT=str(free_port()),
                       KB_VECTOR_QDRANT_PORT=str(rest), KB_LOG_LEVEL="warning")
    environment.pop("KB_AUTH_TOKEN", None)
    log = open(os.path.join(folder, "vector-search.log"), "w")
    process = subprocess.Popen([os.path.join(args.bin_dir, "vector-search")], env=environment, stdout=log, stderr=log)
    url = "http://127.0.0.1:%d" % rest
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.time() > deadline:
                sys.exit("vector-search did not start (see %s)" % log.name)
            time.sleep(0.1)
    return process, folder, url, "127.0.0.1:%d" % rpc


def stop_service(process, folder):
    process.terminate()
    process.wait(timeout=60)
    subprocess.run(["rm", "-rf", folder])


def medians(runs):
    keys = runs[0].keys()
    return {key: (None if runs[0][key] is None else statistics.median(run[key] for run in runs)) for key in keys}


service = None
if args.url:
    url, rpc = args.url, args.rpc
else:
    service = start_service()
    url, rpc = service[2], service[3]
engines = [
    ("vector-search REST, qdrant-client", lambda: with_client(QdrantClient(url=url, prefer_grpc=False, timeout=600), len(queries))),
    ("vector-search REST, plain HTTP (httpx)", lambda: with_plain_http(url)),
]
if rpc:
    engines.append(("vector-search RPC (protobuf, Swift client)", lambda: with_rpc(rpc)))
if not args.no_local:
    local_queries = min(args.local_queries, len(queries))
    engines.append(("qdrant-client local mode (in-process, exact; %d queries)" % local_queries,
                    lambda: with_client(QdrantClient(location=":memory:"), local_queries)))
try:
    print("qdrant-bench: %d x %d (cosine), m=16, ef_construct=100, %d queries, limit 10, ef %d, one client, %s" % (
        len(base), base.shape[1], len(queries), EF, "median of %d runs" % args.runs if args.runs > 1 else "one run"))
    results = {name: [] for name, _ in engines}
    for run in range(args.runs):
        for name, measure in engines:
            results[name].append(measure())
            print("  run %d: %s done" % (run + 1, name), file=sys.stderr, flush=True)
    print("| engine | upsert | QPS | p50 | p99 | recall@10 |\n|---|---|---|---|---|---|")
    for name, _ in engines:
        row = medians(results[name])
        print("| %s | %s points/s | %s | %.3f ms | %.3f ms | %s |" % (
            name, format(round(row["upsert_rate"]), ","), format(round(row["qps"]), ","), row["p50"] * 1000, row["p99"] * 1000,
            "n/a" if row["recall"] is None else "%.4f" % row["recall"]))
finally:
    if service:
        stop_service(service[0], service[1])
