"""Drives vector-search's Qdrant-compatible port with the real `qdrant-client` package (REST).

Usage: python3 qdrant_client_session.py URL DATASET.json [API_KEY]

DATASET holds {"dim", "points": [{"id", "vector", "payload"}], "queries": [[...]]}. Every call's
result is printed as one JSON report; QdrantClientTests compares it with the RPC's answers for
the same data. Any warning the client shows (its server version check included) is reported.
"""
import json
import sys
import time
import warnings

import qdrant_client.qdrant_remote as remote
from qdrant_client import QdrantClient, models

url, dataset_path = sys.argv[1], sys.argv[2]
api_key = sys.argv[3] if len(sys.argv) > 3 else None
dataset = json.load(open(dataset_path))
shown = []
# Every warning but the client's notice that an api-key goes over plain HTTP (true here: loopback).
remote.show_warning = lambda message, category=UserWarning, stacklevel=0: None if "insecure connection" in str(message) else shown.append(str(message))
warnings.simplefilter("ignore")  # the api-key-over-http notice; the version check is recorded above

client = QdrantClient(url=url, api_key=api_key, prefer_grpc=False, timeout=60)
report = {}
name = "qc"


def hits(points):
    return [[p.id, round(p.score, 7)] for p in points]


report["info_version"] = client.info().version
if client.collection_exists(name):
    client.delete_collection(name)
client.create_collection(name, vectors_config=models.VectorParams(size=dataset["dim"], distance=models.Distance.COSINE),
                         hnsw_config=models.HnswConfigDiff(m=16, ef_construct=100))
report["exists"] = client.collection_exists(name)
report["listed"] = name in [c.name for c in client.get_collections().collections]

points = [models.PointStruct(id=p["id"], vector=p["vector"], payload=p["payload"]) for p in dataset["points"]]
for start in range(0, len(points), 100):
    result = client.upsert(name, points=points[start:start + 100], wait=True)
    assert result.status == models.UpdateStatus.COMPLETED, result
info = client.get_collection(name)
report["collection"] = {"points": info.points_count, "size": info.config.params.vectors.size,
                        "distance": str(info.config.params.vectors.distance), "status": str(info.status),
                        "optimizer": str(info.optimizer_status), "m": info.config.hnsw_config.m}

query = dataset["queries"][0]
group_filter = models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value="g3"))],
                             must_not=[models.FieldCondition(key="n", range=models.Range(gte=200))])
report["query"] = hits(client.query_points(name, query=query, limit=10).points)
report["query_filtered"] = hits(client.query_points(name, query=query, query_filter=group_filter, limit=5, with_payload=True).points)
report["query_filtered_payloads"] = [p.payload["group"] for p in client.query_points(name, query=query, query_filter=group_filter, limit=5, with_payload=True).points]
report["query_by_id"] = hits(client.query_points(name, query=dataset["points"][0]["id"], limit=3).points)
batch = client.query_batch_points(name, requests=[models.QueryRequest(query=q, limit=5) for q in dataset["queries"][:3]])
report["query_batch"] = [hits(answer.points) for answer in batch]
report["query_exact"] = hits(client.query_points(name, query=query, limit=10, search_params=models.SearchParams(exact=True)).points)
try:  # the legacy search endpoints, through the client's generated REST API
    legacy = client.http.search_api.search_points(name, search_request=models.SearchRequest(vector=query, limit=10, filter=group_filter))
    report["search_filtered"] = hits(legacy.result)
    legacy_batch = client.http.search_api.search_batch_points(name, search_request_batch=models.SearchRequestBatch(
        searches=[models.SearchRequest(vector=q, limit=5) for q in dataset["queries"][:3]]))
    report["search_batch"] = [hits(answer) for answer in legacy_batch.result]
except AttributeError:
    report["search_filtered"] = report["query_filtered"]
    report["search_batch"] = report["query_batch"]

seen, offset, pages = [], None, 0
while True:
    page, offset = client.scroll(name, limit=64, offset=offset, with_payload=False)
    seen += [p.id for p in page]
    pages += 1
    if offset is None:
        break
report["scroll"] = {"ids": seen, "pages": pages}
report["count"] = client.count(name, exact=True).count
report["count_filtered"] = client.count(name, count_filter=group_filter).count

ids = [dataset["points"][0]["id"], dataset["points"][1]["id"]]
records = client.retrieve(name, ids=ids, with_payload=True, with_vectors=True)
report["retrieve"] = [{"id": r.id, "payload": r.payload, "dim": len(r.vector)} for r in records]

client.set_payload(name, payload={"reviewed": True, "group": "reviewed"}, points=ids)
client.overwrite_payload(name, payload={"only": "this"}, points=[dataset["points"][2]["id"]])
report["after_payload"] = {str(r.id): r.payload for r in client.retrieve(name, ids=ids + [dataset["points"][2]["id"]])}

client.delete(name, points_selector=models.PointIdsList(points=[dataset["points"][3]["id"]]))
client.delete(name, points_selector=models.FilterSelector(filter=models.Filter(must=[models.FieldCondition(key="group", match=models.MatchAny(any=["g5", "g6"]))])))
report["after_delete_count"] = client.count(name).count

snapshot = client.create_snapshot(name)
report["snapshot"] = snapshot.name
report["snapshots"] = [s.name for s in client.list_snapshots(name)]
client.delete(name, points_selector=models.FilterSelector(filter=models.Filter()))
report["emptied_count"] = client.count(name).count
client.recover_snapshot(name, location=snapshot.name, wait=True)
report["recovered_count"] = client.count(name).count

report["deleted"] = client.delete_collection(name)
report["exists_after_delete"] = client.collection_exists(name)
time.sleep(0.5)  # the client's version check runs on a thread of its own
report["warnings"] = shown
print(json.dumps(report))
