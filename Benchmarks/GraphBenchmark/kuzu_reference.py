"""The Kuzu reference for graph-benchmark: the same graph, the same 1-hop and 2-hop queries.

Reads entities.csv and relations.csv from the folder given, loads them into an embedded Kuzu
database, then times undirected 1-hop and 2-hop distinct-neighbour queries from the start
names in starts.txt. Prints one JSON object. Needs `pip install kuzu`.
"""
import json
import os
import sys
import time

import kuzu


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main(folder):
    db = kuzu.Database(os.path.join(folder, "kuzu-db"))
    conn = kuzu.Connection(db)
    conn.execute("CREATE NODE TABLE Entity(name STRING, type STRING, PRIMARY KEY(name))")
    conn.execute("CREATE REL TABLE REL(FROM Entity TO Entity, type STRING)")
    start = time.perf_counter()
    conn.execute(f"COPY Entity FROM '{os.path.join(folder, 'entities.csv')}' (HEADER=false)")
    conn.execute(f"COPY REL FROM '{os.path.join(folder, 'relations.csv')}' (HEADER=false)")
    load_seconds = time.perf_counter() - start
    starts = open(os.path.join(folder, "starts.txt")).read().split("\n")
    starts = [s for s in starts if s]
    result = {"load_seconds": load_seconds}
    for name, query in [
        ("hop1", "MATCH (a:Entity {name: $n})-[:REL]-(b:Entity) RETURN DISTINCT b.name"),
        ("hop2", "MATCH (a:Entity {name: $n})-[:REL*1..2]-(b:Entity) RETURN DISTINCT b.name"),
    ]:
        prepared = conn.prepare(query)
        for s in starts[:20]:
            conn.execute(prepared, {"n": s}).get_all()
        timings, sizes = [], []
        for s in starts:
            t = time.perf_counter()
            rows = conn.execute(prepared, {"n": s}).get_all()
            timings.append(time.perf_counter() - t)
            sizes.append(len(rows))
        result[name] = {"p50_us": percentile(timings, 0.5) * 1e6, "p99_us": percentile(timings, 0.99) * 1e6, "mean_rows": sum(sizes) / len(sizes)}
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
