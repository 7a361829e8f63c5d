/*
 * A client of our wire protocol written against protobuf-c, to prove the format is plain proto3
 * that any protobuf implementation can speak.
 *
 * usage: interop_client HOST PORT TOKEN [budget]
 *
 * It calls kb.health.v1.Health/Check, then kb.graph.v1.GraphStore/PutEntities with nested
 * messages, repeated fields and maps (and the token in the envelope's metadata map), then a method
 * that does not exist, and prints one line per fact it got back. Exit 0 when every call answered.
 * With `budget`, it calls kb.budget.v1.Budget instead: RecordCost with and without the
 * OptionalDouble cost (message presence), the same request id again, Admit and GetStatus.
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

#include "kb/budget/v1/budget.pb-c.h"
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

/* Packs `message` with its packer into a malloc'd buffer and calls `method`. */
#define CALL_PACKED(fd, id, method, token, prefix, message)                                   \
    ({                                                                                       \
        size_t length_ = prefix##__get_packed_size(message);                                 \
        uint8_t *buffer_ = malloc(length_ ? length_ : 1);                                    \
        prefix##__pack(message, buffer_);                                                    \
        Kb__Rpc__V1__Envelope *response_ = call(fd, id, method, token, buffer_, length_);    \
        free(buffer_);                                                                       \
        response_;                                                                           \
    })

static void record_cost(int fd, uint64_t id, const char *token, const char *request_id, int with_cost) {
    Kb__Budget__V1__OptionalDouble cost = KB__BUDGET__V1__OPTIONAL_DOUBLE__INIT;
    cost.value = 0.125;
    Kb__Budget__V1__CostEvent event = KB__BUDGET__V1__COST_EVENT__INIT;
    event.request_id = (char *)request_id;
    event.provider = "groq";
    event.model = "llama-3.3-70b-versatile";
    event.operation = "extract";
    event.project = "interop";
    event.input_tokens = 1000000;
    event.output_tokens = 1000000;
    event.latency_ms = 420;
    if (with_cost) event.cost_usd = &cost;
    Kb__Budget__V1__RecordCostRequest request = KB__BUDGET__V1__RECORD_COST_REQUEST__INIT;
    request.event = &event;
    Kb__Rpc__V1__Envelope *response = CALL_PACKED(fd, id, "kb.budget.v1.Budget/RecordCost", token, kb__budget__v1__record_cost_request, &request);
    if (status_code(response) != 0) {
        /* field and reason: proto3 fields 3 and 4 of kb.rpc.v1.Status, empty when unset. */
        printf("record: code=%d field=%s reason=%s message=%s\n", status_code(response), response->status->field,
               response->status->reason, response->status->message);
    } else {
        Kb__Budget__V1__RecordCostResponse *recorded =
            kb__budget__v1__record_cost_response__unpack(NULL, response->payload.len, response->payload.data);
        if (recorded == NULL || recorded->event == NULL || recorded->event->cost_usd == NULL) fail("RecordCost payload does not decode");
        printf("record: id=%s cost=%.3f duplicate=%d stamped=%s\n", recorded->event->request_id, recorded->event->cost_usd->value,
               recorded->duplicate, recorded->event->timestamp_ms > 0 ? "yes" : "no");
        kb__budget__v1__record_cost_response__free_unpacked(recorded, NULL);
    }
    kb__rpc__v1__envelope__free_unpacked(response, NULL);
}

static void budget_calls(int fd, const char *token) {
    record_cost(fd, 10, token, "c-1", 1);
    record_cost(fd, 11, token, "c-2", 0);
    record_cost(fd, 12, token, "c-1", 0);

    Kb__Budget__V1__AdmitRequest admit = KB__BUDGET__V1__ADMIT_REQUEST__INIT;
    admit.provider = "openai";
    admit.model = "gpt-4o-mini";
    admit.estimated_cost_usd = 0.5;
    admit.request_id = "c-3";
    Kb__Rpc__V1__Envelope *response = CALL_PACKED(fd, 13, "kb.budget.v1.Budget/Admit", token, kb__budget__v1__admit_request, &admit);
    if (status_code(response) != 0) fail("Admit failed");
    Kb__Budget__V1__AdmitResponse *admitted = kb__budget__v1__admit_response__unpack(NULL, response->payload.len, response->payload.data);
    if (admitted == NULL || admitted->status == NULL) fail("Admit payload does not decode");
    printf("admit: decision=%d reservation=%s reserved=%.3f\n", (int)admitted->decision,
           admitted->reservation_id[0] ? "yes" : "no", admitted->status->reserved_usd);
    kb__budget__v1__admit_response__free_unpacked(admitted, NULL);
    kb__rpc__v1__envelope__free_unpacked(response, NULL);

    Kb__Budget__V1__GetStatusRequest get = KB__BUDGET__V1__GET_STATUS_REQUEST__INIT;
    response = CALL_PACKED(fd, 14, "kb.budget.v1.Budget/GetStatus", token, kb__budget__v1__get_status_request, &get);
    if (status_code(response) != 0) fail("GetStatus failed");
    Kb__Budget__V1__BudgetStatus *status = kb__budget__v1__budget_status__unpack(NULL, response->payload.len, response->payload.data);
    if (status == NULL) fail("GetStatus payload does not decode");
    printf("status: limit=%.2f spend=%.3f mode=%d frozen=%d\n", status->limit_usd, status->spend_usd, (int)status->mode, status->frozen);
    kb__budget__v1__budget_status__free_unpacked(status, NULL);
    kb__rpc__v1__envelope__free_unpacked(response, NULL);

    /* No request id: INVALID_ARGUMENT naming the field, structured. */
    record_cost(fd, 15, token, "", 1);
}

int main(int argc, char **argv) {
    if (argc != 4 && !(argc == 5 && strcmp(argv[4], "budget") == 0)) {
        fprintf(stderr, "usage: %s HOST PORT TOKEN [budget]\n", argv[0]);
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
    if (argc == 5) {
        budget_calls(fd, argv[3]);
    } else {
        put_entities(fd, argv[3]);
    }
    call_unknown(fd, argv[3]);
    close(fd);
    return 0;
}
