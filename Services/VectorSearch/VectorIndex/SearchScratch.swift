import Foundation

/// A node and its distance to the query.
public struct Neighbor: Sendable, Hashable {
    public var distance: Float
    public var id: UInt32

    @inline(__always) public init(distance: Float, id: UInt32) {
        self.distance = distance
        self.id = id
    }
}

/// A binary heap of neighbours: `nearestFirst` pops the nearest (the candidate queue of a
/// walk), otherwise the farthest (the bounded result set). Storage is kept between searches.
struct NeighborHeap {
    private(set) var items: [Neighbor] = []
    let nearestFirst: Bool

    init(nearestFirst: Bool, capacity: Int = 64) {
        self.nearestFirst = nearestFirst
        items.reserveCapacity(capacity)
    }

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }
    var top: Neighbor { items[0] }

    mutating func removeAll() { items.removeAll(keepingCapacity: true) }

    @inline(__always)
    private static func before(_ a: Neighbor, _ b: Neighbor, _ nearestFirst: Bool) -> Bool {
        nearestFirst ? a.distance < b.distance : a.distance > b.distance
    }

    @inline(__always)
    mutating func push(_ item: Neighbor) {
        items.append(item)
        var child = items.count - 1
        let nearest = nearestFirst
        items.withUnsafeMutableBufferPointer { buffer in
            while child > 0 {
                let parent = (child - 1) >> 1
                guard Self.before(buffer[child], buffer[parent], nearest) else { break }
                buffer.swapAt(child, parent)
                child = parent
            }
        }
    }

    @inline(__always)
    @discardableResult
    mutating func pop() -> Neighbor {
        let first = items[0]
        let last = items.removeLast()
        guard !items.isEmpty else { return first }
        let nearest = nearestFirst
        items.withUnsafeMutableBufferPointer { buffer in
            buffer[0] = last
            var parent = 0
            let count = buffer.count
            while true {
                let left = 2 &* parent &+ 1, right = left &+ 1
                var best = parent
                if left < count, Self.before(buffer[left], buffer[best], nearest) { best = left }
                if right < count, Self.before(buffer[right], buffer[best], nearest) { best = right }
                if best == parent { break }
                buffer.swapAt(parent, best)
                parent = best
            }
        }
        return first
    }

    /// The items nearest first (empties the heap).
    mutating func drainSorted() -> [Neighbor] {
        var result = items
        result.sort { $0.distance < $1.distance || ($0.distance == $1.distance && $0.id < $1.id) }
        removeAll()
        return result
    }
}

/// What one search needs besides the index: the visited marks (an epoch per node, so clearing
/// is one increment) and the two heaps. Searches borrow one from a pool, as hnswlib does.
final class SearchScratch {
    private(set) var marks: UnsafeMutablePointer<UInt16>
    private(set) var capacity: Int
    private var epoch: UInt16 = 0
    var candidates = NeighborHeap(nearestFirst: true, capacity: 256)
    var results = NeighborHeap(nearestFirst: false, capacity: 256)
    /// A copy of one node's links, read before walking them.
    var neighbors: [UInt32] = []
    /// The query, normalised when the metric wants it, in aligned storage.
    var query: [Float] = []
    /// The query prepared for int8 codes (scaled by the steps, or shifted by the minimums).
    var codedQuery: [Float] = []

    init(capacity: Int) {
        self.capacity = max(capacity, 1)
        marks = .allocate(capacity: self.capacity)
        marks.initialize(repeating: 0, count: self.capacity)
    }

    deinit { marks.deallocate() }

    /// Starts a new search over `nodes` nodes: every node unvisited.
    @inline(__always)
    func begin(nodes: Int) {
        if nodes > capacity {
            marks.deallocate()
            capacity = max(nodes, capacity * 2)
            marks = .allocate(capacity: capacity)
            marks.initialize(repeating: 0, count: capacity)
            epoch = 0
        }
        epoch &+= 1
        if epoch == 0 {
            marks.update(repeating: 0, count: capacity)
            epoch = 1
        }
        candidates.removeAll()
        results.removeAll()
    }

    /// Marks `node` visited; false when it already was.
    @inline(__always)
    func visit(_ node: UInt32) -> Bool {
        let index = Int(node)
        if marks[index] == epoch { return false }
        marks[index] = epoch
        return true
    }
}

/// Scratch spaces reused across searches (one per concurrent search at most).
final class ScratchPool: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [SearchScratch] = []

    func take(nodes: Int) -> SearchScratch {
        lock.lock()
        let scratch = free.popLast()
        lock.unlock()
        let result = scratch ?? SearchScratch(capacity: nodes)
        result.begin(nodes: nodes)
        return result
    }

    func give(_ scratch: SearchScratch) {
        lock.lock()
        free.append(scratch)
        lock.unlock()
    }
}
