import Foundation

/// A real knowledge graph made at test time from this machine's installed Debian packages
/// (`/var/lib/dpkg/status`): a package is an entity (type = its section), its dependencies are
/// relations. Package names may hold `+`, which entity names may not: it becomes `-plus`.
enum AptGraph {
    static func entityName(_ package: String) -> String {
        package.replacingOccurrences(of: "+", with: "-plus")
    }

    /// The shared-memory JSON of the installed packages and their dependencies.
    static func sharedMemoryJSON(statusFile: String = "/var/lib/dpkg/status") throws -> (data: Data, entities: Int, relations: Int) {
        let text = try String(contentsOfFile: statusFile, encoding: .utf8)
        var packages: [String: [String: String]] = [:]
        for stanza in text.components(separatedBy: "\n\n") {
            var fields: [String: String] = [:]
            var last: String?
            for line in stanza.split(separator: "\n", omittingEmptySubsequences: true) {
                if line.first == " ", let last {
                    fields[last, default: ""] += "\n" + line.trimmingCharacters(in: .whitespaces)
                } else if let colon = line.firstIndex(of: ":") {
                    let key = String(line[..<colon])
                    fields[key] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                    last = key
                }
            }
            if let name = fields["Package"], fields["Status"]?.hasSuffix("installed") == true { packages[name] = fields }
        }
        let significance = ["required": 9, "important": 8, "standard": 6, "optional": 4, "extra": 2]
        var entities: [[String: Any]] = []
        var relations: [[String: Any]] = []
        var seen = Set<String>()
        for (name, fields) in packages.sorted(by: { $0.key < $1.key }) {
            let summary = fields["Description"]?.split(separator: "\n").first.map(String.init) ?? name
            var observations: [Any] = [summary, "version \(fields["Version"] ?? "?")"]
            if let maintainer = fields["Maintainer"] {
                observations.append(["type": "maintainer", "content": maintainer, "tags": ["debian", "people"]])
            }
            var entity: [String: Any] = [
                "name": entityName(name),
                "entityType": fields["Section"].map { $0.replacingOccurrences(of: "/", with: "-") } ?? "unknown",
                "observations": observations,
                "significance": significance[fields["Priority"] ?? ""] ?? 5,
                "confidence": 1,
                "source": "auto",
                "metadata": ["architecture": fields["Architecture"] ?? "all", "package": name],
            ]
            if name.hasPrefix("lib") { entity["confidence"] = 0.75 }
            entities.append(entity)
            for (field, type) in [("Pre-Depends", "pre_depends_on"), ("Depends", "depends_on"), ("Recommends", "recommends")] {
                for clause in (fields[field] ?? "").split(separator: ",") {
                    let target = clause.split(separator: "|")[0].split(separator: " ")[0].split(separator: ":")[0].trimmingCharacters(in: .whitespaces)
                    guard packages[target] != nil, seen.insert("\(name) \(type) \(target)").inserted else { continue }
                    relations.append(["from": entityName(name), "to": entityName(target), "relationType": type])
                }
            }
        }
        let root: [String: Any] = ["entities": entities, "relations": relations, "metadata": ["team": "apt", "source": statusFile]]
        return (try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys]), entities.count, relations.count)
    }
}
