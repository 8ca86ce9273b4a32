"""A small RFC 6455 client (stdlib only) for the integration tests' JSON sockets.

Independent of libwebsockets on purpose: a bug shared by the server's stack and
the test's could not hide itself. Client frames are masked; server frames are
not; fragments are reassembled; a close frame ends the stream."""
import base64, json, os, socket, struct, time


class WebSocket:
    def __init__(self, port, path, host="127.0.0.1", ssl_context=None, server_hostname=None):
        self.sock = socket.create_connection((host, port), timeout=5)
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname=server_hostname or host)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace").splitlines()[0])
        self.close_code = None
        self.close_reason = ""

    def send(self, obj):
        data = (obj if isinstance(obj, str) else json.dumps(obj)).encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
                                 if n < 65536 else bytes([0x80 | 127]) + struct.pack(">Q", n))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _frame(self):
        while True:
            if len(self.buf) >= 2:
                n, h = self.buf[1] & 0x7F, 2
                if n == 126 and len(self.buf) >= 4:
                    n, h = struct.unpack(">H", self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, h = struct.unpack(">Q", self.buf[2:10])[0], 10
                if n < 126 or h > 2:
                    if len(self.buf) >= h + n:
                        op, fin, data = self.buf[0] & 0x0F, self.buf[0] & 0x80, self.buf[h:h + n]
                        self.buf = self.buf[h + n:]
                        return op, fin, data
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk

    def recv(self, timeout=5.0):
        """the next text message parsed as JSON, or None when the socket closed or timed out"""
        self.sock.settimeout(timeout)
        parts = b""
        try:
            while True:
                f = self._frame()
                if f is None:
                    return None
                op, fin, data = f
                if op == 8:
                    self.close_code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else 1005
                    self.close_reason = data[2:].decode(errors="replace")
                    return None
                if op in (1, 0):
                    parts += data
                    if fin:
                        return json.loads(parts)
        except socket.timeout:
            return None

    def messages(self, seconds):
        """every text message for `seconds` (stops early on close)"""
        out, end = [], time.time() + seconds
        while time.time() < end:
            m = self.recv(max(0.05, end - time.time()))
            if m is None and self.close_code is not None:
                break
            if m is not None:
                out.append(m)
        return out

    def close(self):
        self.sock.close()
