"""The shared-client pool of the generators: bounded, and never closes a client in use."""

from __future__ import annotations

from generators.leases import Close, LeasePool


class Client:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    async def close(self) -> None:
        self.closed = True


def factory(made: list[Client], name: str):  # type: ignore[no-untyped-def]
    async def create() -> tuple[Client, Close]:
        client = Client(name)
        made.append(client)
        return client, client.close

    return create


async def test_one_client_per_key_and_the_oldest_idle_one_is_closed_beyond_the_limit() -> None:
    pool: LeasePool[Client] = LeasePool(limit=2)
    made: list[Client] = []
    for name in ("a", "b", "a"):
        async with pool.lease(name, factory(made, name)):
            pass
    assert [c.name for c in made] == ["a", "b"]  # "a" was reused
    async with pool.lease("c", factory(made, "c")):
        pass
    assert [c.name for c in made if c.closed] == ["b"]  # least recently used
    assert len(pool) == 2


async def test_an_evicted_client_in_use_closes_when_its_last_user_is_done() -> None:
    pool: LeasePool[Client] = LeasePool(limit=1)
    made: list[Client] = []
    async with pool.lease("a", factory(made, "a")) as a:
        async with pool.lease("b", factory(made, "b")):
            assert not a.closed  # a fetch in flight keeps it
        assert not a.closed
    assert a.closed
    await pool.aclose()
    assert all(c.closed for c in made)
