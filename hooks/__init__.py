"""Hooks: the whitelist, the sidecar that executes commands, the controller-side
runner that chains hooks with retry policies, and the in-process CEL transform.

This room knows nothing about Kubernetes: it receives typed `HookSpec`s.
"""
