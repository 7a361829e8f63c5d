"""Search quality and latency of `ukb search` by words, by meaning and hybrid, over the real services.

    python3 Benchmarks/SemanticSearchEval/evaluate.py [--bin-dir .build/release] [--limit 10]

Builds the knowledge graph of this machine's installed Debian packages (/var/lib/dpkg/status: a
package is an entity whose observations are its one-line description, its version and its
maintainer; dependencies are relations — the graph the graph-store tests use), starts graph-store,
vector-search and inference-gateway (whose indexer fills knowledge_384) on free loopback ports and
temporary folders, imports the graph with `ukb import`, waits until everything is indexed, then
asks every query of queries.json (written as a user would ask, with the packages that answer it
judged before running; packages not installed here are dropped from a query's answers, and a
query left with none is skipped) with `ukb search --json` in each mode. Prints recall@10 (the share
of a query's answers in the first 10), MRR (1 / rank of the first answer, 0 when none in the first
10) and the latency of each `ukb search` (process start and its RPCs included), p50 and p95.
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, "..", ".."))
parser = argparse.ArgumentParser()
parser.add_argument("--bin-dir", default=None, help="where the executables are (default: .build/release, else .build/debug)")
parser.add_argument("--limit", type=int, default=10)
parser.add_argument("--status", default="/var/lib/dpkg/status")
args = parser.parse_args()
bin_dir = args.bin_dir or next((os.path.join(root, d) for d in (".build/release", ".build/debug") if os.path.exists(os.path.join(root, d, "ukb"))), None)
if not bin_dir:
    sys.exit("no built executables: swift build -c release")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def packages(status_file):
    found = {}
    for stanza in open(status_file, encoding="utf-8").read().split("\n\n"):
        fields, last = {}, None
        for line in stanza.split("\n"):
            if not line:
                continue
            if line[0] == " " and last:
                fields[last] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
                last = key
        if "Package" in fields and fields.get("Status", "").endswith("installed"):
            found[fields["Package"]] = fields
    return found


def entity_name(package):
    return package.replace("+", "-plus")


def graph(found):
    entities, relations, seen = [], [], set()
    for name, fields in sorted(found.items()):
        summary = (fields.get("Description") or name).split("\n")[0]
        observations = [summary, "version %s" % fields.get("Version", "?")]
        if "Maintainer" in fields:
            observations.append({"type": "maintainer", "content": fields["Maintainer"]})
        entities.append({"name": entity_name(name), "entityType": fields.get("Section", "unknown").replace("/", "-"),
                         "observations": observations, "source": "auto", "metadata": {"package": name}})
        for field, kind in (("Pre-Depends", "pre_depends_on"), ("Depends", "depends_on"), ("Recommends", "recommends")):
            for clause in fields.get(field, "").split(","):
                target = clause.split("|")[0].strip().split(" ")[0].split(":")[0]
                if target in found and (name, kind, target) not in seen:
                    seen.add((name, kind, target))
                    relations.append({"from": entity_name(name), "to": entity_name(target), "relationType": kind})
    return {"entities": entities, "relations": relations, "metadata": {"team": "apt"}}


work = tempfile.mkdtemp(prefix="kb-search-eval-")
ports = {name: free_port() for name in ("graph", "graph_admin", "vectors", "vectors_admin", "qdrant", "gateway", "gateway_admin", "budget")}
environment = dict(os.environ, KB_LOG_LEVEL="warning",
                   KB_GRAPH_STORE_ADDR="127.0.0.1:%d" % ports["graph"], KB_VECTOR_SEARCH_ADDR="127.0.0.1:%d" % ports["vectors"],
                   KB_INFERENCE_GATEWAY_ADDR="127.0.0.1:%d" % ports["gateway"], KB_BUDGET_SERVICE_ADDR="127.0.0.1:%d" % ports["budget"])
services = [
    ("graph-store", {"KB_GRAPH_STORE_PORT": ports["graph"], "KB_GRAPH_STORE_ADMIN_PORT": ports["graph_admin"]}),
    ("vector-search", {"KB_VECTOR_SEARCH_PORT": ports["vectors"], "KB_VECTOR_SEARCH_ADMIN_PORT": ports["vectors_admin"], "KB_VECTOR_QDRANT_PORT": ports["qdrant"]}),
    ("inference-gateway", {"KB_INFERENCE_GATEWAY_PORT": ports["gateway"], "KB_INFERENCE_GATEWAY_ADMIN_PORT": ports["gateway_admin"]}),
]
processes = []


def get_json(url):
    with urllib.request.urlopen(url, timeout=2) as answer:
        return json.loads(answer.read())


def ukb(*arguments):
    started = time.perf_counter()
    run = subprocess.run([os.path.join(bin_dir, "ukb"), *arguments, "--team", "apt"], env=environment, capture_output=True, text=True)
    return run, time.perf_counter() - started


try:
    for name, own in services:
        data = os.path.join(work, name)
        os.makedirs(data)
        env = dict(environment, KB_DATA_DIR=data, **{k: str(v) for k, v in own.items()})
        processes.append(subprocess.Popen([os.path.join(bin_dir, name)], env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, name + ".log"), "w")))
    for admin in ("graph_admin", "vectors_admin", "gateway_admin"):
        for _ in range(600):
            try:
                if get_json("http://127.0.0.1:%d/health" % ports[admin]).get("status") in ("healthy", "degraded"):
                    break
            except Exception:
                time.sleep(0.2)
    found = packages(args.status)
    path = os.path.join(work, "apt.json")
    json.dump(graph(found), open(path, "w"))
    run, _ = ukb("import", path)
    if run.returncode != 0:
        sys.exit("ukb import: " + run.stderr)
    began = time.perf_counter()
    while True:
        status = get_json("http://127.0.0.1:%d/internal/indexer" % ports["gateway_admin"])
        if status.get("head", 0) > 0 and status.get("cursor") == status.get("head"):
            break
        if time.perf_counter() - began > 1800:
            sys.exit("not indexed within 30 minutes: %s" % status)
        time.sleep(0.5)
    indexing = time.perf_counter() - began
    print("graph: %d packages; indexed in %.1f s (%.0f entities/s, from the import to the indexer's cursor at the feed's head)" % (len(found), indexing, len(found) / indexing))

    queries = []
    for item in json.load(open(os.path.join(here, "queries.json"))):
        relevant = [entity_name(p) for p in item["relevant"] if p in found]
        if relevant:
            queries.append((item["q"], set(relevant)))
    print("queries: %d (judged before running; answers not installed here dropped)" % len(queries))
    print("| mode | recall@%d | MRR | p50 | p95 | degraded answers |" % args.limit)
    print("|---|---|---|---|---|---|")
    for mode, flags in (("keyword (graph word search)", ["--keyword"]), ("semantic (vector)", ["--semantic"]), ("hybrid (0.7 vector + 0.3 BM25)", [])):
        recalls, reciprocal, times, degraded = [], [], [], 0
        for text, relevant in queries:
            run, seconds = ukb("search", text, "--json", "--limit", str(args.limit), *flags)
            times.append(seconds)
            if "degraded" in run.stderr:
                degraded += 1
            names = [entity["name"] for entity in json.loads(run.stdout or "{}").get("entities", [])] if run.returncode == 0 else []
            recalls.append(len(relevant & set(names[:args.limit])) / len(relevant))
            rank = next((i + 1 for i, name in enumerate(names[:args.limit]) if name in relevant), None)
            reciprocal.append(1 / rank if rank else 0)
        times.sort()
        print("| %s | %.3f | %.3f | %.1f ms | %.1f ms | %d |" % (mode, statistics.mean(recalls), statistics.mean(reciprocal),
                                                            times[len(times) // 2] * 1000, times[int(len(times) * 0.95)] * 1000, degraded))
finally:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    shutil.rmtree(work, ignore_errors=True)
