import KBKnowledge
import KBProto

// Every name a request carries (teams, entity names, entity types, relation types, relation
// ends) in NFC, as the graph store's RPC face receives it (`CanonicalName`): an NFC and an NFD
// spelling of one name reach the same keys, and the store compares bytes from there on.
//
// Stored data written before names were normalised keeps the bytes it was written with: a name
// stored in another form (NFD) is listed by ListTeams/GetStats as its own team, apart from the
// NFC one, and requests (normalised) no longer reach it; exporting it needs a store of the old
// version (none written with ASCII names, the common case, is affected).

extension Kb_Graph_V1_Entity {
    /// Name and entity type in NFC (observations are content, kept as written).
    var canonical: Self {
        var entity = self
        entity.name = CanonicalName.nfc(name)
        entity.entityType = CanonicalName.nfc(entityType)
        if !team.isEmpty { entity.team = CanonicalName.nfc(team) }
        return entity
    }
}

extension Kb_Graph_V1_Relation {
    /// Ends, type and team in NFC.
    var canonical: Self {
        var relation = self
        relation.from = CanonicalName.nfc(from)
        relation.to = CanonicalName.nfc(to)
        relation.relationType = CanonicalName.nfc(relationType)
        if !team.isEmpty { relation.team = CanonicalName.nfc(team) }
        return relation
    }
}

extension Kb_Graph_V1_PutEntitiesRequest {
    var canonical: Self {
        var request = self
        request.team = CanonicalName.nfc(team)
        request.entities = entities.map(\.canonical)
        return request
    }
}

extension Kb_Graph_V1_DeleteEntitiesRequest {
    var canonical: Self {
        var request = self
        request.team = CanonicalName.nfc(team)
        request.names = CanonicalName.nfc(names)
        return request
    }
}

extension Kb_Graph_V1_PutRelationsRequest {
    var canonical: Self {
        var request = self
        request.team = CanonicalName.nfc(team)
        request.relations = relations.map(\.canonical)
        return request
    }
}

extension Kb_Graph_V1_DeleteObservationsRequest {
    /// Team and entity names in NFC (the contents are observations, kept as written).
    var canonical: Self {
        var request = self
        request.team = CanonicalName.nfc(team)
        request.deletions = deletions.map { deletion in
            var deletion = deletion
            deletion.name = CanonicalName.nfc(deletion.name)
            return deletion
        }
        return request
    }
}

extension Kb_Graph_V1_DeleteRelationsRequest {
    var canonical: Self {
        var request = self
        request.team = CanonicalName.nfc(team)
        request.relations = relations.map(\.canonical)
        return request
    }
}

extension Kb_Graph_V1_GetEntityRequest {
    var canonical: Self {
        var request = self
        request.team = CanonicalName.nfc(team)
        request.name = CanonicalName.nfc(name)
        return request
    }
}

extension Kb_Graph_V1_QueryEntitiesRequest {
    var canonical: Self {
        var request = self
        request.teams = CanonicalName.nfc(teams)
        request.entityTypes = CanonicalName.nfc(entityTypes)
        return request
    }
}

extension Kb_Graph_V1_QueryRelationsRequest {
    var canonical: Self {
        var request = self
        request.teams = CanonicalName.nfc(teams)
        request.entity = CanonicalName.nfc(entity)
        request.relationTypes = CanonicalName.nfc(relationTypes)
        return request
    }
}

extension Kb_Graph_V1_NeighborsRequest {
    var canonical: Self {
        var request = self
        request.team = CanonicalName.nfc(team)
        request.name = CanonicalName.nfc(name)
        request.relationTypes = CanonicalName.nfc(relationTypes)
        request.entityTypes = CanonicalName.nfc(entityTypes)
        return request
    }
}

extension Kb_Graph_V1_SubgraphRequest {
    var canonical: Self {
        var request = self
        request.teams = CanonicalName.nfc(teams)
        request.entityTypes = CanonicalName.nfc(entityTypes)
        request.relationTypes = CanonicalName.nfc(relationTypes)
        request.focus = CanonicalName.nfc(focus)
        request.focusTeam = CanonicalName.nfc(focusTeam)
        return request
    }
}

extension Kb_Graph_V1_ShortestPathRequest {
    var canonical: Self {
        var request = self
        request.team = CanonicalName.nfc(team)
        request.from = CanonicalName.nfc(from)
        request.to = CanonicalName.nfc(to)
        request.relationTypes = CanonicalName.nfc(relationTypes)
        return request
    }
}

extension Kb_Graph_V1_GetStatsRequest {
    var canonical: Self {
        var request = self
        request.teams = CanonicalName.nfc(teams)
        return request
    }
}

extension Kb_Graph_V1_ChangesRequest {
    var canonical: Self {
        var request = self
        request.teams = CanonicalName.nfc(teams)
        return request
    }
}
