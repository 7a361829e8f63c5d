import Foundation

/// One spelling per name: teams, entity names, entity types and relation types are kept in
/// Unicode Normalization Form C, so "équipe" typed with a precomposed "é" (U+00E9) and with "e"
/// plus a combining accent (U+0065 U+0301) name one team, stored under one key.
///
/// Services normalise every name where a request enters (the graph store's RPC face) and from
/// there on compare bytes only: Swift's `String ==` treats canonically equivalent spellings as
/// equal while storage keys are bytes, and a check that mixes the two lets one team's request
/// read another's data.
public enum CanonicalName {
    /// `text` in NFC; plain ASCII (already NFC) is returned as it is without a Unicode lookup.
    public static func nfc(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 < 0x80 }) { return text }
        return text.precomposedStringWithCanonicalMapping
    }

    /// Every element of `texts` in NFC.
    public static func nfc(_ texts: [String]) -> [String] {
        texts.map(nfc)
    }

    /// Whether `a` and `b` are the same bytes (never canonical equivalence).
    public static func sameBytes(_ a: String, _ b: String) -> Bool {
        a.utf8.elementsEqual(b.utf8)
    }
}
