"""Artifact storage: packaging, backends, retention and the artifact HTTP server.

This room knows nothing about Kubernetes: it receives bytes/streams and keys.
"""
