"""procrastinate (psycopg 3) as a benchmark peer."""

from __future__ import annotations

import asyncio

from procrastinate import App, PsycopgConnector

from bench.peers import common


def build(url: str) -> App:
    app = App(connector=PsycopgConnector(conninfo=url))

    @app.task(name="noop")
    async def noop() -> None:
        return None

    return app


async def main() -> None:
    command, url, rest = common.args()
    app = build(url)
    async with app.open_async():
        noop = app.tasks["noop"]
        if command == "setup":
            await app.schema_manager.apply_schema_async()
        elif command == "worker":
            concurrency = int(rest[0]) if rest else 50
            run = asyncio.create_task(app.run_worker_async(
                concurrency=concurrency, install_signal_handlers=False, wait=True))  # fmt: skip
            common.ready()
            await common.until_sigterm()
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
        else:

            async def send_batch(n: int) -> None:
                await noop.batch_defer_async(*([{}] * n))

            async def send_one() -> None:
                await noop.defer_async()

            await common.run_client(command, rest, send_batch, send_one)


if __name__ == "__main__":
    asyncio.run(main())
