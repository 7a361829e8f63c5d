import Foundation
import KBTestSupport
import Testing

/// A small validator for the part of JSON Schema the OpenAPI document uses: type, nullable,
/// properties, required, additionalProperties, items, enum, allOf, oneOf, $ref.
struct SchemaValidator {
    let components: [String: Any]

    func problems(_ value: Any?, _ schema: [String: Any], at path: String = "$") -> [String] {
        if let ref = schema["$ref"] as? String {
            let name = String(ref.split(separator: "/").last ?? "")
            guard let target = components[name] as? [String: Any] else { return ["\(path): unknown $ref \(ref)"] }
            return problems(value, target, at: path)
        }
        if let all = schema["allOf"] as? [[String: Any]] {
            // One object schema made of the parts (each part's own properties are not "undocumented" in the others).
            var merged: [String: Any] = ["type": "object"]
            var properties: [String: Any] = [:], required: [String] = []
            for part in all {
                let resolved = (part["$ref"] as? String).flatMap { components[String($0.split(separator: "/").last ?? "")] as? [String: Any] } ?? part
                properties.merge(resolved["properties"] as? [String: Any] ?? [:]) { $1 }
                required += resolved["required"] as? [String] ?? []
            }
            merged["properties"] = properties
            merged["required"] = required
            return problems(value, merged, at: path)
        }
        if let one = schema["oneOf"] as? [[String: Any]] {
            let matching = one.filter { problems(value, $0, at: path).isEmpty }.count
            return matching == 1 ? [] : ["\(path): matches \(matching) of oneOf's \(one.count) schemas"]
        }
        guard let value, !(value is NSNull) else {
            return schema["nullable"] as? Bool == true || schema["type"] == nil ? [] : ["\(path): null where \(schema["type"] ?? "a value") is required"]
        }
        var found: [String] = []
        if let choices = schema["enum"] as? [String], !choices.contains(value as? String ?? "\u{0}") {
            found.append("\(path): \(value) is not one of \(choices)")
        }
        switch schema["type"] as? String {
        case "string":
            if !(value is String) { found.append("\(path): expected a string, got \(value)") }
        case "integer":
            if let number = value as? NSNumber, !isBoolean(number), number.doubleValue == number.doubleValue.rounded() {} else { found.append("\(path): expected an integer, got \(value)") }
        case "number":
            if let number = value as? NSNumber, !isBoolean(number) {} else { found.append("\(path): expected a number, got \(value)") }
        case "boolean":
            if let number = value as? NSNumber, isBoolean(number) {} else { found.append("\(path): expected a boolean, got \(value)") }
        case "array":
            guard let items = value as? [Any] else { return found + ["\(path): expected an array"] }
            if let itemSchema = schema["items"] as? [String: Any] {
                for (index, item) in items.enumerated() { found += problems(item, itemSchema, at: "\(path)[\(index)]") }
            }
        case "object":
            guard let object = value as? [String: Any] else { return found + ["\(path): expected an object"] }
            for key in schema["required"] as? [String] ?? [] where object[key] == nil {
                found.append("\(path): required property '\(key)' is missing")
            }
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for (key, item) in object {
                if let propertySchema = properties[key] as? [String: Any] {
                    found += problems(item, propertySchema, at: "\(path).\(key)")
                } else if let additional = schema["additionalProperties"] as? [String: Any] {
                    found += problems(item, additional, at: "\(path).\(key)")
                } else if schema["additionalProperties"] as? Bool == true {
                    continue
                } else if schema["additionalProperties"] == nil, !properties.isEmpty {
                    found.append("\(path): undocumented property '\(key)'")
                }
            }
        default: break
        }
        return found
    }

    private func isBoolean(_ number: NSNumber) -> Bool { String(cString: number.objCType) == "c" }
}

@Suite("vkb against its OpenAPI document", .serialized)
struct OpenAPITests {
    @Test("every documented operation answers with a documented status and a body that matches its schema; every operation is exercised")
    func serverMatchesDocument() async throws {
        let system = try await VKBUnderTest.start(environment: ["KB_VKB_WRITE_RATE_LIMIT": "0"])
        try await system.seed()
        let served = try await system.get("/api/openapi.json")
        #expect(served.status == 200)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(served.body.utf8)) as? [String: Any])
        let onDisk = try Data(contentsOf: packageRoot.appendingPathComponent("Services/VKB/VKBKit/Web/openapi.json"))
        #expect(Data(served.body.utf8) == onDisk, "VKB serves the document in the repository")
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        let validator = SchemaValidator(components: ((document["components"] as? [String: Any])?["schemas"] as? [String: Any]) ?? [:])

        // (method, documented path, concrete path, body) — successes and documented failures.
        let calls: [(String, String, String, Any?)] = [
            ("get", "/health", "/health", nil),
            ("get", "/api/teams", "/api/teams", nil),
            ("get", "/api/stats", "/api/stats?team=coding", nil),
            ("get", "/api/stats", "/api/stats?team=bad%20team", nil),
            ("get", "/api/changes", "/api/changes", nil),
            ("get", "/api/changes", "/api/changes?after=0&limit=5", nil),
            ("get", "/api/changes", "/api/changes?after=-1", nil),
            ("get", "/api/changes", "/api/changes?after=999999", nil),
            ("get", "/api/entities", "/api/entities?team=coding&limit=2", nil),
            ("get", "/api/entities", "/api/entities?limit=0", nil),
            ("post", "/api/entities", "/api/entities", ["team": "coding", "name": "Added", "entityType": "Pattern", "observations": ["one", ["content": "two", "type": "note"]]]),
            ("post", "/api/entities", "/api/entities", ["team": "coding", "name": "Added", "entityType": "Pattern"]),
            ("post", "/api/entities", "/api/entities", ["team": "coding", "name": "", "entityType": "Pattern"]),
            ("get", "/api/entities/{team}/{name}", "/api/entities/coding/RetryPolicy", nil),
            ("get", "/api/entities/{team}/{name}", "/api/entities/coding/Nope", nil),
            ("patch", "/api/entities/{team}/{name}", "/api/entities/coding/Added", ["significance": 3]),
            ("put", "/api/entities/{team}/{name}", "/api/entities/coding/Added", ["observations": ["three"]]),
            ("patch", "/api/entities/{team}/{name}", "/api/entities/coding/Nope", ["significance": 3]),
            ("get", "/api/relations", "/api/relations?team=coding", nil),
            ("get", "/api/relations", "/api/relations?direction=sideways", nil),
            ("post", "/api/relations", "/api/relations", ["team": "coding", "from": "Added", "to": "RetryPolicy", "relationType": "refines"]),
            ("post", "/api/relations", "/api/relations", ["team": "coding", "from": "Added", "to": "RetryPolicy", "relationType": "refines"]),
            ("delete", "/api/relations", "/api/relations", ["team": "coding", "from": "Added", "to": "RetryPolicy", "relationType": "refines"]),
            ("delete", "/api/relations", "/api/relations?team=coding&from=Added&to=RetryPolicy&relationType=refines", nil),
            ("delete", "/api/entities/{team}/{name}", "/api/entities/coding/Added", nil),
            ("delete", "/api/entities/{team}/{name}", "/api/entities/coding/Added", nil),
            ("get", "/api/search", "/api/search?q=backoff", nil),
            ("get", "/api/search", "/api/search", nil),
            ("get", "/api/search", "/api/search?q=backoff&mode=keyword", nil),
            ("get", "/api/search", "/api/search?q=backoff&mode=fuzzy", nil),
            ("get", "/api/similar", "/api/similar?team=coding&name=RetryPolicy", nil),
            ("get", "/api/similar", "/api/similar?team=coding", nil),
            ("get", "/api/graph", "/api/graph?limit=3", nil),
            ("get", "/api/graph", "/api/graph?layout=1", nil),
            ("get", "/api/graph", "/api/graph?focus=coding:RetryPolicy&depth=2", nil),
            ("get", "/api/graph", "/api/graph?focus=coding:Nope", nil),
            ("post", "/api/import", "/api/import?dryRun=true", VKBFixtures.otherTeam),
            ("post", "/api/import", "/api/import", VKBFixtures.otherTeam),
            ("post", "/api/import", "/api/import", ["entities": "nope"]),
            ("get", "/api/export", "/api/export?team=ops", nil),
        ]
        var exercised = Set<String>()
        for (method, template, path, body) in calls {
            let result = try await system.request(method.uppercased(), path, json: body)
            let operation = try #require(paths[template]?[method] as? [String: Any], "\(method) \(template) is not in the document")
            exercised.insert("\(method) \(template)")
            let responses = operation["responses"] as? [String: Any] ?? [:]
            guard let documented = responses[String(result.status)] as? [String: Any] else {
                Issue.record("\(method) \(path) answered \(result.status), which the document does not list (\(responses.keys.sorted())): \(result.body)")
                continue
            }
            guard let schema = ((documented["content"] as? [String: Any])?["application/json"] as? [String: Any])?["schema"] as? [String: Any] else { continue }
            let parsed = try? JSONSerialization.jsonObject(with: Data(result.body.utf8), options: [.fragmentsAllowed])
            let problems = validator.problems(parsed, schema)
            #expect(problems.isEmpty, "\(method) \(path) → \(result.status): \(problems.prefix(5))")
        }
        var documentedOperations = Set<String>()
        for (path, item) in paths {
            for method in ["get", "post", "put", "patch", "delete"] where item[method] != nil { documentedOperations.insert("\(method) \(path)") }
        }
        #expect(documentedOperations == exercised, "not exercised: \(documentedOperations.subtracting(exercised).sorted())")
        await system.stop()
    }
}
