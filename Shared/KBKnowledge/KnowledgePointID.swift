/// The id of an entity's point in vector-search's knowledge collections: `team:name`, or
/// `sha256:<hex of team:name>` when that is longer than the 256 bytes an id may have (names of
/// 200 letters outside ASCII), still one point per entity. Written by the gateway's indexer, read
/// by `ukb similar`.
public enum KnowledgePointID {
    /// The longest point id vector-search takes, in bytes.
    public static let maximumBytes = 256

    public static func make(team: String, name: String) -> String {
        let key = "\(team):\(name)"
        return key.utf8.count <= maximumBytes ? key : "sha256:" + SHA256.hex(Array(key.utf8))
    }
}
