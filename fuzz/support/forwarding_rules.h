// The header rules lb promises on the wire (README, "What it does on the wire"), restated here independently of
// http/header_rules.cpp so the fuzz oracles do not share lb's bugs. Each check returns an empty string when the
// rule holds, otherwise what is wrong.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "fuzz/support/wire_parser.h"

namespace lb::fuzz {

// Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade (RFC 9110 §7.6.1).
bool is_hop_by_hop_field(std::string_view name);

// The fields of `message` that cross a proxy unchanged and in order: not hop-by-hop, not named by a Connection
// field, not Content-Length (the proxy writes its own framing), and not any of `also_dropped`.
std::vector<WireField> end_to_end_fields(const WireMessage& message, const std::vector<std::string_view>& also_dropped);

// The fields of a message lb wrote, less `names` (the framing and forwarding fields lb writes itself).
std::vector<WireField> fields_except(const WireMessage& message, const std::vector<std::string_view>& names);

// The Upgrade lb passes on for `client` (README, "WebSocket and Upgrade"): an HTTP/1.1 request whose Connection
// names upgrade, with one non-empty Upgrade field and no body. Empty when it passes none.
std::string upgrade_passed_on(const WireMessage& client);

// `upstream` is what lb wrote to a backend for the client's request `client`: same method and target as
// HTTP/1.1, exactly one Host equal to the client's, the end-to-end fields unchanged and in order, framing fields
// of lb's own that match the client's body, X-Forwarded-For with `client_address` appended, X-Forwarded-Proto.
std::string check_forwarded_request(const WireMessage& client, const WireMessage& upstream,
                                    std::string_view client_address);

// What any response lb writes to a client must look like: HTTP/1.1, no hop-by-hop field but its own
// Connection (close or keep-alive) and Transfer-Encoding (chunked); a 101 has exactly its Upgrade (one protocol list)
// and Connection: upgrade, both lb's own.
std::string check_client_response(const WireMessage& response);

// `relayed` is what lb wrote to the client for the backend's `backend` response: same status and reason, the
// end-to-end fields unchanged and in order.
std::string check_relayed_response(const WireMessage& backend, const WireMessage& relayed);

}  // namespace lb::fuzz
