"""A stand-in for Stripe's API on localhost, for tests: an HTTP server with lists of the real shape (cursor
pagination with `starting_after` and `has_more`, the search API's `total_count`), retrievals, Stripe's error
bodies, and scripted faults (a 429 or a 500 on the next requests to a path). Tests point the `stripe` library
at it with STRIPE_API_BASE; nothing here leaves the machine."""

import json
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LISTS = ("customers", "subscriptions", "invoices", "events", "charges")


class FakeStripe:
    def __init__(self):
        self.objects: dict[str, list[dict]] = {name: [] for name in LISTS}
        self.keys: dict[str, str] = {}  # key → "ok" or "no_permission"; any other key is refused with a 401
        self.faults: dict[str, list[int]] = defaultdict(list)  # path → statuses to answer next, in order
        self.requests: list[tuple[str, dict, str]] = []  # (path, query, the key's last four characters)
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeStripe":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, path: str, *statuses: int) -> None:
        """Answer the next requests to `path` (e.g. "/v1/customers") with these statuses, in order."""
        with self.lock:
            self.faults[path].extend(statuses)

    def requests_to(self, path: str) -> list[dict]:
        return [query for p, query, _ in self.requests if p == path]

    # --- answering ------------------------------------------------------------------------------

    def answer(self, path: str, query: dict, key: str) -> tuple[int, dict]:
        with self.lock:
            self.requests.append((path, query, key[-4:]))
            fault = self.faults[path].pop(0) if self.faults.get(path) else None
        if fault == 429:
            return 429, _error("rate_limit_error", "Too many requests hit the API too quickly.", "rate_limit")
        if fault:
            return fault, _error("api_error", "Something went wrong on Stripe's end.")
        access = self.keys.get(key)
        if access is None:
            return 401, _error("invalid_request_error", f"Invalid API Key provided: {key[:8]}****{key[-4:]}")
        if access == "no_permission":
            return 403, _error(
                "invalid_request_error",
                "The provided key does not have the required permissions.",
                "secret_key_required",
            )
        parts = path.strip("/").split("/")[1:]  # after "v1"
        if parts == ["customers", "search"]:
            data = self.objects["customers"]
            return 200, {"object": "search_result", "data": data[:1], "has_more": len(data) > 1, "next_page": None,
                         "total_count": len(data), "url": "/v1/customers/search"}  # fmt: skip
        if len(parts) == 1 and parts[0] in LISTS:
            after = query.get("starting_after") or query.get("ending_before")
            if after and after not in {row["id"] for row in self.objects[parts[0]]}:  # as Stripe answers it
                return 400, _error("invalid_request_error", f"No such {parts[0][:-1]}: '{after}'", "resource_missing")
            return 200, self._page(parts[0], query)
        if len(parts) == 2 and parts[0] in LISTS:
            for obj in self.objects[parts[0]]:
                if obj["id"] == parts[1]:
                    return 200, obj
            return 404, _error("invalid_request_error", f"No such {parts[0][:-1]}: '{parts[1]}'", "resource_missing")
        return 404, _error("invalid_request_error", f"Unrecognized request URL (GET: {path}).")

    def _page(self, name: str, query: dict) -> dict:
        rows = self.objects[name]
        if name == "events":  # newest first, as Stripe lists them
            rows = sorted(rows, key=lambda e: (e["created"], e["id"]), reverse=True)
            if "created[gte]" in query:
                rows = [e for e in rows if e["created"] >= int(query["created[gte]"])]
        if name == "subscriptions" and query.get("status") != "all":
            rows = [s for s in rows if s.get("status") not in {"canceled", "incomplete_expired"}]
        if name == "invoices" and "status" in query:
            rows = [i for i in rows if i.get("status") == query["status"]]
        if name == "events" and "created[lt]" in query:
            rows = [e for e in rows if e["created"] < int(query["created[lt]"])]
        limit = int(query.get("limit", 10))
        ids = [row["id"] for row in rows]
        after, before = query.get("starting_after"), query.get("ending_before")
        if before:  # the page just before it in the list's order (newer ones), still in that order
            newer = rows[: ids.index(before)] if before in ids else []
            return {"object": "list", "data": newer[-limit:], "has_more": len(newer) > limit, "url": f"/v1/{name}"}
        if after:
            rows = rows[ids.index(after) + 1 :] if after in ids else []
        return {"object": "list", "data": rows[:limit], "has_more": len(rows) > limit, "url": f"/v1/{name}"}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's API
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                status, body = fake.answer(url.path, query, key)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", "req_fake")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # quiet
                pass

        return Handler


def _error(kind: str, message: str, code: str | None = None) -> dict:
    return {"error": {"type": kind, "message": message, **({"code": code} if code else {})}}


def customer(n: int, *, email: str | None = "", name: str | None = None, delinquent: bool = False) -> dict:
    """A customer of the real shape (API 2025-03-31), `cus_fake<n>`."""
    return {
        "id": f"cus_fake{n:05d}", "object": "customer", "address": None, "balance": 0, "created": 1_700_000_000 + n,
        "currency": "usd", "default_source": None, "delinquent": delinquent, "description": None,
        "email": f"customer{n}@example.com" if email == "" else email, "invoice_prefix": f"F{n:05d}",
        "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None},
        "livemode": False, "metadata": {}, "name": name, "phone": None, "preferred_locales": [],
        "shipping": None, "tax_exempt": "none",
    }  # fmt: skip


def subscription(n: int, customer_id: str, *, status: str = "active", unit_amount: int = 1900, interval: str = "month",
                 quantity: int = 1, nickname: str | None = "Pro", created: int | None = None) -> dict:  # fmt: skip
    """A subscription of the real shape (API 2025-03-31: the period on its items)."""
    sub_id = f"sub_fake{n:05d}"
    price = {"id": f"price_fake_{nickname or 'plain'}_{interval}", "object": "price", "currency": "usd",
             "nickname": nickname, "product": "prod_fake", "recurring": {"interval": interval, "interval_count": 1,
             "usage_type": "licensed"}, "type": "recurring", "unit_amount": unit_amount}  # fmt: skip
    return {
        "id": sub_id, "object": "subscription", "cancel_at_period_end": False,
        "canceled_at": 1_760_000_000 if status == "canceled" else None, "created": created or 1_750_000_000 + n,
        "currency": "usd", "customer": customer_id,
        "items": {"object": "list", "data": [{"id": f"si_fake{n:05d}", "object": "subscription_item",
                  "current_period_end": 1_790_000_000, "current_period_start": 1_787_000_000, "price": price,
                  "quantity": quantity, "subscription": sub_id}], "has_more": False, "url": "/v1/subscription_items"},
        "livemode": False, "status": status, "trial_end": None,
    }  # fmt: skip


def invoice(n: int, customer_id: str, *, amount_paid: int = 1900, status: str = "paid") -> dict:
    return {
        "id": f"in_fake{n:05d}", "object": "invoice", "amount_due": amount_paid, "amount_paid": amount_paid,
        "amount_remaining": 0, "created": 1_760_000_000 + n, "currency": "usd", "customer": customer_id,
        "customer_email": None, "livemode": False, "status": status,
        "status_transitions": {"paid_at": 1_760_000_000 + n if status == "paid" else None},
    }  # fmt: skip
