"""Condition reasons generators put on `FetchError.reason`, in one place.

The controller copies a reason verbatim into the `Ready`/`Stalled` condition,
so these are short CamelCase constants users can grep for and alert on. New
generators reuse them where the meaning is the same (a refused connection is
`ConnectionFailed` whatever the protocol) and add their own here otherwise.
"""

from __future__ import annotations

from typing import Final

# configuration problems: retrying cannot help until the spec or a Secret changes
UNSUPPORTED_GENERATOR: Final = "UnsupportedGenerator"
INVALID_REQUEST: Final = "InvalidRequest"
INVALID_TLS_CONFIG: Final = "InvalidTLSConfig"
TLS_VERIFICATION_FAILED: Final = "TLSVerificationFailed"
TLS_HANDSHAKE_FAILED: Final = "TLSHandshakeFailed"
ADDRESS_NOT_ALLOWED: Final = "AddressNotAllowed"
TOO_MANY_REDIRECTS: Final = "TooManyRedirects"
INVALID_REDIRECT: Final = "InvalidRedirect"
RESPONSE_TOO_LARGE: Final = "ResponseTooLarge"
ORIGIN_REJECTED_REQUEST: Final = "OriginRejectedRequest"
UNEXPECTED_STATUS: Final = "UnexpectedStatus"
PROXY_AUTHENTICATION_FAILED: Final = "ProxyAuthenticationFailed"

# transient problems: retried with backoff (honouring `retry_after`)
FETCH_FAILED: Final = "FetchFailed"
DNS_RESOLUTION_FAILED: Final = "DNSResolutionFailed"
CONNECTION_FAILED: Final = "ConnectionFailed"
PROXY_FAILED: Final = "ProxyFailed"
TIMEOUT: Final = "Timeout"
RATE_LIMITED: Final = "RateLimited"
ORIGIN_UNAVAILABLE: Final = "OriginUnavailable"
