"""A tiny SSE client (standard library): reads events until the server closes the stream."""
import http.client
import json
import urllib.parse


class SseStream:
    def __init__(self, url, headers=None, timeout=30):
        parsed = urllib.parse.urlparse(url)
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
        self.connection.request("GET", parsed.path, headers=headers or {})
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.comments = []

    def events(self):
        """Yields (id, event, data-as-json) until the stream ends; comments are collected."""
        event = {}
        while True:
            line = self.response.readline()
            if not line:
                return
            line = line.decode().rstrip("\\r\\n").rstrip("\n").rstrip("\r")
            if not line:
                if event:
                    yield event.get("id"), event.get("event"), json.loads(event.get("data", "null"))
                event = {}
            elif line.startswith(":"):
                self.comments.append(line)
            else:
                key, _, value = line.partition(":")
                event[key] = value[1:] if value.startswith(" ") else value

    def close(self):
        self.connection.close()
