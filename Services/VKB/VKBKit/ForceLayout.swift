import Dispatch
import Foundation
import Synchronization

/// A force-directed layout computed on the server, so the page can draw a large graph at once
/// instead of running thousands of layout ticks in the browser.
///
/// The forces are d3-force's (the page runs the same ones when a user drags a node): links as
/// springs with d3's bias and strength `1 / min(degree)`, many-body repulsion through a
/// Barnes–Hut quadtree (`theta`), weak pulls towards the origin on x and y, velocity decay, and
/// alpha decaying from 1 to `alphaMin` over `iterations` ticks. Initial positions are d3's
/// phyllotaxis, so the result is deterministic.
public struct ForceLayout: Sendable {
    public var iterations = 120
    public var linkDistance = 18.0
    public var chargeStrength = -12.0
    public var theta = 1.2
    public var distanceMax = 150.0
    public var centerStrength = 0.04
    public var velocityDecay = 0.5

    public init() {}

    /// Positions for `count` nodes joined by `links` (index pairs; self links are ignored).
    public func positions(count: Int, links: [(Int, Int)]) -> [(x: Double, y: Double)] {
        guard count > 0 else { return [] }
        var x = [Double](repeating: 0, count: count), y = x, vx = x, vy = x
        let angle = Double.pi * (3 - 5.0.squareRoot())
        for index in 0..<count {
            let radius = 10 * (0.5 + Double(index)).squareRoot()
            x[index] = radius * cos(Double(index) * angle)
            y[index] = radius * sin(Double(index) * angle)
        }
        let edges = links.filter { $0.0 != $0.1 && $0.0 >= 0 && $0.1 >= 0 && $0.0 < count && $0.1 < count }
        var degree = [Int](repeating: 0, count: count)
        for (a, b) in edges { degree[a] += 1; degree[b] += 1 }
        let bias = edges.map { Double(degree[$0.0]) / Double(degree[$0.0] + degree[$0.1]) }
        let strength = edges.map { 1 / Double(min(degree[$0.0], degree[$0.1])) }

        var alpha = 1.0
        let alphaMin = 0.001
        let alphaDecay = 1 - pow(alphaMin, 1 / Double(max(1, iterations)))
        var tree = QuadTree()
        let distanceMax2 = distanceMax * distanceMax
        for _ in 0..<iterations {
            alpha += (0 - alpha) * alphaDecay
            // Links.
            for (index, (s, t)) in edges.enumerated() {
                var dx = x[t] + vx[t] - x[s] - vx[s]
                var dy = y[t] + vy[t] - y[s] - vy[s]
                if dx == 0 { dx = 1e-6 }
                if dy == 0 { dy = 1e-6 }
                let length = (dx * dx + dy * dy).squareRoot()
                let pull = (length - linkDistance) / length * alpha * strength[index]
                dx *= pull
                dy *= pull
                let b = bias[index]
                vx[t] -= dx * b
                vy[t] -= dy * b
                vx[s] += dx * (1 - b)
                vy[s] += dy * (1 - b)
            }
            // Many-body, Barnes–Hut.
            tree.build(x: x, y: y, strength: chargeStrength)
            let theta2 = theta * theta
            let alphaNow = alpha
            // Each node's force is independent of the others': both cores share the nodes.
            let parts = count >= 1000 ? 2 : 1
            let chunk = (count + parts - 1) / parts
            tree.cells.withUnsafeBufferPointer { cells in
                x.withUnsafeBufferPointer { xs in
                    y.withUnsafeBufferPointer { ys in
                        vx.withUnsafeMutableBufferPointer { vxs in
                            vy.withUnsafeMutableBufferPointer { vys in
                                let (cells, xs, ys, vxs, vys) = (UnsafeSendable(cells), UnsafeSendable(xs), UnsafeSendable(ys), UnsafeSendable(vxs), UnsafeSendable(vys))
                                DispatchQueue.concurrentPerform(iterations: parts) { part in
                                    var stack: [Int32] = []
                                    stack.reserveCapacity(256)
                                    for index in (part * chunk)..<min(count, (part + 1) * chunk) {
                                        var fx = 0.0, fy = 0.0
                                        let px = xs.value[index], py = ys.value[index]
                                        stack.removeAll(keepingCapacity: true)
                                        stack.append(0)
                                        while let top = stack.popLast() {
                                            let cell = cells.value[Int(top)]
                                            // A cell wholly beyond distanceMax exerts nothing: skip it and all below.
                                            let ox = max(cell.x0 - px, 0, px - cell.x0 - cell.size), oy = max(cell.y0 - py, 0, py - cell.y0 - cell.size)
                                            if ox * ox + oy * oy >= distanceMax2 { continue }
                                            let dx = cell.cx - px, dy = cell.cy - py
                                            var l = dx * dx + dy * dy
                                            let leaf = cell.isLeaf
                                            if leaf || cell.size * cell.size / theta2 < l {
                                                if leaf && cell.point == index && cell.count == 1 { continue }
                                                if l < distanceMax2 {
                                                    if l < 1 { l = (l + 1).squareRoot() }
                                                    let weight = leaf && cell.point == index ? cell.strength - chargeStrength : cell.strength
                                                    fx += dx * weight * alphaNow / l
                                                    fy += dy * weight * alphaNow / l
                                                }
                                                continue
                                            }
                                            let (a, b, c, d) = cell.children
                                            if a >= 0 { stack.append(a) }
                                            if b >= 0 { stack.append(b) }
                                            if c >= 0 { stack.append(c) }
                                            if d >= 0 { stack.append(d) }
                                        }
                                        vxs.value[index] += fx
                                        vys.value[index] += fy
                                    }
                                }
                            }
                        }
                    }
                }
            }
            // Centre, then move.
            for index in 0..<count {
                vx[index] += (0 - x[index]) * centerStrength * alpha
                vy[index] += (0 - y[index]) * centerStrength * alpha
                vx[index] *= 1 - velocityDecay
                vy[index] *= 1 - velocityDecay
                x[index] += vx[index]
                y[index] += vy[index]
            }
        }
        return (0..<count).map { (x[$0], y[$0]) }
    }
}

/// The last few layouts, so reloading the page (or several people opening it) does not lay the
/// same graph out again. Keyed by a hash of the nodes and links in order; least recently used out.
final class LayoutCache: Sendable {
    private let entries = Mutex<[(key: Int, positions: [(x: Double, y: Double)])]>([])
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    func get(_ key: Int, count: Int) -> [(x: Double, y: Double)]? {
        entries.withLock { entries in
            guard let index = entries.firstIndex(where: { $0.key == key && $0.positions.count == count }) else { return nil }
            let entry = entries.remove(at: index)
            entries.append(entry)
            return entry.positions
        }
    }

    func put(_ key: Int, _ positions: [(x: Double, y: Double)]) {
        entries.withLock { entries in
            entries.removeAll { $0.key == key }
            entries.append((key, positions))
            if entries.count > capacity { entries.removeFirst(entries.count - capacity) }
        }
    }
}

/// A quadtree over points with each cell's total strength and weighted centre.
struct QuadTree {
    struct Cell {
        var cx = 0.0, cy = 0.0
        var strength = 0.0
        var x0 = 0.0, y0 = 0.0
        var size = 0.0
        var count = 0
        var point = -1
        var children: (Int32, Int32, Int32, Int32) = (-1, -1, -1, -1)
        var isLeaf: Bool { children.0 < 0 && children.1 < 0 && children.2 < 0 && children.3 < 0 }
    }

    var cells: [Cell] = []
    private var order: [Int] = []
    private var scratch: [Int] = []

    mutating func build(x: [Double], y: [Double], strength: Double) {
        cells.removeAll(keepingCapacity: true)
        guard !x.isEmpty else { return }
        var minX = x[0], maxX = x[0], minY = y[0], maxY = y[0]
        for index in x.indices {
            minX = min(minX, x[index]); maxX = max(maxX, x[index])
            minY = min(minY, y[index]); maxY = max(maxY, y[index])
        }
        let size = max(maxX - minX, maxY - minY, 1e-9)
        order = Array(x.indices)
        scratch = order
        _ = make(x: x, y: y, strength: strength, range: 0..<order.count, x0: minX, y0: minY, size: size, depth: 0)
    }

    /// Builds the cell for `order[range]` in the square at (x0, y0) of side `size`; returns its index.
    private mutating func make(x: [Double], y: [Double], strength: Double, range: Range<Int>, x0: Double, y0: Double, size: Double, depth: Int) -> Int32 {
        let index = cells.count
        cells.append(Cell())
        var cell = Cell()
        cell.size = size
        cell.x0 = x0
        cell.y0 = y0
        cell.count = range.count
        if range.count == 1 || depth >= 40 {
            // A leaf: one point, or coincident ones.
            var sx = 0.0, sy = 0.0
            for slot in range { sx += x[order[slot]]; sy += y[order[slot]] }
            cell.cx = sx / Double(range.count)
            cell.cy = sy / Double(range.count)
            cell.strength = strength * Double(range.count)
            cell.point = order[range.lowerBound]
            cells[index] = cell
            return Int32(index)
        }
        let half = size / 2, midX = x0 + half, midY = y0 + half
        // Partition order[range] into four quadrants (through scratch), without allocating.
        var c0 = 0, c1 = 0, c2 = 0
        for slot in range {
            let point = order[slot]
            switch (x[point] >= midX ? 1 : 0) + (y[point] >= midY ? 2 : 0) {
            case 0: c0 += 1
            case 1: c1 += 1
            case 2: c2 += 1
            default: break
            }
        }
        let b0 = range.lowerBound, b1 = b0 + c0, b2 = b1 + c1, b3 = b2 + c2, b4 = range.upperBound
        var n0 = b0, n1 = b1, n2 = b2, n3 = b3
        for slot in range {
            let point = order[slot]
            switch (x[point] >= midX ? 1 : 0) + (y[point] >= midY ? 2 : 0) {
            case 0: scratch[n0] = point; n0 += 1
            case 1: scratch[n1] = point; n1 += 1
            case 2: scratch[n2] = point; n2 += 1
            default: scratch[n3] = point; n3 += 1
            }
        }
        for slot in range { order[slot] = scratch[slot] }
        var children: (Int32, Int32, Int32, Int32) = (-1, -1, -1, -1)
        var sx = 0.0, sy = 0.0, total = 0.0
        let spans = [(b0, b1), (b1, b2), (b2, b3), (b3, b4)]
        for quadrant in 0..<4 {
            let (lower, upper) = spans[quadrant]
            guard lower < upper else { continue }
            let child = make(x: x, y: y, strength: strength, range: lower..<upper,
                             x0: quadrant & 1 == 1 ? midX : x0, y0: quadrant & 2 == 2 ? midY : y0, size: half, depth: depth + 1)
            switch quadrant {
            case 0: children.0 = child
            case 1: children.1 = child
            case 2: children.2 = child
            default: children.3 = child
            }
            let c = cells[Int(child)]
            sx += c.cx * abs(c.strength)
            sy += c.cy * abs(c.strength)
            total += abs(c.strength)
        }
        cell.children = children
        cell.strength = strength * Double(range.count)
        cell.cx = total > 0 ? sx / total : x0 + half
        cell.cy = total > 0 ? sy / total : y0 + half
        cells[index] = cell
        return Int32(index)
    }
}

/// A buffer pointer handed to `concurrentPerform`, whose iterations touch disjoint elements.
private struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
