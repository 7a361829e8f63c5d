import Foundation

/// The settings of an HNSW graph.
public struct HNSWParameters: Sendable, Codable, Hashable {
    /// Links per node on the upper levels; level 0 keeps twice as many.
    public var m: Int
    /// The candidate list size while inserting.
    public var efConstruction: Int
    /// Seeds the level draws, so a build is repeatable.
    public var seed: UInt64

    public init(m: Int = 16, efConstruction: Int = 100, seed: UInt64 = 42) {
        self.m = m
        self.efConstruction = efConstruction
        self.seed = seed
    }
}

/// A hierarchical navigable small world graph (Malkov & Yashunin) in the manner of hnswlib:
///
/// - **Contiguous storage**: vectors in one aligned block (`dimension` floats per node), level-0
///   links in another (`1 + 2m` words per node: count, then ids), upper-level links per node
///   only for the few nodes above level 0.
/// - **Levels** drawn with the multiplier `1 / ln m`; inserts descend greedily from the entry
///   point, then at each level search `efConstruction` candidates and keep neighbours with the
///   selection heuristic (a candidate is kept only if it is nearer to the new node than to every
///   neighbour already kept), and link back, shrinking full lists with the same heuristic.
/// - **Concurrency**: any number of searches and inserts run at once. Inserts lock the nodes
///   whose links they rewrite (striped mutexes); searches read links without locks (each link is
///   one aligned 32-bit word, the scheme hnswlib uses); growing the storage takes the only
///   exclusive lock.
/// - **Searches** borrow a pooled visited list (epoch-tagged, cleared by an increment) and heaps;
///   a filter is applied during the walk: non-matching nodes are walked through but never
///   returned, so a selective filter still fills `k` results when they exist.
/// - **Deletes** are tombstones (skipped in results, still walked through); `repair()` relinks
///   the neighbours of deleted nodes without a rebuild and frees their slots for reuse.
public final class HNSWIndex: @unchecked Sendable {
    public let dimension: Int
    public let metric: Metric
    public let parameters: HNSWParameters
    let maxLinks0: Int
    let maxLinks: Int
    let levelMultiplier: Double
    let linkWords0: Int
    let linkWords: Int

    // Storage: replaced only under `storage`'s write lock.
    var capacity: Int
    var vectors: UnsafeMutablePointer<Float>
    var links0: UnsafeMutablePointer<UInt32>
    var levels: UnsafeMutablePointer<Int8>
    var upper: UnsafeMutablePointer<UnsafeMutablePointer<UInt32>?>
    var deleted: UnsafeMutablePointer<UInt8>
    /// int8 scalar quantization (nil until `quantize()`): one byte per dimension per node, and
    /// per dimension the value of code 0 and the step between codes.
    var codes: UnsafeMutablePointer<UInt8>?
    var codeMinimum: [Float] = []
    var codeStep: [Float] = []

    // Graph state: under `state`.
    var nodeCount = 0
    var deletedCount = 0
    var entryPoint = HNSWIndex.none
    var maxLevel = -1
    var freeSlots: [UInt32] = []
    var random: UInt64

    let storage = ReadWriteLock()
    let state = NSLock()
    let topLevel = NSLock()
    let nodeLocks = StripedLocks()
    let scratch = ScratchPool()
    /// The metric as `offset + scale × kernel(a, b)`, the kernel picked once for this CPU.
    let kernel: (UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Float
    let kernelScale: Float
    let kernelOffset: Float

    static let none = UInt32.max

    /// An empty index.
    public init(dimension: Int, metric: Metric, parameters: HNSWParameters = HNSWParameters(), capacity: Int = 1024) {
        precondition(dimension > 0, "dimension must be positive")
        precondition(parameters.m >= 2, "m must be at least 2")
        self.dimension = dimension
        self.metric = metric
        self.parameters = parameters
        maxLinks = parameters.m
        maxLinks0 = parameters.m * 2
        linkWords0 = 1 + parameters.m * 2
        linkWords = 1 + parameters.m
        levelMultiplier = 1 / log(Double(parameters.m))
        random = parameters.seed
        (kernel, kernelScale, kernelOffset) = Kernels.resolved(metric)
        self.capacity = max(capacity, 16)
        vectors = Self.allocateFloats(self.capacity * dimension)
        links0 = .allocate(capacity: self.capacity * linkWords0)
        levels = .allocate(capacity: self.capacity)
        upper = .allocate(capacity: self.capacity)
        upper.initialize(repeating: nil, count: self.capacity)
        deleted = .allocate(capacity: self.capacity)
    }

    deinit {
        for node in 0..<nodeCount { upper[node]?.deallocate() }
        vectors.deallocate()
        links0.deallocate()
        levels.deallocate()
        upper.deallocate()
        deleted.deallocate()
        codes?.deallocate()
    }

    static func allocateFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64).bindMemory(to: Float.self, capacity: max(count, 1))
    }

    // MARK: Counts

    /// Live (not deleted) nodes.
    public var count: Int { state.withLock { nodeCount - deletedCount - freeSlots.count } }
    /// Deleted nodes not yet repaired away.
    public var tombstones: Int { state.withLock { deletedCount } }
    /// Slots in use, live or not: ids are below this.
    public var slots: Int { state.withLock { nodeCount } }

    /// Bytes held by the index's storage.
    public var memoryBytes: Int {
        storage.withReadLock {
            let upperBytes = state.withLock { () -> Int in
                var total = 0
                for node in 0..<nodeCount where levels[node] > 0 { total += Int(levels[node]) * linkWords * 4 }
                return total
            }
            return capacity * (dimension * 4 + linkWords0 * 4 + 1 + 8 + 1) + upperBytes
        }
    }

    // MARK: Node access (callers hold the storage read lock)

    @inline(__always) func vector(_ node: UInt32) -> UnsafeMutablePointer<Float> { vectors + Int(node) &* dimension }

    @inline(__always) func links(_ node: UInt32, level: Int) -> UnsafeMutablePointer<UInt32> {
        level == 0 ? links0 + Int(node) &* linkWords0 : upper[Int(node)]! + (level - 1) &* linkWords
    }

    @inline(__always) func distance(_ query: UnsafePointer<Float>, _ node: UInt32) -> Float {
        kernelOffset + kernelScale * kernel(query, vector(node), dimension)
    }

    /// Whether `node` is deleted.
    public func isDeleted(_ node: UInt32) -> Bool {
        storage.withReadLock { Int(node) < capacity && deleted[Int(node)] != 0 }
    }

    /// A copy of the stored vector (normalised for cosine).
    public func storedVector(_ node: UInt32) -> [Float] {
        storage.withReadLock { Array(UnsafeBufferPointer(start: vector(node), count: dimension)) }
    }

    // MARK: Insert

    /// Adds `values` (exactly `dimension` finite floats) and returns its node id.
    @discardableResult
    public func add(_ values: [Float]) -> UInt32 {
        values.withUnsafeBufferPointer { add($0) }
    }

    /// Adds a vector and returns its node id (a freed slot is reused).
    @discardableResult
    public func add(_ values: UnsafeBufferPointer<Float>) -> UInt32 {
        precondition(values.count == dimension, "vector has \(values.count) values, the index \(dimension)")
        state.lock()
        let node: UInt32
        if let slot = freeSlots.popLast() {
            node = slot
        } else {
            node = UInt32(nodeCount)
            nodeCount += 1
        }
        let level = drawLevel()
        state.unlock()
        if Int(node) >= capacity {
            storage.withWriteLock { if Int(node) >= capacity { grow(to: max(capacity * 2, Int(node) + 1)) } }
        }
        storage.withReadLock { insert(node, level: level, values: values) }
        return node
    }

    /// Draws a level: floor(-ln(U) / ln m). Under `state`.
    private func drawLevel() -> Int {
        random &+= 0x9E37_79B9_7F4A_7C15
        var z = random
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        let uniform = (Double(z >> 11) + 0.5) / Double(1 << 53)
        return min(Int(-log(uniform) * levelMultiplier), 30)
    }

    /// Reallocates every array for `newCapacity` nodes. Under the storage write lock.
    func grow(to newCapacity: Int) {
        let used = state.withLock { nodeCount }
        let newVectors = Self.allocateFloats(newCapacity * dimension)
        newVectors.update(from: vectors, count: min(used, capacity) * dimension)
        vectors.deallocate()
        vectors = newVectors
        let newLinks = UnsafeMutablePointer<UInt32>.allocate(capacity: newCapacity * linkWords0)
        newLinks.update(from: links0, count: capacity * linkWords0)
        links0.deallocate()
        links0 = newLinks
        let newLevels = UnsafeMutablePointer<Int8>.allocate(capacity: newCapacity)
        newLevels.update(from: levels, count: capacity)
        levels.deallocate()
        levels = newLevels
        let newUpper = UnsafeMutablePointer<UnsafeMutablePointer<UInt32>?>.allocate(capacity: newCapacity)
        newUpper.moveInitialize(from: upper, count: capacity)
        (newUpper + capacity).initialize(repeating: nil, count: newCapacity - capacity)
        upper.deallocate()
        upper = newUpper
        let newDeleted = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newDeleted.update(from: deleted, count: capacity)
        deleted.deallocate()
        deleted = newDeleted
        if let codes {
            let newCodes = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity * dimension)
            newCodes.update(from: codes, count: min(used, capacity) * dimension)
            codes.deallocate()
            self.codes = newCodes
        }
        capacity = newCapacity
    }

    /// Writes node `node` and links it in. Under the storage read lock.
    private func insert(_ node: UInt32, level: Int, values: UnsafeBufferPointer<Float>) {
        let target = vector(node)
        target.update(from: values.baseAddress!, count: dimension)
        if metric == .cosine { Self.normalize(target, dimension) }
        if codes != nil { encode(node) }
        nodeLocks.withLock(node) {
            levels[Int(node)] = Int8(level)
            deleted[Int(node)] = 0
            links(node, level: 0)[0] = 0
            upper[Int(node)]?.deallocate()
            upper[Int(node)] = nil
            if level > 0 {
                let block = UnsafeMutablePointer<UInt32>.allocate(capacity: level * linkWords)
                block.initialize(repeating: 0, count: level * linkWords)
                upper[Int(node)] = block
            }
        }

        state.lock()
        var entry = entryPoint
        var top = maxLevel
        if entry == Self.none {
            entryPoint = node
            maxLevel = level
            state.unlock()
            return
        }
        state.unlock()
        // An insert that raises the top level runs alone among such inserts (hnswlib's global lock).
        let raises = level > top
        if raises {
            topLevel.lock()
            state.lock()
            entry = entryPoint
            top = maxLevel
            state.unlock()
        }
        defer { if raises { topLevel.unlock() } }

        let query = UnsafePointer(target)
        var current = entry
        var currentDistance = distance(query, current)
        if top > level {
            for layer in stride(from: top, to: level, by: -1) {
                (current, currentDistance) = greedy(query, from: current, distance: currentDistance, level: layer, locking: true)
            }
        }
        for layer in stride(from: min(level, top), through: 0, by: -1) {
            let candidates = searchLayer(query, entry: current, ef: parameters.efConstruction, level: layer, construction: true)
            let selected = selectNeighbors(candidates, maximum: parameters.m)
            nodeLocks.withLock(node) {
                let list = links(node, level: layer)
                for (index, neighbor) in selected.enumerated() { list[1 + index] = neighbor.id }
                list[0] = UInt32(selected.count)
            }
            for neighbor in selected { connect(neighbor.id, to: node, level: layer) }
            if let nearest = candidates.first { current = nearest.id }
        }
        if raises {
            state.withLock {
                if level > maxLevel {
                    maxLevel = level
                    entryPoint = node
                }
            }
        }
    }

    /// Adds `node` to `neighbor`'s links at `level`, shrinking a full list with the heuristic.
    private func connect(_ neighbor: UInt32, to node: UInt32, level: Int) {
        let limit = level == 0 ? maxLinks0 : maxLinks
        nodeLocks.withLock(neighbor) {
            let list = links(neighbor, level: level)
            let count = Int(list[0])
            for index in 0..<count where list[1 + index] == node { return }
            if count < limit {
                list[1 + count] = node
                list[0] = UInt32(count + 1)
                return
            }
            let base = UnsafePointer(vector(neighbor))
            var candidates = [Neighbor(distance: distance(base, node), id: node)]
            candidates.reserveCapacity(count + 1)
            for index in 0..<count {
                let other = list[1 + index]
                candidates.append(Neighbor(distance: distance(base, other), id: other))
            }
            candidates.sort { $0.distance < $1.distance }
            let kept = selectNeighbors(candidates, maximum: limit)
            for (index, item) in kept.enumerated() { list[1 + index] = item.id }
            list[0] = UInt32(kept.count)
        }
    }

    /// The neighbour-selection heuristic: walking candidates nearest first, keep one only if it
    /// is nearer to the base than to every one kept so far. `candidates` are sorted.
    func selectNeighbors(_ candidates: [Neighbor], maximum: Int) -> [Neighbor] {
        guard candidates.count > maximum else { return candidates }
        var kept: [Neighbor] = []
        kept.reserveCapacity(maximum)
        for candidate in candidates {
            if kept.count >= maximum { break }
            let point = UnsafePointer(vector(candidate.id))
            var good = true
            for chosen in kept where distance(point, chosen.id) < candidate.distance {
                good = false
                break
            }
            if good { kept.append(candidate) }
        }
        return kept
    }

    /// Greedy descent on one upper level: move to the nearest neighbour until none is nearer.
    @inline(__always)
    func greedy(_ query: UnsafePointer<Float>, from start: UInt32, distance startDistance: Float, level: Int, locking: Bool) -> (UInt32, Float) {
        var current = start, currentDistance = startDistance
        var changed = true
        while changed {
            changed = false
            let step = { [self] in
                let list = links(current, level: level)
                let count = min(Int(list[0]), maxLinks)
                for index in 0..<count {
                    let candidate = list[1 + index]
                    let d = distance(query, candidate)
                    if d < currentDistance {
                        currentDistance = d
                        current = candidate
                        changed = true
                    }
                }
            }
            if locking { nodeLocks.withLock(current, step) } else { step() }
        }
        return (current, currentDistance)
    }

    /// Best-first search of one level from `entry`, keeping the `ef` nearest; returns them sorted.
    /// While building (`construction`), link lists are read under their node's lock.
    func searchLayer(_ query: UnsafePointer<Float>, entry: UInt32, ef: Int, level: Int, construction: Bool) -> [Neighbor] {
        let scratch = self.scratch.take(nodes: capacity)
        defer { self.scratch.give(scratch) }
        let limit = level == 0 ? maxLinks0 : maxLinks
        let first = Neighbor(distance: distance(query, entry), id: entry)
        _ = scratch.visit(entry)
        scratch.candidates.push(first)
        if deleted[Int(entry)] == 0 { scratch.results.push(first) }
        var bound = scratch.results.isEmpty ? Float.infinity : first.distance
        var neighbors = [UInt32](repeating: 0, count: limit)
        while !scratch.candidates.isEmpty {
            let current = scratch.candidates.top
            if current.distance > bound && scratch.results.count >= ef { break }
            scratch.candidates.pop()
            var count = 0
            let read = { [self] in
                let list = links(current.id, level: level)
                count = min(Int(list[0]), limit)
                for index in 0..<count { neighbors[index] = list[1 + index] }
            }
            if construction { nodeLocks.withLock(current.id, read) } else { read() }
            for index in 0..<count {
                let candidate = neighbors[index]
                guard scratch.visit(candidate) else { continue }
                let d = distance(query, candidate)
                if scratch.results.count < ef || d < bound {
                    scratch.candidates.push(Neighbor(distance: d, id: candidate))
                    if deleted[Int(candidate)] == 0 { scratch.results.push(Neighbor(distance: d, id: candidate)) }
                    if scratch.results.count > ef { scratch.results.pop() }
                    if !scratch.results.isEmpty { bound = scratch.results.top.distance }
                }
            }
        }
        return scratch.results.drainSorted()
    }

    // MARK: int8 scalar quantization

    /// Whether searches walk the graph on int8 codes (and rescore the candidates with floats).
    public var isQuantized: Bool { storage.withReadLock { codes != nil } }

    /// Learns per-dimension ranges from the live vectors and encodes every node in one byte per
    /// dimension; later inserts are encoded as they come. Searches then compute the walk's
    /// distances on the codes (a quarter of the memory traffic) and rescore the `ef` candidates
    /// with the full vectors. False when there is nothing to learn from.
    @discardableResult
    public func quantize() -> Bool {
        storage.withWriteLock {
            let nodes = state.withLock { nodeCount }
            var low = [Float](repeating: .infinity, count: dimension), high = [Float](repeating: -.infinity, count: dimension)
            var seen = 0
            for node in 0..<nodes where deleted[node] == 0 {
                let values = vector(UInt32(node))
                for index in 0..<dimension {
                    low[index] = min(low[index], values[index])
                    high[index] = max(high[index], values[index])
                }
                seen += 1
            }
            guard seen > 0 else { return false }
            setQuantization(minimum: low, step: zip(low, high).map { max(($1 - $0) / 255, 1e-12) })
            return true
        }
    }

    /// Installs quantization parameters and encodes every node. Under the storage write lock.
    func setQuantization(minimum: [Float], step: [Float]) {
        codeMinimum = minimum
        codeStep = step
        codes?.deallocate()
        codes = .allocate(capacity: capacity * dimension)
        for node in 0..<state.withLock({ nodeCount }) { encode(UInt32(node)) }
    }

    /// Encodes one node's vector into its codes (values outside the learned range clamp).
    func encode(_ node: UInt32) {
        guard let codes else { return }
        let values = vector(node)
        let target = codes + Int(node) * dimension
        for index in 0..<dimension {
            let code = ((values[index] - codeMinimum[index]) / codeStep[index]).rounded()
            target[index] = UInt8(max(0, min(255, code)))
        }
    }

    static func normalize(_ vector: UnsafeMutablePointer<Float>, _ count: Int) {
        let norm = Kernels.dot(vector, vector, count).squareRoot()
        guard norm > 0 else { return }
        let scale = 1 / norm
        for index in 0..<count { vector[index] *= scale }
    }
}
