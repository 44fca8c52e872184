"""The OPC-UA client's event loop runs in a thread of its own, also while the caller is busy."""

import asyncio
import time

import pytest

from plantlake.connectors.opcua_loop import LoopThread

pytestmark = pytest.mark.unit


def test_the_loop_keeps_running_while_the_caller_works_on_an_item() -> None:
    """asyncua's keep-alives and link probes are tasks on this loop: they must not wait for the caller."""
    loop = LoopThread()
    ticks: list[float] = []

    async def keep_alive() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def items():
        for item in range(3):
            yield item

    try:
        loop.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(keep_alive()))
        for _ in loop.iterate(items()):
            before = len(ticks)
            time.sleep(0.3)  # the caller writes what it got; the loop is not driven meanwhile
            assert len(ticks) > before
    finally:
        loop.close()
    assert not loop.thread.is_alive()


def test_items_before_an_error_arrive_first_and_a_stopped_read_is_closed_on_the_loop() -> None:
    loop = LoopThread()
    closed: list[bool] = []

    async def failing():
        yield 1
        yield 2
        raise ConnectionError("link lost")

    async def endless():
        try:
            item = 0
            while True:
                yield item
                item += 1
        finally:
            closed.append(True)  # where a read releases its continuation points

    try:
        got = []
        with pytest.raises(ConnectionError, match="link lost"):
            got.extend(loop.iterate(failing()))
        assert got == [1, 2]
        stream = loop.iterate(endless(), ahead=3)
        assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
        stream.close()
        assert closed == [True]
    finally:
        loop.close()
