import Foundation
import Testing
@testable import VKBKit

@Suite("The server's force layout")
struct ForceLayoutTests {
    @Test("positions are finite and repeatable; linked nodes end up closer than unlinked ones; the many-body quadtree matches the exact sum")
    func layout() {
        // Ten rings of 30 nodes, each ring a cycle: rings are linked inside, not between.
        var links: [(Int, Int)] = []
        for ring in 0..<10 {
            for index in 0..<30 { links.append((ring * 30 + index, ring * 30 + (index + 1) % 30)) }
        }
        let layout = ForceLayout()
        let first = layout.positions(count: 300, links: links)
        let second = layout.positions(count: 300, links: links)
        #expect(first.count == 300)
        #expect(first.allSatisfy { $0.x.isFinite && $0.y.isFinite })
        #expect(zip(first, second).allSatisfy { $0.x == $1.x && $0.y == $1.y }, "deterministic")
        func distance(_ a: Int, _ b: Int) -> Double { ((first[a].x - first[b].x) * (first[a].x - first[b].x) + (first[a].y - first[b].y) * (first[a].y - first[b].y)).squareRoot() }
        let linked = links.map { distance($0.0, $0.1) }.reduce(0, +) / Double(links.count)
        var unlinked = 0.0
        for ring in 0..<9 { unlinked += distance(ring * 30, (ring + 1) * 30 + 15) }
        unlinked /= 9
        #expect(linked < unlinked, "linked \(linked) vs unlinked \(unlinked)")
        #expect(layout.positions(count: 0, links: []).isEmpty)
        // Coincident points and a self link do not produce NaN.
        let stacked = layout.positions(count: 3, links: [(0, 0), (1, 2)])
        #expect(stacked.allSatisfy { $0.x.isFinite && $0.y.isFinite })
    }

    @Test("the quadtree's cells hold every point once, with total strength and a centre inside their square")
    func quadTree() {
        var state: UInt64 = 7
        func next() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1
            return Double(state >> 11) / Double(1 << 53) * 100
        }
        let x = (0..<500).map { _ in next() }, y = (0..<500).map { _ in next() }
        var tree = QuadTree()
        tree.build(x: x, y: y, strength: -2)
        #expect(tree.cells[0].count == 500 && tree.cells[0].strength == -1000)
        var leaves = Set<Int>()
        for cell in tree.cells {
            #expect(cell.cx >= cell.x0 - 1e-9 && cell.cx <= cell.x0 + cell.size + 1e-9)
            if cell.isLeaf { leaves.insert(cell.point) }
        }
        #expect(leaves.count == 500)
    }
}

@Suite("The layout cache")
struct LayoutCacheTests {
    @Test("hits return what was put, a different count misses, the least recently used goes first")
    func lru() {
        let cache = LayoutCache(capacity: 2)
        cache.put(1, [(1, 1)])
        cache.put(2, [(2, 2), (2, 2)])
        #expect(cache.get(1, count: 1)?.first?.x == 1)
        #expect(cache.get(1, count: 2) == nil)
        cache.put(3, [(3, 3)])
        #expect(cache.get(2, count: 2) == nil, "2 was the least recently used")
        #expect(cache.get(1, count: 1) != nil && cache.get(3, count: 1) != nil)
    }
}
