"""An asyncio event loop that runs in a thread of its own, for synchronous callers of asyncua.

asyncua answers the server's keep-alives, renews the secure channel and probes the link from
tasks on its event loop. Driven step by step from synchronous code (`asyncio.Runner.run`), that
loop stood still whenever the caller was busy writing what it had read, and a probe that waited
longer than asyncua's watchdog counted as a lost link. Here the loop runs all the time; the
caller hands it coroutines, and async generators are read ahead by a few items into a queue, so
the next answer is on its way while the caller writes the last one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncGenerator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_END = object()


class LoopThread:
    """An event loop running in a daemon thread until `close`."""

    def __init__(self, name: str = "plantlake-opcua") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the loop and wait for its result (its exception is raised here)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise asyncio.CancelledError() from None

    def iterate(self, generator: AsyncGenerator[T, None], ahead: int = 2) -> Iterator[T]:
        """The items of `generator`, read on the loop up to `ahead` items before they are asked for.

        An error of the generator is raised after the items it produced before it. Stopping
        early closes the generator on the loop (so its `finally` runs there)."""
        queue: asyncio.Queue[object] = asyncio.Queue(maxsize=ahead)  # used on the loop only
        task = self.run(_start(_pump(generator, queue)))
        try:
            while True:
                item = self.run(queue.get())
                if item is _END:
                    return
                if isinstance(item, _Failure):
                    raise item.error
                yield item  # type: ignore[misc]  # what the queue holds besides the markers is the generator's items
        finally:
            if not task.done():
                self.run(_cancel(task))

    def close(self) -> None:
        """Cancel what still runs on the loop, stop it and wait for its thread."""
        if self.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            self.run(_cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


async def _start(coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coroutine)


async def _pump(generator: AsyncGenerator[Any, None], queue: asyncio.Queue[object]) -> None:
    try:
        async for item in generator:
            await queue.put(item)
    except asyncio.CancelledError:
        raise
    except BaseException as error:  # handed over to the reader, in order
        await queue.put(_Failure(error))
        return
    finally:
        await generator.aclose()
    await queue.put(_END)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
