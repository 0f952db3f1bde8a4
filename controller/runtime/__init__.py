"""The controller runtime: informers → workqueue → workers, leader election, servers.

Small and exact, after client-go and controller-runtime (see
docs in each module): `manager.Manager` composes the pieces in one anyio task
group; the reconciler plugs in as a `worker.Reconcile` callable.
"""
