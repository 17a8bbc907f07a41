"""The live pipeline's queue: lists of records in, bounded by the records they hold."""

from __future__ import annotations

import asyncio

from streams.pipeline.live import Received, RecordQueue


def records(n: int) -> list[Received]:
    return [Received("t", 0.0, text=str(i)) for i in range(n)]


def test_bounded_in_records_a_list_that_cannot_fit_waits():
    async def scenario() -> None:
        q = RecordQueue(10)
        await q.put(records(6))
        assert not q.put_nowait(records(5)) and q.put_nowait(records(4)) and q.qsize() == 10
        waiting = asyncio.create_task(q.put(records(3)))
        await asyncio.sleep(0.01)
        assert not waiting.done() and q.qsize() == 10
        assert len(q.get_nowait()) == 6   # room for 3 again: the waiting list goes in
        await asyncio.wait_for(waiting, 1)
        assert q.qsize() == 7 and len(await q.get()) == 4
        assert q.get_nowait(2) is None and len(q.get_nowait(3)) == 3   # only a list that fits
        assert q.get_nowait() is None

    asyncio.run(scenario())


def test_a_list_larger_than_the_whole_queue_is_taken_alone():
    async def scenario() -> None:
        q = RecordQueue(10)
        assert q.put_nowait(records(25)) and q.qsize() == 25
        assert not q.put_nowait(records(1))
        q.get_nowait()
        await asyncio.wait_for(q.put(records(1)), 1)

    asyncio.run(scenario())


def test_join_waits_for_every_record_to_be_done():
    async def scenario() -> None:
        q = RecordQueue(10)
        await asyncio.wait_for(q.join(), 1)   # nothing put: nothing to wait for
        await q.put(records(3))
        await q.put(records(2))
        joined = asyncio.create_task(q.join())
        q.get_nowait()
        q.task_done(3)
        await asyncio.sleep(0.01)
        assert not joined.done()
        q.get_nowait()
        q.task_done(2)
        await asyncio.wait_for(joined, 1)

    asyncio.run(scenario())
