"""TXT lookups for sender-domain verification, with dnspython: the one place this app talks to DNS.

Nameservers come from SENDER_DOMAIN_NAMESERVERS ("ip" or "ip:port", e.g. "127.0.0.1:5353"), else
the system's resolver; tests and air-gapped installs point it at their own server.
"""

import dns.exception
import dns.nameserver
import dns.resolver
from django.conf import settings


class LookupFailed(Exception):
    """The TXT records could not be read; the message says why, for the user."""


def _nameserver(entry: str) -> dns.nameserver.Do53Nameserver:
    entry = entry.strip()
    if entry.startswith("["):  # [::1]:5353
        address, _, port = entry[1:].partition("]")
        port = port.lstrip(":")
    elif entry.count(":") == 1:  # 127.0.0.1:5353
        address, port = entry.split(":")
    else:  # a bare IPv4 or IPv6 address
        address, port = entry, ""
    return dns.nameserver.Do53Nameserver(address, port=int(port) if port else 53)


def _resolver() -> dns.resolver.Resolver:
    configured = [entry for entry in settings.SENDER_DOMAIN_NAMESERVERS if entry.strip()]
    resolver = dns.resolver.Resolver(configure=not configured)
    if configured:
        resolver.nameservers = [_nameserver(entry) for entry in configured]
    resolver.lifetime = settings.SENDER_DOMAIN_DNS_TIMEOUT
    resolver.timeout = settings.SENDER_DOMAIN_DNS_TIMEOUT
    return resolver


def txt_records(domain: str) -> list[str]:
    """The TXT records published on `domain`, each as one string (a record split into several
    character-strings is joined, as DNS intends). Raises LookupFailed."""
    timeout = settings.SENDER_DOMAIN_DNS_TIMEOUT
    try:
        answer = _resolver().resolve(domain, "TXT", search=False)
    except dns.resolver.NXDOMAIN as exc:
        raise LookupFailed(f"{domain} does not exist in DNS.") from exc
    except dns.resolver.NoAnswer:
        return []
    except dns.exception.Timeout as exc:
        raise LookupFailed(
            f"The DNS lookup of {domain} took longer than {timeout:g} s (SENDER_DOMAIN_DNS_TIMEOUT); try again later."
        ) from exc
    except dns.resolver.NoNameservers as exc:
        raise LookupFailed(f"No nameserver answered for {domain}; try again later.") from exc
    except (dns.exception.DNSException, OSError) as exc:
        raise LookupFailed(f"The DNS lookup of {domain} failed ({type(exc).__name__}); try again later.") from exc
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]
