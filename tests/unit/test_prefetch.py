import threading
import time

import pytest

from plantlake.lake.prefetch import prefetched

pytestmark = pytest.mark.unit


def test_items_arrive_in_order_from_another_thread() -> None:
    threads = []

    def produce():
        for number in range(100):
            threads.append(threading.current_thread().name)
            yield number

    assert list(prefetched(produce(), depth=3)) == list(range(100))
    assert set(threads) == {"plantlake-prefetch"}


def test_a_producer_error_is_raised_where_it_happened_in_the_stream() -> None:
    def produce():
        yield 1
        yield 2
        raise ValueError("file x.csv: not readable")

    stream = prefetched(produce())
    seen = [next(stream), next(stream)]
    with pytest.raises(ValueError, match="not readable"):
        next(stream)
    assert seen == [1, 2]


def test_a_consumer_that_stops_early_stops_the_producer() -> None:
    produced = []

    def produce():
        for number in range(1_000):
            produced.append(number)
            yield number

    stream = prefetched(produce(), depth=2)
    assert next(stream) == 0
    stream.close()
    time.sleep(0.3)
    count = len(produced)
    time.sleep(0.3)
    assert len(produced) == count < 10
