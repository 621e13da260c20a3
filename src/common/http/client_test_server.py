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
"""
import http.server
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

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        path = self.path
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
