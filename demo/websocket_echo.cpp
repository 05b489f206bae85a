#include "demo/websocket_echo.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>

namespace lb::demo {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void append_frame_header(std::string& out, uint8_t first_byte, uint64_t length) {
    out.push_back(static_cast<char>(first_byte));
    if (length < 126) {
        out.push_back(static_cast<char>(length));
    } else if (length <= 0xffff) {
        out.push_back(static_cast<char>(126));
        out.push_back(static_cast<char>(length >> 8));
        out.push_back(static_cast<char>(length & 0xff));
    } else {
        out.push_back(static_cast<char>(127));
        for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((length >> shift) & 0xff));
    }
}

}  // namespace

std::string websocket_accept(std::string_view key) {
    std::string input(key);
    input.append(kGuid);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
    unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
    int n = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
    return {reinterpret_cast<const char*>(encoded), static_cast<size_t>(n)};
}

void append_websocket_frame_header(std::string& out, uint8_t opcode, uint64_t length) {
    append_frame_header(out, static_cast<uint8_t>(0x80 | opcode), length);
}

void append_websocket_frame(std::string& out, uint8_t opcode, std::string_view payload) {
    append_frame_header(out, static_cast<uint8_t>(0x80 | opcode), payload.size());
    out.append(payload);
}

void WebSocketEcho::send_close(std::string& out, uint16_t code, std::string_view reason) {
    if (close_sent_) return;
    close_sent_ = true;
    std::string payload;
    payload.push_back(static_cast<char>(code >> 8));
    payload.push_back(static_cast<char>(code & 0xff));
    payload.append(reason.substr(0, 123));
    append_websocket_frame(out, kClose, payload);
}

void WebSocketEcho::fail(std::string& out) {
    failed_ = true;
    send_close(out, 1002, "protocol error");
}

void WebSocketEcho::feed(std::string_view in, std::string& out) {
    while (!in.empty() && !failed_ && !close_received_) {
        if (!in_payload_) {
            size_t take = std::min(in.size(), header_need_ - header_have_);
            std::copy_n(in.data(), take, header_ + header_have_);
            header_have_ += take;
            in.remove_prefix(take);
            if (header_have_ < header_need_) return;
            if (header_need_ == 2) {
                // The first two bytes say how long the rest of the header is: extended length and mask.
                if ((header_[1] & 0x80) == 0) {
                    fail(out);  // RFC 6455 §5.1: a client masks every frame
                    return;
                }
                uint8_t len7 = header_[1] & 0x7f;
                header_need_ = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
                if (header_have_ < header_need_) continue;
            }
            on_header_complete(out);
            if (failed_) return;
            continue;
        }
        size_t take = static_cast<size_t>(std::min<uint64_t>(in.size(), remaining_));
        std::string unmasked(in.substr(0, take));
        for (size_t i = 0; i < take; ++i) unmasked[i] = static_cast<char>(unmasked[i] ^ mask_[(offset_ + i) % 4]);
        in.remove_prefix(take);
        offset_ += take;
        remaining_ -= take;
        if (is_control(opcode_)) {
            control_.append(unmasked);
        } else if (!close_sent_) {
            out.append(unmasked);
        }
        if (remaining_ == 0) {
            in_payload_ = false;
            if (is_control(opcode_)) {
                on_control_complete(out);
            } else if (fin_ && ++messages_ == close_after_) {
                send_close(out, 1000, "bye");
            }
        }
    }
}

void WebSocketEcho::on_header_complete(std::string& out) {
    fin_ = (header_[0] & 0x80) != 0;
    opcode_ = header_[0] & 0x0f;
    uint8_t len7 = header_[1] & 0x7f;
    size_t at = 2;
    uint64_t length = len7;
    if (len7 == 126) {
        length = (uint64_t{header_[2]} << 8) | header_[3];
        at = 4;
    } else if (len7 == 127) {
        length = 0;
        for (size_t i = 0; i < 8; ++i) length = (length << 8) | header_[2 + i];
        at = 10;
    }
    std::copy_n(header_ + at, 4, mask_);
    header_have_ = 0;
    header_need_ = 2;
    remaining_ = length;
    offset_ = 0;
    if (is_control(opcode_)) {
        if (!fin_ || length > 125) {
            fail(out);
            return;
        }
        control_.clear();
    } else if (!close_sent_) {
        // Data (or a continuation): the header goes back now, as the client framed it, and the payload follows
        // as it arrives.
        append_frame_header(out, static_cast<uint8_t>((fin_ ? 0x80 : 0) | opcode_), length);
    }
    in_payload_ = true;
    if (length == 0) {
        in_payload_ = false;
        if (is_control(opcode_)) {
            on_control_complete(out);
        } else if (fin_ && ++messages_ == close_after_) {
            send_close(out, 1000, "bye");
        }
    }
}

void WebSocketEcho::on_control_complete(std::string& out) {
    switch (opcode_) {
        case kPing:
            if (!close_sent_) append_websocket_frame(out, kPong, control_);
            break;
        case kClose:
            close_received_ = true;
            if (!close_sent_) {
                close_sent_ = true;
                append_websocket_frame(out, kClose, control_.substr(0, std::min<size_t>(control_.size(), 2)));
            }
            break;
        default:
            break;  // a pong, or a reserved opcode: nothing to answer
    }
}

}  // namespace lb::demo
