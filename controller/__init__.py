"""The controller: process wiring, Kubernetes access, runtime and the reconciler.

The only room that knows Kubernetes. It composes the three leaf rooms
(`generators`, `hooks`, `storage`) and is the only place that knows the order
of the reconcile pipeline.
"""
