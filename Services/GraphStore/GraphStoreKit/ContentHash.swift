import KBKnowledge

/// The content hash of an entity, carried by the change feed's upserts so a follower (the
/// indexer) skips entities whose content it already has.
///
/// It is the SHA-256 of a canonical encoding, stable across processes and versions (never of
/// the protobuf record: swift-protobuf writes maps in hash order, which changes per process).
/// Covered: name, entity type, observations in order (type, content, date, tags, metadata by
/// key), significance, confidence, source and metadata by key. Not covered: the team (part of
/// the entity's identity) and the timestamps (a write that changes nothing else keeps the hash).
/// Each string is its UTF-8 length (be32) then its bytes; numbers are big-endian.
enum ContentHash {
    /// The lowercase hex SHA-256 of `entity`'s content.
    static func of(_ entity: Entity) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(256)
        func string(_ text: String) {
            let utf8 = Array(text.utf8)
            number(UInt64(utf8.count), width: 4)
            bytes += utf8
        }
        func number(_ value: UInt64, width: Int) {
            for index in (0..<width).reversed() { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(index)))) }
        }
        func map(_ values: [String: String]) {
            number(UInt64(values.count), width: 4)
            for key in values.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
                string(key)
                string(values[key]!)
            }
        }
        string(entity.name)
        string(entity.entityType)
        number(UInt64(entity.observations.count), width: 4)
        for observation in entity.observations {
            string(observation.type)
            string(observation.content)
            string(observation.date)
            number(UInt64(observation.tags.count), width: 4)
            observation.tags.forEach(string)
            map(observation.metadata)
        }
        number(UInt64(UInt32(bitPattern: entity.significance)), width: 4)
        number(entity.confidence.bitPattern, width: 8)
        string(entity.source.name)
        map(entity.metadata)
        return SHA256.hex(bytes)
    }
}
