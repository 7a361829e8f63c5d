import CPrefetch
import Foundation

extension HNSWIndex {
    /// The `k` nearest live nodes to `query`, nearest first, exploring `ef` candidates (at least
    /// `k`) on level 0. `filter` is applied during the walk: nodes it rejects are walked through
    /// but never returned, and the walk goes on until `ef` accepted nodes are found or the graph
    /// is exhausted.
    public func search(_ query: [Float], k: Int, ef: Int, filter: ((UInt32) -> Bool)? = nil) -> [Neighbor] {
        precondition(query.count == dimension, "query has \(query.count) values, the index \(dimension)")
        guard k > 0 else { return [] }
        return storage.withReadLock {
            let (entry, top, nodes) = state.withLock { (entryPoint, maxLevel, nodeCount) }
            guard entry != Self.none else { return [] }
            let scratch = self.scratch.take(nodes: max(nodes, capacity))
            defer { self.scratch.give(scratch) }
            scratch.query = query
            if metric == .cosine { scratch.query.withUnsafeMutableBufferPointer { Self.normalize($0.baseAddress!, dimension) } }
            return scratch.query.withUnsafeBufferPointer { buffer -> [Neighbor] in
                let q = buffer.baseAddress!
                var current = entry
                var currentDistance = distance(q, current)
                if top > 0 {
                    for level in stride(from: top, to: 0, by: -1) {
                        (current, currentDistance) = greedy(q, from: current, distance: currentDistance, level: level, locking: false)
                    }
                }
                guard let codes else {
                    let found = searchBase(q, entry: current, entryDistance: currentDistance, ef: max(ef, k), filter: filter, scratch: scratch, codes: nil, codeBase: 0)
                    return Array(found.prefix(k))
                }
                // Quantized: walk on codes, then rescore the candidates with the full vectors.
                var codeBase: Float = 0
                if metric == .euclidean {
                    scratch.codedQuery = (0..<dimension).map { q[$0] - codeMinimum[$0] }
                } else {
                    scratch.codedQuery = (0..<dimension).map { q[$0] * codeStep[$0] }
                    for index in 0..<dimension { codeBase += q[index] * codeMinimum[index] }
                }
                let candidates = searchBase(q, entry: current, entryDistance: currentDistance, ef: max(ef, k), filter: filter, scratch: scratch, codes: codes, codeBase: codeBase)
                var rescored = candidates.map { Neighbor(distance: distance(q, $0.id), id: $0.id) }
                rescored.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.id < $1.id) }
                return Array(rescored.prefix(k))
            }
        }
    }

    /// Level-0 best-first search for queries: no locks, no allocation beyond the result.
    private func searchBase(_ query: UnsafePointer<Float>, entry: UInt32, entryDistance: Float, ef: Int, filter: ((UInt32) -> Bool)?, scratch: SearchScratch,
                            codes: UnsafeMutablePointer<UInt8>?, codeBase: Float) -> [Neighbor] {
        if scratch.neighbors.count < maxLinks0 { scratch.neighbors = [UInt32](repeating: 0, count: maxLinks0) }
        @inline(__always) func accepted(_ node: UInt32) -> Bool {
            deleted[Int(node)] == 0 && (filter?(node) ?? true)
        }
        let dimension = self.dimension
        let euclidean = metric == .euclidean
        return scratch.codedQuery.withUnsafeBufferPointer { coded in
        let steps = codeStep.withUnsafeBufferPointer { $0.baseAddress! }
        @inline(__always) func measure(_ node: UInt32) -> Float {
            guard let codes else { return distance(query, node) }
            let code = UnsafePointer(codes + Int(node) &* dimension)
            if euclidean { return Kernels.squaredL2Codes(coded.baseAddress!, steps, code, dimension) }
            return kernelOffset + kernelScale * (codeBase + Kernels.dotCodes(coded.baseAddress!, code, dimension))
        }
        let entryMeasure = codes == nil ? entryDistance : measure(entry)
        let first = Neighbor(distance: entryMeasure, id: entry)
        _ = scratch.visit(entry)
        scratch.candidates.push(first)
        if accepted(entry) { scratch.results.push(first) }
        var bound = scratch.results.isEmpty ? Float.infinity : entryMeasure
        let limit = maxLinks0
        return scratch.neighbors.withUnsafeMutableBufferPointer { neighbors in
            while !scratch.candidates.isEmpty {
                let current = scratch.candidates.top
                if current.distance > bound && scratch.results.count >= ef { break }
                scratch.candidates.pop()
                let list = links0 + Int(current.id) &* linkWords0
                let count = min(Int(list[0]), limit)
                // Keep only unvisited neighbours, and ask the cache for their vectors before the
                // distances need them (independent loads overlap; the walk is memory-bound).
                var fresh = 0
                for index in 0..<count {
                    let candidate = list[1 &+ index]
                    guard scratch.visit(candidate) else { continue }
                    neighbors[fresh] = candidate
                    fresh &+= 1
                    if let codes { kb_prefetch(codes + Int(candidate) &* dimension) } else { kb_prefetch(vectors + Int(candidate) &* dimension) }
                }
                if fresh > 0 { kb_prefetch(links0 + Int(neighbors[0]) &* linkWords0) }
                for index in 0..<fresh {
                    let candidate = neighbors[index]
                    if index &+ 1 < fresh {
                        // The rest of the next vector (its first line was asked for above).
                        if let codes {
                            let next = codes + Int(neighbors[index &+ 1]) &* dimension
                            var offset = 64
                            while offset < dimension {
                                kb_prefetch(next + offset)
                                offset &+= 64
                            }
                        } else {
                            let next = vectors + Int(neighbors[index &+ 1]) &* dimension
                            var offset = 16
                            while offset < dimension {
                                kb_prefetch(next + offset)
                                offset &+= 16
                            }
                        }
                    }
                    let d = measure(candidate)
                    if scratch.results.count < ef || d < bound {
                        scratch.candidates.push(Neighbor(distance: d, id: candidate))
                        // Its links are read if it is expanded: ask for them now.
                        kb_prefetch(links0 + Int(candidate) &* linkWords0)
                        if accepted(candidate) {
                            scratch.results.push(Neighbor(distance: d, id: candidate))
                            if scratch.results.count > ef { scratch.results.pop() }
                            bound = scratch.results.top.distance
                        }
                    }
                }
            }
            return scratch.results.drainSorted()
        }
        }
    }

    /// The exact `k` nearest live nodes accepted by `filter`, by scanning every node.
    public func exactSearch(_ query: [Float], k: Int, filter: ((UInt32) -> Bool)? = nil) -> [Neighbor] {
        scan(query, k: k, candidates: nil, filter: filter)
    }

    /// Exact search restricted to `candidates` (a very selective filter's matches).
    public func exactSearch(_ query: [Float], k: Int, among candidates: [UInt32]) -> [Neighbor] {
        scan(query, k: k, candidates: candidates, filter: nil)
    }

    /// The brute-force scan behind both exact searches: `candidates`, or every node.
    private func scan(_ query: [Float], k: Int, candidates: [UInt32]?, filter: ((UInt32) -> Bool)?) -> [Neighbor] {
        precondition(query.count == dimension, "query has \(query.count) values, the index \(dimension)")
        guard k > 0 else { return [] }
        var q = query
        if metric == .cosine { q.withUnsafeMutableBufferPointer { Self.normalize($0.baseAddress!, dimension) } }
        return storage.withReadLock {
            let nodes = state.withLock { nodeCount }
            var heap = NeighborHeap(nearestFirst: false, capacity: k + 1)
            q.withUnsafeBufferPointer { buffer in
                func consider(_ id: UInt32) {
                    guard Int(id) < nodes, deleted[Int(id)] == 0, filter?(id) ?? true else { return }
                    let d = distance(buffer.baseAddress!, id)
                    if heap.count < k {
                        heap.push(Neighbor(distance: d, id: id))
                    } else if d < heap.top.distance {
                        heap.pop()
                        heap.push(Neighbor(distance: d, id: id))
                    }
                }
                if let candidates {
                    for id in candidates { consider(id) }
                } else {
                    for node in 0..<nodes { consider(UInt32(node)) }
                }
            }
            return heap.drainSorted()
        }
    }

    // MARK: Deletes

    /// Marks `node` deleted: it is no longer returned but still walked through until `repair()`.
    /// False when it was already deleted or is not a node.
    @discardableResult
    public func remove(_ node: UInt32) -> Bool {
        storage.withReadLock {
            state.withLock {
                guard Int(node) < nodeCount, deleted[Int(node)] == 0 else { return false }
                deleted[Int(node)] = 1
                deletedCount += 1
                return true
            }
        }
    }

    /// Relinks every node that points at a deleted node (its candidates: its live links plus the
    /// deleted node's live links, chosen with the heuristic), detaches the deleted nodes and frees
    /// their slots for reuse. Runs exclusively (searches and inserts wait). Returns the number of
    /// slots freed.
    @discardableResult
    public func repair() -> Int {
        storage.withWriteLock {
            state.lock()
            defer { state.unlock() }
            let free = Set(freeSlots)
            var dead = Set<UInt32>()
            for node in 0..<nodeCount where deleted[node] != 0 && !free.contains(UInt32(node)) { dead.insert(UInt32(node)) }
            guard !dead.isEmpty else { return 0 }
            for node in 0..<nodeCount where deleted[node] == 0 {
                let id = UInt32(node)
                for level in 0...Int(levels[node]) {
                    let list = links(id, level: level)
                    let count = Int(list[0])
                    var touched = false
                    for index in 0..<count where dead.contains(list[1 + index]) { touched = true; break }
                    guard touched else { continue }
                    var ids = Set<UInt32>()
                    for index in 0..<count {
                        let other = list[1 + index]
                        if !dead.contains(other) { ids.insert(other); continue }
                        guard Int(levels[Int(other)]) >= level else { continue }
                        let second = links(other, level: level)
                        for j in 0..<Int(second[0]) {
                            let candidate = second[1 + j]
                            if candidate != id && deleted[Int(candidate)] == 0 { ids.insert(candidate) }
                        }
                    }
                    let base = UnsafePointer(vector(id))
                    let sorted = ids.map { Neighbor(distance: distance(base, $0), id: $0) }.sorted { $0.distance < $1.distance }
                    let kept = selectNeighbors(sorted, maximum: level == 0 ? maxLinks0 : maxLinks)
                    for (index, item) in kept.enumerated() { list[1 + index] = item.id }
                    list[0] = UInt32(kept.count)
                }
            }
            for node in dead {
                links(node, level: 0)[0] = 0
                upper[Int(node)]?.deallocate()
                upper[Int(node)] = nil
                levels[Int(node)] = 0
                freeSlots.append(node)
            }
            deletedCount -= dead.count
            if dead.contains(entryPoint) {
                entryPoint = Self.none
                maxLevel = -1
                for node in 0..<nodeCount where deleted[node] == 0 && Int(levels[node]) > maxLevel {
                    maxLevel = Int(levels[node])
                    entryPoint = UInt32(node)
                }
            }
            return dead.count
        }
    }
}
