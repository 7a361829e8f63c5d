import Foundation

/// BERT's uncased tokenizer exactly as HuggingFace's `BertTokenizerFast` runs it for
/// all-MiniLM-L6-v2: the BERT normalizer (drop NUL, U+FFFD and control characters, whitespace to
/// spaces, spaces around CJK ideographs, accents stripped through NFD, lower case), the BERT
/// pre-tokenizer (split on whitespace, every punctuation character on its own), then greedy
/// longest-match WordPiece with `##` continuations (a word longer than 100 characters, or one
/// that cannot be covered, is `[UNK]`), `[CLS] … [SEP]`, truncated to `maxTokens`. Special tokens
/// written in the text (`[SEP]`, `[MASK]`, …) are their own ids, as HuggingFace's added tokens.
public struct WordPieceTokenizer: Sendable {
    /// Token ids by token text (the line number in vocab.txt).
    public let vocabulary: [String: Int32]
    /// The longest sequence produced, `[CLS]` and `[SEP]` included.
    public let maxTokens: Int
    /// `[CLS]`, `[SEP]` and `[UNK]`'s ids.
    public let classifierID: Int32, separatorID: Int32, unknownID: Int32
    /// The special tokens HuggingFace recognises inside a text (`[CLS]`, `[SEP]`, `[UNK]`, `[PAD]`, `[MASK]`).
    let specialTokens: [(text: String, id: Int32)]
    /// Words longer than this many characters become `[UNK]` (HuggingFace's `max_input_chars_per_word`).
    public let maxCharactersPerWord = 100

    /// Reads `vocab.txt` (one token a line).
    public init(vocabularyFile: URL, maxTokens: Int = 256) throws {
        let text: String
        do { text = try String(contentsOf: vocabularyFile, encoding: .utf8) } catch {
            throw EmbeddingError(.modelNotFound, "cannot read \(vocabularyFile.path): \(error)")
        }
        var vocabulary: [String: Int32] = [:]
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        for (index, line) in lines.enumerated() {
            let token = line.hasSuffix("\r") ? String(line.dropLast()) : String(line)
            if vocabulary[token] == nil { vocabulary[token] = Int32(index) }
        }
        try self.init(vocabulary: vocabulary, maxTokens: maxTokens)
    }

    /// A tokenizer over `vocabulary`, which must hold `[CLS]`, `[SEP]` and `[UNK]`.
    public init(vocabulary: [String: Int32], maxTokens: Int = 256) throws {
        guard let cls = vocabulary["[CLS]"], let sep = vocabulary["[SEP]"], let unk = vocabulary["[UNK]"] else {
            throw EmbeddingError(.modelInvalid, "the vocabulary lacks [CLS], [SEP] or [UNK]; is vocab.txt BERT's?")
        }
        guard maxTokens >= 2 else { throw EmbeddingError(.invalidArgument, "maxTokens must be at least 2 ([CLS] and [SEP]), got \(maxTokens)") }
        self.vocabulary = vocabulary
        self.maxTokens = maxTokens
        classifierID = cls
        separatorID = sep
        unknownID = unk
        specialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].compactMap { token in vocabulary[token].map { (token, $0) } }
    }

    /// The token ids of `text`: `[CLS]`, at most `maxTokens - 2` word pieces, `[SEP]`.
    public func tokenIDs(_ text: String) -> [Int32] {
        var ids: [Int32] = [classifierID]
        let limit = maxTokens - 1
        // Special tokens written in the text are matched first, exactly, as HuggingFace's added tokens are.
        var rest = Substring(text)
        while !rest.isEmpty, ids.count < limit {
            let next = specialTokens.compactMap { token in rest.range(of: token.text).map { (range: $0, id: token.id) } }
                .min { $0.range.lowerBound < $1.range.lowerBound }
            let plain = next.map { rest[..<$0.range.lowerBound] } ?? rest
            for word in words(normalized(String(plain))) {
                appendWordPieces(of: word, to: &ids)
                if ids.count >= limit { break }
            }
            guard let next else { break }
            ids.append(next.id)
            rest = rest[next.range.upperBound...]
        }
        if ids.count > limit { ids.removeLast(ids.count - limit) }
        ids.append(separatorID)
        return ids
    }

    /// The normalized text as Unicode scalars (BertNormalizer with clean_text, handle_chinese_chars,
    /// strip_accents following lowercase, lowercase).
    func normalized(_ text: String) -> [Unicode.Scalar] {
        var cleaned = String.UnicodeScalarView()
        var hasNonASCII = false
        for scalar in text.unicodeScalars {
            if scalar.value == 0 || scalar.value == 0xFFFD || Self.isControl(scalar) { continue }
            if Self.isWhitespace(scalar) {
                cleaned.append(" ")
            } else if Self.isCJK(scalar) {
                cleaned.append(" ")
                cleaned.append(scalar)
                cleaned.append(" ")
                hasNonASCII = true
            } else {
                cleaned.append(scalar)
                if scalar.value >= 0x80 { hasNonASCII = true }
            }
        }
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(cleaned.count)
        if !hasNonASCII {
            for scalar in cleaned {
                let value = scalar.value
                result.append(value >= 0x41 && value <= 0x5A ? Unicode.Scalar(value + 32)! : scalar)
            }
            return result
        }
        // Strip accents: canonical decomposition, then drop the non-spacing marks; then lower case.
        let decomposed = String(cleaned).decomposedStringWithCanonicalMapping
        for scalar in decomposed.unicodeScalars where scalar.properties.generalCategory != .nonspacingMark {
            if scalar.value < 0x80 {
                let value = scalar.value
                result.append(value >= 0x41 && value <= 0x5A ? Unicode.Scalar(value + 32)! : scalar)
            } else if scalar.properties.changesWhenLowercased {
                result.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
            } else {
                result.append(scalar)
            }
        }
        return result
    }

    /// The words of normalized text: split on whitespace, each punctuation character a word of its own.
    func words(_ scalars: [Unicode.Scalar]) -> [ArraySlice<Unicode.Scalar>] {
        var result: [ArraySlice<Unicode.Scalar>] = []
        var start = 0
        for (index, scalar) in scalars.enumerated() {
            if Self.isWhitespace(scalar) {
                if start < index { result.append(scalars[start..<index]) }
                start = index + 1
            } else if Self.isPunctuation(scalar) {
                if start < index { result.append(scalars[start..<index]) }
                result.append(scalars[index...index])
                start = index + 1
            }
        }
        if start < scalars.count { result.append(scalars[start...]) }
        return result
    }

    /// Appends `word`'s word pieces (greedy longest match first), or `[UNK]` when it cannot be covered.
    func appendWordPieces(of word: ArraySlice<Unicode.Scalar>, to ids: inout [Int32]) {
        let characters = Array(word)
        guard characters.count <= maxCharactersPerWord else {
            ids.append(unknownID)
            return
        }
        let firstPiece = ids.count
        var start = 0
        while start < characters.count {
            var end = characters.count
            var found: Int32?
            while start < end {
                var candidate = start > 0 ? "##" : ""
                candidate.unicodeScalars.append(contentsOf: characters[start..<end])
                if let id = vocabulary[candidate] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let id = found else {
                ids.removeLast(ids.count - firstPiece)
                ids.append(unknownID)
                return
            }
            ids.append(id)
            start = end
        }
    }

    /// Rust's `char::is_whitespace` plus tab, newline and carriage return (HuggingFace's rule).
    static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x20, 0x09, 0x0A, 0x0D: true
        case 0..<0x80: false
        default: scalar.properties.isWhitespace
        }
    }

    /// Unicode's "Other" categories (Cc, Cf, Cs, Co, Cn) except tab, newline and carriage return.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09, 0x0A, 0x0D: return false
        case 0x20..<0x7F: return false
        default:
            switch scalar.properties.generalCategory {
            case .control, .format, .surrogate, .privateUse, .unassigned: return true
            default: return false
            }
        }
    }

    /// ASCII punctuation (which includes symbols such as `$`, `+`, `^`, `` ` ``) or a Unicode P* character.
    static func isPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if value < 0x80 {
            return (value >= 33 && value <= 47) || (value >= 58 && value <= 64) || (value >= 91 && value <= 96) || (value >= 123 && value <= 126)
        }
        switch scalar.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
        default: return false
        }
    }

    /// The CJK ideograph blocks BERT puts spaces around.
    static func isCJK(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F,
             0x2B740...0x2B81F, 0x2B820...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: true
        default: false
        }
    }
}
