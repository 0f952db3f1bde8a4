"""Source generators: turn a typed fetch request into bytes from an origin.

This room knows nothing about Kubernetes. The controller resolves Secrets and
hands each generator a plain, typed request (for example `HttpRequest`); the
generator answers `NotModified` or `Fetched` (a spooled body plus validators),
or raises `FetchError` classified as transient or configuration.
"""
