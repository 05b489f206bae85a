// The consistent-hash key of a request, taken from where the config says: the client's address, a header, a
// cookie or the path. Pure.
#pragma once

#include <string_view>

#include "http/message_parser.h"
#include "pool/balancer_options.h"

namespace lb::route {

// A view into `request` or `client_address`; empty when the request has no such header or cookie (the pool then
// hashes the empty key, so such requests all land on one backend, as with HAProxy's hash-type).
std::string_view request_hash_key(const http::MessageHead& request, const pool::ConsistentHashOptions& options,
                                  std::string_view client_address);

}  // namespace lb::route
