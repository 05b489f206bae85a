// Request ids: a client's X-Request-Id (or the configured header) passes through; a request without one gets an id
// lb makes, which goes to the backend and back to the client, so that one request can be followed through every
// log it touches. No I/O, no clock: the caller seeds the generator (each shard its own, from getrandom()).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "http/message_parser.h"

namespace lb::http {

// A generated id: a random (version 4) UUID in its 36-character text form, "0f8fad5b-d9cb-469f-a165-70867728950e",
// as Envoy makes them. Unique, not secret: 122 random bits from a per-shard generator.
using RequestId = std::array<char, 36>;

class RequestIdGenerator {
  public:
    explicit RequestIdGenerator(uint64_t seed) : state_(seed) {}
    RequestId next();

  private:
    uint64_t next64();
    uint64_t state_;  // splitmix64: every seed gives a full-period sequence, and two shards never share a seed
};

// The value of the first field named `header` (case-insensitive) in `head`, or "" when there is none. An empty
// value counts as none: an id must identify something.
std::string_view find_request_id(const MessageHead& head, std::string_view header);

}  // namespace lb::http
