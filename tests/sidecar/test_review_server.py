"""The probe server under conditions the red-team tests did not reach: running out of
file descriptors, and the end of a head found in the right place."""

from __future__ import annotations

import json
import subprocess
import sys

from agentos_secrets.sidecar.httpio import find_head_end, parse_head

# In a child: it lowers its own RLIMIT_NOFILE so that accept() fails with EMFILE while
# clients (in a grandchild, started before the limit) wait on the listen queue.
EMFILE_CHILD = r"""
import json, logging, os, resource, socket, subprocess, sys, time

from agentos_secrets.sidecar.server import MetricsAuth, Server

class Engine:  # the routes need answers; the I/O loop is what is tested here
    def health(self, now): return True, {}
    readiness = startup = health

class Metrics:
    def set_warning(self, *args): pass

records = []
class Keep(logging.Handler):
    def emit(self, record): records.append(record.getMessage())
logging.getLogger().addHandler(Keep())

server = Server(("127.0.0.1", 0), Engine(), Metrics(), MetricsAuth({}), time.monotonic)
server.start()
port = server.address[1]
clients = subprocess.Popen([sys.executable, "-c", (
    "import socket, sys\n"
    "sys.stdin.readline()\n"
    f"held = [socket.create_connection(('127.0.0.1', {port})) for _ in range(3)]\n"
    "for s in held: s.sendall(b'GET /healthz HTTP/1.1\\r\\n\\r\\n')\n"
    "print('connected', flush=True)\n"
    "sys.stdin.readline()\n"
    "sys.stdout.write(' '.join(s.recv(12).decode() for s in held)); sys.stdout.flush()\n"
)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
fillers = []  # every descriptor left taken, so that accept() fails with EMFILE
while True:
    try:
        fillers.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        break
clients.stdin.write("go\n"); clients.stdin.flush()
assert clients.stdout.readline().strip() == "connected"
turns = server.turns
time.sleep(1.0)  # the connections wait in the listen queue while accept() fails
turns = server.turns - turns
for fd in fillers:
    os.close(fd)
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
clients.stdin.write("go\n"); clients.stdin.flush()
answers = clients.communicate(timeout=30)[0]
server.stop()
failed = [r for r in records if "accept failed" in r]
print(json.dumps({"turns": turns, "warnings": len(failed), "answers": answers}))
"""


def test_accept_failing_with_emfile_neither_spins_nor_floods_the_log_and_recovers():
    done = subprocess.run(
        [sys.executable, "-c", EMFILE_CHILD], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # Retrying accept() at once spun the loop (tens of thousands of turns, as many
    # warnings, in that second); now it pauses between tries and warns once.
    assert result["turns"] < 200, result
    assert result["warnings"] == 1, result
    # Once descriptors are free again the waiting clients are served.
    assert result["answers"] == " ".join(["HTTP/1.1 200"] * 3), result


def test_the_first_blank_line_ends_the_head_whatever_its_line_ends():
    # A bare-LF head followed by a pipelined CRLF request: the head is the first one,
    # not everything up to the later CRLF blank line (that made the request a 400).
    buffer = b"GET /healthz HTTP/1.1\nHost: x\n\nGET /x HTTP/1.1\r\n\r\n"
    end = find_head_end(buffer)
    assert buffer[:end] == b"GET /healthz HTTP/1.1\nHost: x\n\n"
    assert parse_head(buffer[:end]).path == "/healthz"
    crlf = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\n\n"
    assert crlf[: find_head_end(crlf)] == b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    assert find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n") == -1


# In a child: descriptors opened or closed by other tests' leftover threads must not
# move the count.
CHURN_CHILD = r"""
import json, os, socket, struct, time

from agentos_secrets.sidecar.server import MetricsAuth, Server

class Engine:
    def health(self, now): return True, {}
    readiness = startup = health

class Metrics:
    def set_warning(self, *args): pass
    def render(self): return b"# metrics\n", "text/plain"

server = Server(("127.0.0.1", 0), Engine(), Metrics(), MetricsAuth({}), time.monotonic)
server.start()
port = server.address[1]

def fds():
    return len(os.listdir("/proc/self/fd"))

def get():
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
        return client.recv(64).decode("latin-1")

def settle():
    # The server closes a connection after answering; wait until it has, so a count
    # never catches the previous request's socket still open.
    deadline = time.monotonic() + 20
    while server._conns and time.monotonic() < deadline:
        time.sleep(0.05)

first = get()
settle()
baseline = fds()
for i in range(400):
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    mode = i % 4
    if mode in (1, 3):
        path = b"/healthz" if mode == 1 else b"/metrics"
        client.sendall(b"GET " + path + b" HTTP/1.1\r\n\r\n")
    elif mode == 2:
        client.sendall(b"GET /metr")  # half a head, then gone
    if mode in (0, 1):  # reset rather than close
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
settle()
result = {"first": first, "baseline": baseline, "open": len(server._conns), "after": fds(),
          "last": get()}
server.stop()
print(json.dumps(result))
"""


def test_connects_resets_and_half_heads_leave_no_descriptor_behind():
    done = subprocess.run(
        [sys.executable, "-c", CHURN_CHILD], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["first"].startswith("HTTP/1.1 200"), result
    assert result["open"] == 0 and result["after"] == result["baseline"], result
    assert result["last"].startswith("HTTP/1.1 200"), result


def test_a_route_that_raises_is_a_500_without_its_text_and_the_server_keeps_serving(canary):
    import socket
    import time

    from agentos_secrets.sidecar.server import MetricsAuth, Server

    class Engine:
        broken = True

        def health(self, now: float) -> tuple[bool, dict[str, object]]:
            if self.broken:
                raise RuntimeError(f"the token is {canary.value}")
            return True, {}

        readiness = startup = health

    engine = Engine()
    server = Server(("127.0.0.1", 0), engine, object(), MetricsAuth({}),  # type: ignore[arg-type]
                    time.monotonic)
    server.start()

    def get() -> bytes:
        with socket.create_connection(server.address, timeout=10) as client:
            client.sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
            data = b""
            while chunk := client.recv(4096):
                data += chunk
            return data

    try:
        for _ in range(5):  # more failures than workers: none of them is lost
            answer = get()
            assert answer.startswith(b"HTTP/1.1 500")
            canary.assert_absent(answer)
        engine.broken = False
        assert get().startswith(b"HTTP/1.1 200")
    finally:
        server.stop()
