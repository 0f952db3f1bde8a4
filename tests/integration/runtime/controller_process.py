"""A controller process for the process tests: the real `controller.main.main` (config, logging,
signals, Manager) with a reconcile that prints each key instead of the real pipeline."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from controller.config import Config
from controller.main import main
from controller.runtime.keys import ObjectKey
from controller.runtime.manager import Manager, Wiring
from controller.runtime.worker import Result


@contextlib.asynccontextmanager
async def build(config: Config, manager: Manager) -> AsyncIterator[Wiring]:
    async def reconcile(key: ObjectKey) -> Result:
        print(f"reconciled {key}", flush=True)
        return Result(requeue_after=0.2)

    yield Wiring(reconcile=reconcile)


if __name__ == "__main__":
    main(build=build)
