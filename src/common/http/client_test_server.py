#!/usr/bin/env python3
"""The HTTP server client_test.cpp runs its calls against (HTTP/1.1 with keep-alive).

    client_test_server.py [--tls CERT KEY]

Prints its port on the first line of stdout, then serves until killed. Endpoints:
  ANY  /echo          200; the body lists the method, the request body and some headers
  GET  /status/N      answers status N with the body "status N"
  GET  /slow/MS       waits MS milliseconds, then answers 200 "slow"
  GET  /lines         200, the body "one\\r\\ntwo\\n\\nthree\\nunterminated", sent in pieces
  GET  /endless       200, a line "tick N" every 20 ms until the client goes away
  GET  /short         announces 100 bytes of body, sends 5 and closes the connection
  GET  /connections   the number of TCP connections accepted so far
  GET  /target        200, the body is the request target as received (absolute through a proxy)
  GET  /chunked       200 chunked: "hello, " "chunked " "world" with a chunk extension and a trailer
  GET  /chunked-lines 200 chunked, the /lines body in chunks that split lines
  GET  /chunked-cut   200 chunked, closes inside the second chunk
  GET  /until-close   200 with no Content-Length: "delimited by close", then closes
  GET  /large/N       200 with N bytes ("0123456789" repeated), Content-Length
  GET  /then-close    200 "bye" kept alive by its headers, but the server closes the connection
  GET  /bad-status    answers "HTCPCP/1.0 418 I'm a teapot" and closes
  GET  /endless-header  a status line, then one header line that never ends (until 64 MB)
  GET  /many-headers  a status line, then header lines without end (until 64 MB)
  GET  /huge-length   announces Content-Length 10^17, sends 10 bytes and closes
  GET  /head-then-body  200 with Content-Length 4: the head at once, the body "body" 500 ms later
  POST /refuse-body   answers 413 "too large" before reading the body, then closes without
                      reading it (the client is still sending a large body)
"""
import http.server
import socket
import ssl
import sys
import threading
import time

connections = 0
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global connections
        with lock:
            connections += 1
        super().setup()

    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def raw(self, data, close=True):
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = close

    def flood(self, head, piece):
        # Sends `head`, then `piece` again and again until 64 MB or the client goes away.
        try:
            self.wfile.write(head)
            for _ in range((64 << 20) // len(piece)):
                self.wfile.write(piece)
        except OSError:
            pass
        self.close_connection = True

    def handle_any(self):
        if self.path == "/refuse-body":
            self.raw(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\n"
                     b"Connection: close\r\n\r\ntoo large")
            # Half-closes and waits a little before the close, which (with the body unread)
            # resets the connection: the client must read the answer rather than fail sending.
            self.connection.shutdown(socket.SHUT_WR)
            time.sleep(0.3)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        path = self.path
        if path.startswith("http://"):  # the absolute form a proxy gets
            path = "/" + path.split("/", 3)[3]
        if path == "/echo":
            lines = [f"method={self.command}", f"body={body}"]
            for name in ("Authorization", "Content-Type", "X-Test", "Expect"):
                lines.append(f"{name}={self.headers.get(name, '')}")
            self.answer(200, "\n".join(lines), [("X-Answer", "yes"), ("X-Answer", "twice")])
        elif path.startswith("/status/"):
            code = int(path.split("/")[2])
            self.answer(code, f"status {code}")
        elif path.startswith("/slow/"):
            time.sleep(int(path.split("/")[2]) / 1000)
            self.answer(200, "slow")
        elif path == "/lines":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for piece in ["on", "e\r\ntw", "o\n", "\nthree\n", "unterminated"]:
                self.wfile.write(piece.encode())
                self.wfile.flush()
                time.sleep(0.02)
            self.close_connection = True
        elif path == "/endless":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for n in range(100000):
                    self.wfile.write(f"tick {n}\n".encode())
                    self.wfile.flush()
                    time.sleep(0.02)
            except OSError:
                pass
            self.close_connection = True
        elif path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"12345")
            self.wfile.flush()
            self.close_connection = True
        elif path == "/target":
            self.answer(200, self.path)
        elif path == "/chunked":
            self.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"7\r\nhello, \r\n8;ext=1\r\nchunked \r\n5\r\nworld\r\n"
                     b"0\r\nX-Trailer: t\r\n\r\n", close=False)
        elif path == "/chunked-lines":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in [b"on", b"e\r\ntw", b"o\n", b"\nthree\n", b"unterminated"]:
                self.raw(b"%x\r\n%s\r\n" % (len(piece), piece), close=False)
                time.sleep(0.02)
            self.raw(b"0\r\n\r\n", close=False)
        elif path == "/chunked-cut":
            self.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n10\r\nonly a few")
        elif path == "/until-close":
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                     b"delimited by close")
        elif path.startswith("/large/"):
            size = int(path.split("/")[2])
            self.answer(200, ("0123456789" * (size // 10 + 1))[:size])
        elif path == "/head-then-body":
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n", close=False)
            time.sleep(0.5)
            self.raw(b"body", close=False)
        elif path == "/then-close":
            self.answer(200, "bye")
            self.close_connection = True
        elif path == "/bad-status":
            self.raw(b"HTCPCP/1.0 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n")
        elif path == "/endless-header":
            self.flood(b"HTTP/1.1 200 OK\r\nX-Long: ", b"a" * 65536)
        elif path == "/many-headers":
            self.flood(b"HTTP/1.1 200 OK\r\n", b"X-Again: aaaaaaaaaaaaaaaaaaaaaaaa\r\n" * 1024)
        elif path == "/huge-length":
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000000000000\r\n\r\n0123456789")
        elif path == "/connections":
            with lock:
                count = connections
            self.answer(200, str(count))
        else:
            self.answer(404, "no such path")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
