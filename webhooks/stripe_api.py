"""Calls to Stripe's API with an endpoint's restricted key: checking the key, learning an unknown customer,
and paging through lists with the `stripe` library's auto-pagination. The key is never logged: errors are
reported by their kind, and Stripe's own messages mask keys."""

import functools
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import stripe
from django.conf import settings
from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

logger = logging.getLogger(__name__)

KEY_PREFIXES = {True: "rk_live_", False: "rk_test_"}


class StripeUnavailable(Exception):
    """Stripe could not answer now (network, 5xx after the library's retries, rate limit): try later."""


class StripeRefused(Exception):
    """Stripe refused the key or the request for good (revoked key, missing permission, bad request)."""


def client(api_key: str) -> stripe.StripeClient:
    """A client for this key and the current settings, kept for the next call (its connections are reused)."""
    return _client(api_key, settings.STRIPE_API_BASE, settings.STRIPE_API_RETRIES, settings.STRIPE_API_TIMEOUT)


@functools.lru_cache(maxsize=64)
def _client(api_key: str, base: str, retries: int, timeout: int) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": base},
        max_network_retries=retries,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def _mapped(exc: stripe.StripeError) -> Exception:
    """Stripe's error as one of ours: refused for good, or unavailable for now."""
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return StripeRefused(_refused(exc))
    if isinstance(exc, stripe.InvalidRequestError):
        return StripeRefused(f"Stripe refused the request: {exc.user_message or exc.code or 'invalid'}")
    return StripeUnavailable(f"Stripe did not answer ({type(exc).__name__})")


def _backoff(attempt: int) -> None:
    time.sleep(min(0.5 * 2**attempt, 8) * random.uniform(0.5, 1))  # noqa: S311 - jitter, not secrets


def _call(call: Callable[[], Any]) -> Any:
    """One API call; a 429 is waited out with exponential backoff (the library retries 5xx itself)."""
    for attempt in range(settings.STRIPE_RATE_LIMIT_RETRIES + 1):
        try:
            return call()
        except stripe.RateLimitError as exc:
            if attempt == settings.STRIPE_RATE_LIMIT_RETRIES:
                raise StripeUnavailable("Stripe's rate limit: still refused after waiting") from exc
            _backoff(attempt)
        except stripe.StripeError as exc:
            raise _mapped(exc) from exc
    raise AssertionError("unreachable")


def _refused(exc: stripe.StripeError) -> str:
    if isinstance(exc, stripe.AuthenticationError):
        return "Stripe does not accept this key: it was revoked, expired or mistyped."
    return (
        "This key may not read what LoopSync needs: give it read access to Customers, Subscriptions, Invoices, "
        "Charges and Events."
    )


@sensitive_variables("api_key")
def api_key_validate(*, api_key: str, livemode: bool) -> str:
    """A restricted key for this endpoint's Stripe mode, which Stripe accepts (checked with one call).
    Raises ValidationError saying what is wrong; the key itself is never in the message."""
    api_key = api_key.strip()
    prefix = KEY_PREFIXES[livemode]
    if api_key.startswith(("sk_", "pk_")):
        raise ValidationError(
            "Use a restricted key (rk_…), not a secret or publishable one: Stripe → Developers → API keys → "
            "Create restricted key, with Read on Customers, Subscriptions, Invoices, Charges and Events."
        )
    if api_key.startswith(KEY_PREFIXES[not livemode]):
        mode = "live" if livemode else "test"
        raise ValidationError(f"This endpoint is for Stripe's {mode} mode: its key starts with {prefix}.")
    if not api_key.startswith(prefix) or len(api_key) < 20 or any(c.isspace() for c in api_key):
        raise ValidationError(f"A Stripe restricted key starts with {prefix}.")
    try:
        _call(lambda: client(api_key).v1.customers.list({"limit": 1}))
    except StripeRefused as exc:
        raise ValidationError(str(exc)) from None
    except StripeUnavailable:
        raise ValidationError("Stripe could not be reached to check the key. Nothing was saved: try again.") from None
    return api_key


def _retrieve(call: Callable[[], Any]) -> dict | None:
    """One object as a dict, or None when Stripe has no such object (404)."""
    try:
        return _plain(_call(call))
    except StripeRefused as exc:
        if isinstance(exc.__cause__, stripe.InvalidRequestError) and exc.__cause__.http_status == 404:
            return None
        raise


def customer_fetch(*, api_key: str, customer_id: str) -> dict | None:
    """The customer as a dict, or None when Stripe has no such customer (or it was deleted)."""
    found = _retrieve(lambda: client(api_key).v1.customers.retrieve(customer_id))
    return None if found is None or found.get("deleted") else found


def charge_fetch(*, api_key: str, charge_id: str) -> dict | None:
    return _retrieve(lambda: client(api_key).v1.charges.retrieve(charge_id))


def _plain(obj: stripe.StripeObject) -> dict:
    """The object as Stripe sent it: `to_dict()` turns decimal strings (`unit_amount_decimal`) into Decimal,
    which JSON (and a JSONField) cannot hold, so they go back to the strings they were."""
    return json.loads(
        json.dumps(obj.to_dict(), default=lambda value: str(value) if isinstance(value, Decimal) else value)
    )


def pages(
    *, api_key: str, resource: str, params: dict, starting_after: str = "", ending_before: str = ""
) -> Iterator[tuple[int, list[dict]]]:
    """Every object of a list (`customers`, `subscriptions`, `invoices`, `events`) after `starting_after` (Stripe's
    order: newest first), or, with `ending_before`, every object newer than that one, oldest first. Fetched
    with the library's auto-pagination and handed over a page at a time with the Unix time it was fetched at
    (what it says is true as of then). A 429 in the middle is waited out, and the listing resumes after the
    last object handed over; should that object be gone meanwhile, the listing starts over."""
    service = getattr(client(api_key).v1, resource)
    size = settings.STRIPE_SYNC_PAGE_SIZE
    direction = "ending_before" if ending_before else "starting_after"
    cursor, waits = ending_before or starting_after, 0
    while True:
        query = {**params, "limit": size, **({direction: cursor} if cursor else {})}
        page: list[dict] = []
        fetched_at = int(time.time())
        try:
            for obj in _call(lambda q=query: service.list(q)).auto_paging_iter():
                if not page:
                    fetched_at = int(time.time())  # the page holding it was fetched just now
                page.append(_plain(obj))
                if len(page) == size:
                    yield fetched_at, page
                    cursor, page, waits = page[-1]["id"], [], 0
            if page:
                yield fetched_at, page
            return
        except stripe.RateLimitError as exc:  # from a later page: auto-pagination fetched it itself
            waits += 1
            if waits > settings.STRIPE_RATE_LIMIT_RETRIES:
                raise StripeUnavailable("Stripe's rate limit: still refused after waiting") from exc
            _backoff(waits)
        except (StripeRefused, stripe.StripeError) as exc:
            gone = cursor and _missing(exc.__cause__ if isinstance(exc, StripeRefused) else exc)
            if not gone:
                raise exc if isinstance(exc, StripeRefused) else _mapped(exc) from exc
            if direction == "ending_before":  # an event past Stripe's 30 days: no way to know what came after it
                raise StripeRefused("The event the listing stood at has expired from Stripe: start it again.") from exc
            logger.warning("The %s cursor %s is gone from Stripe: the listing starts over", resource, cursor)
            cursor = ""  # the sync is idempotent: going over the same objects again changes nothing


def _missing(exc: BaseException | None) -> bool:
    return isinstance(exc, stripe.InvalidRequestError) and getattr(exc, "code", "") == "resource_missing"


def customers_count(*, api_key: str) -> int | None:
    """About how many customers the account has, from the search API's total; None when it cannot tell."""
    try:
        found = _call(
            lambda: client(api_key).v1.customers.search(
                {"query": "created>0", "limit": 1, "expand": ["total_count"]}  # type: ignore[typeddict-item]
            )
        )
    except (StripeRefused, StripeUnavailable):
        return None
    total = found.to_dict().get("total_count")
    return total if isinstance(total, int) else None
