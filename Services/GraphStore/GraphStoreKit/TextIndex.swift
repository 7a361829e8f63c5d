import Foundation
import KBProto

/// Words of names and observations, as the text index keeps them.
///
/// A word is a run of letters and digits, lowercased, 2–64 characters (longer runs are cut at
/// 64). A query word matches every indexed word that starts with it, so "auth" finds
/// "authentication"; every query word must match for an entity to be found.
enum TextIndex {
    static let maxTokenLength = 64

    /// How often a word occurs in an entity's name and in its observations.
    struct Hits: Equatable {
        var name: UInt16 = 0
        var observations: UInt16 = 0

        var bytes: [UInt8] { [UInt8(name >> 8), UInt8(name & 0xff), UInt8(observations >> 8), UInt8(observations & 0xff)] }

        init(name: UInt16 = 0, observations: UInt16 = 0) {
            self.name = name
            self.observations = observations
        }

        init(bytes: [UInt8]) {
            guard bytes.count == 4 else { return }
            name = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
            observations = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
        }
    }

    /// The words of `text`, in order, repeats kept; `minimumLength` 1 keeps one-letter words
    /// (for queries, where a single letter is a prefix).
    static func words(_ text: String, minimumLength: Int = 2) -> [String] {
        var words: [String] = []
        var current = String.UnicodeScalarView()
        var length = 0
        func flush() {
            if length >= minimumLength { words.append(String(current)) }
            current = String.UnicodeScalarView()
            length = 0
        }
        for scalar in text.unicodeScalars {
            let isWordScalar: Bool
            if scalar.isASCII {
                let value = scalar.value
                isWordScalar = (value >= 48 && value <= 57) || (value >= 65 && value <= 90) || (value >= 97 && value <= 122)
            } else {
                let properties = scalar.properties
                isWordScalar = properties.isAlphabetic || properties.numericType != nil
            }
            if isWordScalar {
                guard length < maxTokenLength else { continue }
                if scalar.isASCII {
                    let value = scalar.value
                    current.append(value >= 65 && value <= 90 ? Unicode.Scalar(value + 32)! : scalar)
                } else {
                    current.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
                }
                length += 1
            } else if length > 0 {
                flush()
            }
        }
        if length > 0 { flush() }
        return words
    }

    /// The index entries of an entity: each word with its hit counts.
    static func entries(of entity: Entity) -> [String: Hits] {
        var hits: [String: Hits] = [:]
        for word in words(entity.name) {
            hits[word, default: Hits()].name &+= 1
        }
        for observation in entity.observations {
            for word in words(observation.content) {
                let old = hits[word, default: Hits()]
                if old.observations < UInt16.max { hits[word] = Hits(name: old.name, observations: old.observations + 1) }
            }
        }
        return hits
    }

    /// The score of one query word found in an indexed word with `hits`: whole words count more
    /// than prefixes, names more than observations.
    static func score(exact: Bool, hits: Hits) -> Double {
        let exactness = exact ? 1.0 : 0.6
        let nameWeight = 3.0 * Double(min(hits.name, 3))
        let observationWeight = log2(1 + Double(hits.observations))
        return exactness * (nameWeight + observationWeight)
    }

    /// The bonus for a name that is the whole query, or starts with it.
    static func nameBonus(name: String, query: String) -> Double {
        let lowered = name.lowercased()
        if lowered == query { return 20 }
        if lowered.hasPrefix(query) { return 5 }
        if lowered.contains(query) { return 2 }
        return 0
    }
}
