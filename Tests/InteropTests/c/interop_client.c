/*
 * A client of our wire protocol written against protobuf-c, to prove the format is plain proto3
 * that any protobuf implementation can speak.
 *
 * usage: interop_client HOST PORT TOKEN
 *
 * It calls kb.health.v1.Health/Check, then kb.graph.v1.GraphStore/PutEntities with nested
 * messages, repeated fields and maps (and the token in the envelope's metadata map), then a method
 * that does not exist, and prints one line per fact it got back. Exit 0 when every call answered.
 */
#define _POSIX_C_SOURCE 200112L
#include <arpa/inet.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kb/graph/v1/graph.pb-c.h"
#include "kb/health/v1/health.pb-c.h"
#include "kb/rpc/v1/envelope.pb-c.h"

static int fail(const char *what) {
    fprintf(stderr, "interop_client: %s\n", what);
    exit(2);
}

static void write_all(int fd, const uint8_t *data, size_t length) {
    while (length > 0) {
        ssize_t sent = send(fd, data, length, 0);
        if (sent <= 0) fail("send failed");
        data += sent;
        length -= (size_t)sent;
    }
}

static void read_all(int fd, uint8_t *data, size_t length) {
    while (length > 0) {
        ssize_t got = recv(fd, data, length, 0);
        if (got <= 0) fail("connection closed while reading a response");
        data += got;
        length -= (size_t)got;
    }
}

/* Sends one request envelope and returns the unpacked response envelope (caller frees). */
static Kb__Rpc__V1__Envelope *call(int fd, uint64_t id, const char *method, const char *token,
                                   const uint8_t *payload, size_t payload_length) {
    Kb__Rpc__V1__Envelope request = KB__RPC__V1__ENVELOPE__INIT;
    Kb__Rpc__V1__Envelope__MetadataEntry auth = KB__RPC__V1__ENVELOPE__METADATA_ENTRY__INIT;
    Kb__Rpc__V1__Envelope__MetadataEntry trace = KB__RPC__V1__ENVELOPE__METADATA_ENTRY__INIT;
    Kb__Rpc__V1__Envelope__MetadataEntry *metadata[2] = {&auth, &trace};
    char bearer[512];
    snprintf(bearer, sizeof bearer, "Bearer %s", token);
    auth.key = "authorization";
    auth.value = bearer;
    trace.key = "trace-id";
    trace.value = "interop-c";

    request.id = id;
    request.method = (char *)method;
    request.payload.data = (uint8_t *)payload;
    request.payload.len = payload_length;
    request.deadline_ms = 5000;
    request.n_metadata = 2;
    request.metadata = metadata;

    size_t length = kb__rpc__v1__envelope__get_packed_size(&request);
    uint8_t *frame = malloc(4 + length);
    frame[0] = (uint8_t)(length >> 24);
    frame[1] = (uint8_t)(length >> 16);
    frame[2] = (uint8_t)(length >> 8);
    frame[3] = (uint8_t)length;
    kb__rpc__v1__envelope__pack(&request, frame + 4);
    write_all(fd, frame, 4 + length);
    free(frame);

    uint8_t header[4];
    read_all(fd, header, 4);
    size_t response_length = ((size_t)header[0] << 24) | ((size_t)header[1] << 16) | ((size_t)header[2] << 8) | header[3];
    uint8_t *body = malloc(response_length);
    read_all(fd, body, response_length);
    Kb__Rpc__V1__Envelope *response = kb__rpc__v1__envelope__unpack(NULL, response_length, body);
    free(body);
    if (response == NULL) fail("response is not an Envelope");
    if (response->id != id) fail("response id does not match the request id");
    return response;
}

static int status_code(const Kb__Rpc__V1__Envelope *response) {
    return response->status ? (int)response->status->code : 0;
}

static void check_health(int fd, const char *token) {
    Kb__Health__V1__HealthCheckRequest request = KB__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    request.service = "";
    uint8_t buffer[256];
    size_t length = kb__health__v1__health_check_request__pack(&request, buffer);
    Kb__Rpc__V1__Envelope *response = call(fd, 1, "kb.health.v1.Health/Check", token, buffer, length);
    if (status_code(response) != 0) fail("health check failed");
    Kb__Health__V1__HealthCheckResponse *health =
        kb__health__v1__health_check_response__unpack(NULL, response->payload.len, response->payload.data);
    if (health == NULL) fail("health payload does not decode");
    printf("health: status=%s service=%s version=%s\n",
           health->status == KB__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING ? "SERVING" : "NOT_SERVING",
           health->service, health->version);
    for (size_t i = 0; i < health->n_components; i++) {
        printf("component: %s=%s\n", health->components[i]->key, health->components[i]->value->status);
    }
    kb__health__v1__health_check_response__free_unpacked(health, NULL);
    kb__rpc__v1__envelope__free_unpacked(response, NULL);
}

static void put_entities(int fd, const char *token) {
    char *tags[] = {"networking", "resilience"};
    Kb__Graph__V1__Observation first = KB__GRAPH__V1__OBSERVATION__INIT;
    first.type = "insight";
    first.content = "retry with exponential backoff and jitter";
    first.date = "2026-11-20T10:00:00Z";
    first.n_tags = 2;
    first.tags = tags;
    Kb__Graph__V1__Observation second = KB__GRAPH__V1__OBSERVATION__INIT;
    second.content = "cap the number of attempts";
    Kb__Graph__V1__Observation *observations[] = {&first, &second};

    Kb__Graph__V1__Entity__MetadataEntry origin = KB__GRAPH__V1__ENTITY__METADATA_ENTRY__INIT;
    origin.key = "origin";
    origin.value = "protobuf-c";
    Kb__Graph__V1__Entity__MetadataEntry *metadata[] = {&origin};

    Kb__Graph__V1__Entity pattern = KB__GRAPH__V1__ENTITY__INIT;
    pattern.name = "RetryWithBackoff";
    pattern.entity_type = "Pattern";
    pattern.n_observations = 2;
    pattern.observations = observations;
    pattern.significance = 8;
    pattern.confidence = 0.9;
    pattern.source = KB__GRAPH__V1__SOURCE__SOURCE_MANUAL;
    pattern.n_metadata = 1;
    pattern.metadata = metadata;

    Kb__Graph__V1__Entity decision = KB__GRAPH__V1__ENTITY__INIT;
    decision.name = "Use LevelDB";
    decision.entity_type = "Decision";
    decision.source = KB__GRAPH__V1__SOURCE__SOURCE_AUTO;

    Kb__Graph__V1__Entity *entities[] = {&pattern, &decision};
    Kb__Graph__V1__PutEntitiesRequest request = KB__GRAPH__V1__PUT_ENTITIES_REQUEST__INIT;
    request.team = "interop";
    request.n_entities = 2;
    request.entities = entities;

    size_t length = kb__graph__v1__put_entities_request__get_packed_size(&request);
    uint8_t *buffer = malloc(length);
    kb__graph__v1__put_entities_request__pack(&request, buffer);
    Kb__Rpc__V1__Envelope *response = call(fd, 2, "kb.graph.v1.GraphStore/PutEntities", token, buffer, length);
    free(buffer);
    if (status_code(response) != 0) {
        printf("put: code=%d message=%s\n", status_code(response), response->status->message);
        kb__rpc__v1__envelope__free_unpacked(response, NULL);
        return;
    }
    Kb__Graph__V1__PutEntitiesResponse *put =
        kb__graph__v1__put_entities_response__unpack(NULL, response->payload.len, response->payload.data);
    if (put == NULL) fail("PutEntities payload does not decode");
    printf("put: created=%d\n", put->created);
    for (size_t i = 0; i < put->n_entities; i++) {
        Kb__Graph__V1__Entity *e = put->entities[i];
        printf("entity: name=%s type=%s team=%s significance=%d confidence=%.2f source=%d stamped=%s\n",
               e->name, e->entity_type, e->team, e->significance, e->confidence, (int)e->source,
               e->created_at_ms > 0 ? "yes" : "no");
        for (size_t j = 0; j < e->n_observations; j++) {
            Kb__Graph__V1__Observation *o = e->observations[j];
            printf("observation: %s | type=%s | tags=", o->content, o->type);
            for (size_t k = 0; k < o->n_tags; k++) printf("%s%s", k ? "," : "", o->tags[k]);
            printf("\n");
        }
        for (size_t j = 0; j < e->n_metadata; j++) {
            printf("metadata: %s=%s\n", e->metadata[j]->key, e->metadata[j]->value);
        }
    }
    kb__graph__v1__put_entities_response__free_unpacked(put, NULL);
    kb__rpc__v1__envelope__free_unpacked(response, NULL);
}

static void call_unknown(int fd, const char *token) {
    Kb__Rpc__V1__Envelope *response = call(fd, 3, "kb.nothing.v1.Nothing/Here", token, NULL, 0);
    printf("unknown: code=%d\n", status_code(response));
    kb__rpc__v1__envelope__free_unpacked(response, NULL);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s HOST PORT TOKEN\n", argv[0]);
        return 64;
    }
    struct addrinfo hints = {0}, *address = NULL;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(argv[1], argv[2], &hints, &address) != 0) fail("cannot resolve host");
    int fd = socket(address->ai_family, address->ai_socktype, address->ai_protocol);
    if (fd < 0 || connect(fd, address->ai_addr, address->ai_addrlen) != 0) fail("cannot connect");
    freeaddrinfo(address);

    check_health(fd, argv[3]);
    put_entities(fd, argv[3]);
    call_unknown(fd, argv[3]);
    close(fd);
    return 0;
}
