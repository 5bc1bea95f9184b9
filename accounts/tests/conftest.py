import socket
import threading

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest


def _parts(record: str | tuple[str, ...]) -> tuple[str, ...]:
    return record if isinstance(record, tuple) else (record,)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LocalDNS:
    """A tiny authoritative DNS server on 127.0.0.1 (UDP), answering TXT queries from `records`
    ({"example.com": ["v=spf1 -all", ("a record in ", "two strings")]}); any other name is NXDOMAIN.
    Built with dnspython's own message parsing, so the resolver under test speaks real DNS to it."""

    def __init__(self):
        self.records: dict[str, list[str]] = {}
        self.silent: set[str] = set()  # names it never answers (a timeout)
        self.queries: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _answer(self, query: dns.message.Message) -> dns.message.Message | None:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        self.queries.append(name)
        if name in self.silent:
            return None
        if name not in self.records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT and self.records[name]:
            texts = [" ".join(_quoted(part) for part in _parts(record)) for record in self.records[name]]
            response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "TXT", *texts))
        return response  # no TXT record: an empty answer (NOERROR, NODATA)

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                response = self._answer(dns.message.from_wire(data))
            except Exception:  # noqa: BLE001, S112 - a malformed packet is dropped, as a real server would
                continue
            if response is not None:
                self.sock.sendto(response.to_wire(), peer)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture(autouse=True)
def _no_dns_from_tests(settings):
    """Whatever a test does, verification never asks a resolver outside this machine."""
    settings.SENDER_DOMAIN_NAMESERVERS = ["127.0.0.1:9"]  # discard: nobody answers
    settings.SENDER_DOMAIN_DNS_TIMEOUT = 0.5


@pytest.fixture
def dns_server(settings):
    """A local DNS server, with sender-domain verification pointed at it (no internet in tests)."""
    server = LocalDNS()
    settings.SENDER_DOMAIN_NAMESERVERS = [f"127.0.0.1:{server.port}"]
    settings.SENDER_DOMAIN_DNS_TIMEOUT = 2.0
    yield server
    server.close()


@pytest.fixture
def worker():
    """Runs what a request left for after its commit (captured with django_capture_on_commit_callbacks:
    a test's transaction never commits) with tasks executed here, as a worker would, or as `make run`
    does without a broker."""
    from loopsync.celery import app

    def run(callbacks):
        eager = app.conf.task_always_eager
        app.conf.task_always_eager = True
        try:
            for callback in callbacks:
                callback()
        finally:
            app.conf.task_always_eager = eager

    return run
