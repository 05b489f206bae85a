// ProxySession's access log line: what the session and its exchange know about a request, as an AccessRecord for
// the shard's WorkerLog. Kept out of proxy_session.cpp, which only says when a line is due.
#include <uv.h>

#include "access_log/access_log_line.h"
#include "core/proxy/proxy_session.h"
#include "core/shard/shard.h"
#include "net/tls_transport.h"

namespace lb::core {

// Called as the response is complete (a backend's) or queued (lb's own error): its bytes still waiting in
// to_client_ count as sent, as they do for lb_client_sent_bytes_total.
void ProxySession::log_access(unsigned status) {
    uint64_t now = uv_hrtime();
    access_log::AccessRecord record;
    char protocol[] = "HTTP/1.1";
    record.client = client_address_;
    record.status = status;
    record.bytes_out = to_client_.bytes();
    if (const net::TlsSessionInfo* tls = client_->tls_info()) record.tls_version = tls->version;
    if (exchange_) {
        const Exchange& e = *exchange_;
        if (e.request.head_complete()) {
            const http::MessageHead& head = e.request.head();
            record.method = llhttp_method_name(head.method);
            record.target = head.target();
            // As the request line said: lb answers a version it does not speak (505) after parsing it.
            protocol[5] = static_cast<char>('0' + head.version_major % 10);
            protocol[7] = static_cast<char>('0' + head.version_minor % 10);
            record.protocol = protocol;
        }
        record.bytes_in = e.bytes_in;
        record.bytes_out += e.bytes_out;
        if (e.started_ns != 0) record.request_ns = now - e.started_ns;
        if (e.dispatched_ns != 0) {
            record.backend = shard_.backend_name(e.backend);
            if (e.connected_ns >= e.dispatched_ns) record.upstream_connect_ns = e.connected_ns - e.dispatched_ns;
            if (e.response_complete) record.upstream_response_ns = now - e.dispatched_ns;
        }
        record.retries = e.retries;
        record.request_id = request_id();
    }
    if (!shard_.access_log()->write(record)) shard_.metrics().on_access_log_dropped();
}

}  // namespace lb::core
