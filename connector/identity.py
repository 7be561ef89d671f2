"""Which domains and e-mail addresses may tie records into one organisation or person.

A natural key links records that no id links, so a wrong key merges unrelated records: a
Website of `N/A` once read as the domain `n` and made two accounts one; a shared
`info@example.com` gave three leads a customer's ICP fit. So a domain counts only when it is
a real registrable domain (public suffix list, the copy bundled with tldextract: never
fetched) and not a free-mail or placeholder domain, and an address only when it names one
person at a real domain.

The lists below are deliberately short and reviewable: add a value when real data shows it.
They are matched on the registrable domain (`mail.gmail.com` is `gmail.com`) and on the
local part before any `+tag`.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import tldextract

__all__ = [
    "FREE_MAIL_DOMAINS",
    "PLACEHOLDER_DOMAINS",
    "PLACEHOLDER_LOCAL_PARTS",
    "ROLE_LOCAL_PARTS",
    "email_key",
    "normalise_domain",
    "normalise_email",
]

# Mailbox providers: an address there may well be one person's, but the domain says nothing
# about their organisation, so it never links or names an organisation.
FREE_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk",
    "hotmail.de", "hotmail.fr", "hotmail.nl", "live.com", "msn.com", "yahoo.com",
    "yahoo.co.uk", "yahoo.de", "yahoo.fr", "ymail.com", "aol.com", "icloud.com", "me.com",
    "mac.com", "proton.me", "protonmail.com", "gmx.com", "gmx.de", "gmx.net", "web.de",
    "mail.com", "yandex.com", "yandex.ru", "mail.ru", "zoho.com", "qq.com", "163.com",
})
# Documentation, test and throwaway domains: never anyone's (RFC 2606 reserves example.*;
# the reserved TLDs .test, .invalid, .example and .localhost are no public suffix at all).
PLACEHOLDER_DOMAINS = frozenset({
    "example.com", "example.org", "example.net", "test.com", "domain.com", "email.com",
    "mailinator.com", "guerrillamail.com", "10minutemail.com", "yopmail.com",
    "sharklasers.com", "trashmail.com", "tempmail.com",
})
# Local parts that name a shared inbox or a function: several people share them, so they
# never identify one person.
ROLE_LOCAL_PARTS = frozenset({
    "info", "sales", "contact", "admin", "office", "hello", "support", "team", "marketing",
    "enquiries", "inquiries", "billing", "accounts", "finance", "hr", "jobs", "careers",
    "press", "media", "help", "service", "mail", "post", "webmaster", "postmaster",
    "hostmaster", "abuse", "security", "privacy", "legal", "orders", "reception",
})
# Local parts that say "no address": never anyone's.
PLACEHOLDER_LOCAL_PARTS = frozenset({
    "noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "test", "none", "null",
    "na", "n/a", "unknown", "nobody", "dummy", "example", "user", "email",
})
_NEVER_AN_ORGANISATION = FREE_MAIL_DOMAINS | PLACEHOLDER_DOMAINS
_MAX_HOST = 253  # RFC 1035: longer is no host name


def _suffix_extractor() -> tldextract.TLDExtract:
    """The bundled public suffix list only: no download (`suffix_list_urls=()`), no cache
    directory. Private suffixes count, so two blogspot.com sites are two domains."""
    import tldextract  # noqa: PLC0415 - 0.1 s (it imports requests): only when a domain is read

    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None,
                                 include_psl_private_domains=True)


@cache
def _extractor() -> tldextract.TLDExtract:
    return _suffix_extractor()


def normalise_email(text: str | None) -> str | None:
    """An address as shown and compared: trimmed and case-folded; None if it has no `@`."""
    if not text or not isinstance(text, str):
        return None
    email = text.strip().casefold()
    return email if "@" in email else None


def email_key(text: str | None) -> str | None:
    """The address as a key that links records of one person, or None when it cannot be one:
    no real domain, a placeholder domain or local part, or a role inbox (info@, sales@)."""
    email = normalise_email(text)
    if email is None:
        return None
    local, _, host = email.rpartition("@")
    base = local.partition("+")[0]
    if not base or base in ROLE_LOCAL_PARTS or base in PLACEHOLDER_LOCAL_PARTS:
        return None
    if any(char.isspace() for char in local):
        return None
    domain = _registrable(host)
    if domain is None or domain in PLACEHOLDER_DOMAINS:
        return None
    return email


def normalise_domain(text: str | None) -> str | None:
    """The registrable domain of a website or host (`https://www.Shop.Acme.co.uk/x` ->
    `acme.co.uk`), or None when there is none or it cannot name one organisation: `N/A`,
    `localhost`, an IP address, a bare word, a free-mail or placeholder domain."""
    if not text or not isinstance(text, str):
        return None
    host = text.strip().casefold()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]
    host = host.split(":", 1)[0]  # a port; an IPv6 literal ([::1]) leaves "[", no domain
    domain = _registrable(host)
    return None if domain in _NEVER_AN_ORGANISATION else domain


@lru_cache(maxsize=16_384)
def _registrable(host: str) -> str | None:
    """Cached: records share a few thousand hosts, and the suffix lookup costs ~5 µs."""
    host = host.rstrip(".")
    if not host or len(host) > _MAX_HOST or not all(map(_is_label, host.split("."))):
        return None
    return _extractor()(host).top_domain_under_public_suffix or None


def _is_label(label: str) -> bool:
    """A DNS label: letters (any script), digits and inner hyphens."""
    return (0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-"
            and label.replace("-", "").isalnum())
