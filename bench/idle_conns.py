#!/usr/bin/env python3
"""idle_conns.py: hold N idle keep-alive HTTP/1.1 client connections open, for bench/run --memory.

Usage: idle_conns.py HOST PORT N [--path /] [--concurrency 256] [--tls]

Opens N connections (at most --concurrency connecting or waiting for a response at a time, so the listen backlog
never overflows), with --tls makes a full TLS handshake on each (no resumption, the certificate not verified), sends
one keep-alive GET on each and reads its whole response, and keeps the socket open. Then it
prints one line,
    ready ok=<connections idle and open> failed=<connections that failed> seconds=<time taken>
and holds the connections until its standard input closes (or SIGTERM/SIGINT), then closes them all. Each "check"
line on standard input is answered with "alive=<still open> closed=<closed by the server since>".
Python standard library only; raise `ulimit -n` above N before starting it.
"""
import argparse
import resource
import selectors
import signal
import socket
import ssl
import sys
import time


class Conn:
    __slots__ = ("sock", "buf", "need", "state")

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.need = None  # total bytes of the response once its headers are complete
        self.state = "connecting"


def response_length(head):
    """Bytes in the whole response, from its header section (bytes up to and including the blank line)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + int(value.strip())
    return None  # no Content-Length: the demo backend always sends one, so treat it as a failure


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("count", type=int)
    parser.add_argument("--path", default="/")
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--timeout", type=float, default=60.0, help="give up on the whole setup after this long")
    parser.add_argument("--tls", action="store_true", help="HTTPS: a full TLS handshake on each connection")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    request = f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    idle = []
    failed = 0
    started = 0
    in_flight = 0
    t0 = time.monotonic()

    tls = None
    if args.tls:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE

    def send_request(conn):
        try:
            conn.sock.send(request)  # tiny request on a fresh connection: fits the send buffer (one record)
        except OSError:
            fail(conn)
            return
        conn.state = "reading"
        sel.modify(conn.sock, selectors.EVENT_READ, conn)

    def handshake(conn):
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            sel.modify(conn.sock, selectors.EVENT_READ, conn)
            return
        except ssl.SSLWantWriteError:
            sel.modify(conn.sock, selectors.EVENT_WRITE, conn)
            return
        except OSError:
            fail(conn)
            return
        send_request(conn)

    def fail(conn):
        nonlocal failed, in_flight
        sel.unregister(conn.sock)
        conn.sock.close()
        failed += 1
        in_flight -= 1

    while len(idle) + failed < args.count:
        while started < args.count and in_flight < args.concurrency:
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError as e:  # out of file descriptors: count the rest as failed
                print(f"idle_conns: socket(): {e}", file=sys.stderr)
                failed += args.count - started
                started = args.count
                break
            sock.setblocking(False)
            sock.connect_ex((args.host, args.port))
            conn = Conn(sock)
            sel.register(sock, selectors.EVENT_WRITE, conn)
            started += 1
            in_flight += 1
        if time.monotonic() - t0 > args.timeout:
            print(f"idle_conns: timed out with {in_flight} connections unfinished", file=sys.stderr)
            for key in list(sel.get_map().values()):
                fail(key.data)
            break
        for key, _ in sel.select(timeout=1.0):
            conn = key.data
            if conn.state == "connecting":
                if conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    fail(conn)
                    continue
                if tls:
                    sel.unregister(conn.sock)
                    conn.sock = tls.wrap_socket(conn.sock, server_hostname=args.host, do_handshake_on_connect=False)
                    sel.register(conn.sock, selectors.EVENT_WRITE, conn)
                    conn.state = "handshaking"
                    handshake(conn)
                else:
                    send_request(conn)
                continue
            if conn.state == "handshaking":
                handshake(conn)
                continue
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue  # over TLS: a record that carried no data (a session ticket), or a partial one
            except OSError:
                fail(conn)
                continue
            if not data:
                fail(conn)
                continue
            conn.buf += data
            if conn.need is None:
                end = conn.buf.find(b"\r\n\r\n")
                if end < 0:
                    continue
                conn.need = response_length(conn.buf[: end + 4])
                if conn.need is None or not conn.buf.startswith(b"HTTP/1.1 200"):
                    fail(conn)
                    continue
            if len(conn.buf) >= conn.need:
                sel.unregister(conn.sock)
                conn.buf = b""
                idle.append(conn.sock)
                in_flight -= 1

    print(f"ready ok={len(idle)} failed={failed} seconds={time.monotonic() - t0:.2f}", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        # Hold until the driver closes our stdin. A "check" line asks how many connections the server still holds
        # open: an idle connection that turned readable was closed by the server (or got unexpected bytes).
        for line in sys.stdin:
            if line.strip() == "check":
                for sock in idle:
                    sel.register(sock, selectors.EVENT_READ)
                closed = len(sel.select(timeout=0))
                for sock in idle:
                    sel.unregister(sock)
                print(f"alive={len(idle) - closed} closed={closed}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        for sock in idle:
            sock.close()


if __name__ == "__main__":
    main()
