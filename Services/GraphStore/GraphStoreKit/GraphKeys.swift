import KBKnowledge
import KBProto

/// The graph store's key layout in LevelDB. Every read is a range scan over one of these prefixes.
///
/// A key is a kind byte, the team, a 0 byte, then the kind's components separated by 0 bytes
/// (names, types and teams never contain 0: the rules reject control characters). Numbers are
/// big-endian so byte order is numeric order.
///
/// | kind | key | value |
/// |---|---|---|
/// | `E` entity | team · name | `kb.graph.v1.Entity` |
/// | `O` outbound adjacency (the relation record) | team · from · type · to | `kb.graph.v1.Relation` |
/// | `I` inbound adjacency | team · to · type · from | empty |
/// | `Y` entity-type index | team · entityType · name | empty |
/// | `R` relation-type index | team · relationType · from · to | empty |
/// | `M` modified-time index | team · be64(last_modified_ms) name | empty |
/// | `X` text index | team · token · name | be16 name hits, be16 observation hits |
/// | `C` counters | team · counter | be64 |
/// | `G` significance index | team · (255 − significance) · name | source byte · entityType |
/// | `Z` store metadata | 0 · `format` | the key layout's version |
/// | `Z` feed position | 0 · `feed_head`, 0 · `feed_first` | be64 newest, oldest sequence number held |
/// | `F` change feed | 0 · be64(seq) | `kb.graph.v1.Change` |
///
/// The team index is the `E` prefix of a team; the counters make statistics and team lists a
/// scan of a few keys per team.
enum GraphKey {
    static let entity = UInt8(ascii: "E")
    static let outbound = UInt8(ascii: "O")
    static let inbound = UInt8(ascii: "I")
    static let entityType = UInt8(ascii: "Y")
    static let relationType = UInt8(ascii: "R")
    static let modified = UInt8(ascii: "M")
    static let text = UInt8(ascii: "X")
    static let counter = UInt8(ascii: "C")
    static let significance = UInt8(ascii: "G")
    static let meta = UInt8(ascii: "Z")
    static let feed = UInt8(ascii: "F")

    /// The key layout's version: 2 added the significance index.
    static let formatVersion: UInt8 = 2
    static let formatKey: [UInt8] = make(meta, "", "format")

    /// The change feed's newest sequence number, written in the batch of every write.
    static let feedHeadKey: [UInt8] = make(meta, "", "feed_head")
    /// The oldest sequence number the feed holds (absent: 1), written when the window is trimmed.
    static let feedFirstKey: [UInt8] = make(meta, "", "feed_first")
    /// Every change of the feed, in sequence order (the feed is not per team: one sequence).
    static let feedPrefix: [UInt8] = teamPrefix(feed, "")

    /// The feed entry of `seq`.
    static func feed(_ seq: Int64) -> [UInt8] { feedPrefix + bigEndian(UInt64(max(0, seq))) }

    /// Every index kind (all but the records and counters), for verify.
    static let indexKinds: [UInt8] = [inbound, entityType, relationType, modified, text, significance]

    /// `kind` · team · 0: every key of one kind in one team.
    static func teamPrefix(_ kind: UInt8, _ team: String) -> [UInt8] {
        var key: [UInt8] = [kind]
        key.reserveCapacity(team.utf8.count + 64)
        key += team.utf8
        key.append(0)
        return key
    }

    /// `kind` · team · 0 · parts joined by 0.
    static func make(_ kind: UInt8, _ team: String, _ parts: String...) -> [UInt8] {
        var key = teamPrefix(kind, team)
        for (index, part) in parts.enumerated() {
            if index > 0 { key.append(0) }
            key += part.utf8
        }
        return key
    }

    static func entity(_ team: String, _ name: String) -> [UInt8] { make(entity, team, name) }
    static func outbound(_ team: String, _ from: String, _ type: String, _ to: String) -> [UInt8] { make(outbound, team, from, type, to) }
    static func inbound(_ team: String, _ to: String, _ type: String, _ from: String) -> [UInt8] { make(inbound, team, to, type, from) }
    static func entityType(_ team: String, _ type: String, _ name: String) -> [UInt8] { make(entityType, team, type, name) }
    static func relationType(_ team: String, _ type: String, _ from: String, _ to: String) -> [UInt8] { make(relationType, team, type, from, to) }
    static func text(_ team: String, _ token: String, _ name: String) -> [UInt8] { make(text, team, token, name) }
    static func counter(_ team: String, _ name: String) -> [UInt8] { make(counter, team, name) }

    static func modified(_ team: String, _ milliseconds: Int64, _ name: String) -> [UInt8] {
        var key = teamPrefix(modified, team)
        key += bigEndian(UInt64(max(0, milliseconds)))
        key += name.utf8
        return key
    }

    /// The significance index entry: most significant first, then by name.
    static func significance(_ team: String, _ significance: Int32, _ name: String) -> [UInt8] {
        var key = teamPrefix(Self.significance, team)
        key.append(255 - UInt8(clamping: max(0, significance)))
        key += name.utf8
        return key
    }

    /// The significance entry's value: what the drawing filters look at, without the record.
    static func significanceValue(_ entity: Entity) -> [UInt8] {
        // The source as the filters see it: anything but automatic counts as manual.
        [UInt8(clamping: Kb_Graph_V1_Source(entity.source).rawValue)] + Array(entity.entityType.utf8)
    }

    /// Everything of `name` in `kind`: `kind` · team · name · 0 (adjacency of one entity).
    static func adjacencyPrefix(_ kind: UInt8, _ team: String, _ name: String) -> [UInt8] {
        var key = make(kind, team, name)
        key.append(0)
        return key
    }

    /// The team of any key.
    static func team(of key: [UInt8]) -> String? {
        guard let end = key.dropFirst().firstIndex(of: 0) else { return nil }
        return String(decoding: key[1..<end], as: UTF8.self)
    }

    /// The 0-separated components after a prefix.
    static func components(_ key: [UInt8], after prefix: [UInt8]) -> [String] {
        key.dropFirst(prefix.count).split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }

    // MARK: Counters

    static let entitiesCounter = "E"
    static let relationsCounter = "R"
    static let activityCounter = "A"
    static func typeCounter(_ type: String) -> String { "t\u{0}\(type)" }
    static func sourceCounter(_ source: String) -> String { "s\u{0}\(source)" }
    static func relationTypeCounter(_ type: String) -> String { "r\u{0}\(type)" }

    // MARK: Numbers

    static func bigEndian(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) }
    }

    static func readBigEndian(_ bytes: some Collection<UInt8>) -> UInt64 {
        bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    static func int64Value(_ value: Int64) -> [UInt8] { bigEndian(UInt64(bitPattern: value)) }
    static func int64(_ bytes: [UInt8]?) -> Int64 {
        guard let bytes, bytes.count == 8 else { return 0 }
        return Int64(bitPattern: readBigEndian(bytes))
    }

    /// A double as 8 bytes whose byte order is the numbers' order.
    static func orderedDouble(_ value: Double) -> [UInt8] {
        let bits = value.bitPattern
        return bigEndian(value.sign == .minus ? ~bits : bits | (1 << 63))
    }
}
