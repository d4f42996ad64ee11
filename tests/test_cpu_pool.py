"""The CPU pool: calls run in worker processes, a deadline kills the worker, the pool recovers."""

from __future__ import annotations

import asyncio
import os

import pytest

from hookshot_py.cpu_pool import CpuPool, CpuPoolError, CpuTimeout
from hookshot_py.generic.payload import PayloadError, parse_body
from hookshot_py.markdown import render_markdown

HOSTILE = "[" * 400_000  # tens of seconds of markdown-it


@pytest.fixture
async def pool():
    p = CpuPool(workers=1, heavy_workers=1, deadline=30.0)
    yield p
    await p.close()


async def test_runs_the_function_in_another_process(pool: CpuPool) -> None:
    assert await pool.run(render_markdown, "**hi**") == "<p><strong>hi</strong></p>"
    assert await pool.run(render_markdown, "*a*", inline=True) == "<em>a</em>"
    worker = pool._idle[0].process
    assert worker.pid != os.getpid() and worker.returncode is None


async def test_the_functions_exception_is_raised_here(pool: CpuPool) -> None:
    with pytest.raises(PayloadError, match="not valid JSON"):
        await pool.run(parse_body, "POST", "application/json", b"{", {})
    assert await pool.run(render_markdown, "still works") == "<p>still works</p>"


async def test_deadline_kills_the_worker_and_the_next_call_gets_a_new_one(pool: CpuPool) -> None:
    await pool.run(render_markdown, "warm")
    first = pool._idle[0].process
    pool.deadline = 0.3
    with pytest.raises(CpuTimeout, match="render_markdown ran longer than 0.3 s"):
        await pool.run(render_markdown, HOSTILE)
    assert first.returncode is not None, "the worker was killed"
    assert pool.busy == 0
    pool.deadline = 30.0
    assert await pool.run(render_markdown, "after") == "<p>after</p>"
    assert pool._idle[0].process is not first


async def test_a_worker_that_died_is_reported_and_replaced(pool: CpuPool) -> None:
    await pool.run(render_markdown, "warm")
    dead = pool._idle[0].process
    dead.kill()
    await dead.wait()
    with pytest.raises(CpuPoolError, match="died"):
        await pool.run(render_markdown, "x")
    assert await pool.run(render_markdown, "x") == "<p>x</p>"


async def test_waiting_for_a_busy_worker_is_bounded(pool: CpuPool) -> None:
    pool.queue_timeout = 0.2
    hostile = asyncio.create_task(pool.run(render_markdown, HOSTILE))
    while pool.busy == 0:
        await asyncio.sleep(0.01)
    with pytest.raises(CpuTimeout, match="No worker was free"):
        await pool.run(render_markdown, "queued")
    victim = next(iter(pool._running)).process
    hostile.cancel()
    with pytest.raises(asyncio.CancelledError):
        await hostile
    assert pool.busy == 0 and victim.returncode is not None, "a cancelled call's worker is killed, not reused"
    assert await pool.run(render_markdown, "next") == "<p>next</p>"


async def test_heavy_calls_leave_a_worker_for_light_ones() -> None:
    pool = CpuPool(workers=2, heavy_workers=1, deadline=30.0, queue_timeout=0.3)
    try:
        hostile = asyncio.create_task(pool.run_heavy(render_markdown, HOSTILE))
        while pool.busy == 0:
            await asyncio.sleep(0.01)
        with pytest.raises(CpuTimeout, match="No worker was free"):
            await pool.run_heavy(render_markdown, "another large body")
        assert await pool.run(render_markdown, "small") == "<p>small</p>"
        assert not hostile.done()
        hostile.cancel()
        await asyncio.gather(hostile, return_exceptions=True)
    finally:
        await pool.close()


async def test_the_event_loop_keeps_running_while_a_worker_computes(pool: CpuPool) -> None:
    hostile = asyncio.create_task(pool.run(render_markdown, HOSTILE))
    while pool.busy == 0:
        await asyncio.sleep(0.01)
    ticks = 0
    while ticks < 20:  # the loop is free: these sleeps end while the render is still running
        await asyncio.sleep(0.005)
        ticks += 1
    assert not hostile.done()
    hostile.cancel()
    await asyncio.gather(hostile, return_exceptions=True)


async def test_only_module_level_functions_of_the_bridge(pool: CpuPool) -> None:
    with pytest.raises(ValueError, match="not a module-level function of hookshot_py"):
        await pool.run(os.getpid)
    with pytest.raises(ValueError):
        await pool.run(lambda: 1)


async def test_the_pool_fills_up_in_the_background_after_first_use() -> None:
    pool = CpuPool(workers=3, heavy_workers=2)
    try:
        await pool.run(render_markdown, "a")
        while len(pool._idle) < 3:  # the two others start without a call waiting for them
            await asyncio.sleep(0.01)
        assert len({w.process.pid for w in pool._idle}) == 3
    finally:
        await pool.close()


async def test_close_stops_the_workers() -> None:
    pool = CpuPool(workers=2, heavy_workers=1)
    await asyncio.gather(pool.run(render_markdown, "a"), pool.run(render_markdown, "b"))
    processes = [w.process for w in pool._idle]
    assert len(processes) == 2
    await pool.close()
    assert all(p.returncode is not None for p in processes)
    with pytest.raises(CpuPoolError, match="closed"):
        await pool.run(render_markdown, "late")


async def test_markdown_jobs_render_in_a_worker_and_fall_back_past_the_deadline(pool: CpuPool) -> None:
    from hookshot_py.markdown import MarkdownJob, render_jobs, render_off_loop

    jobs = [MarkdownJob("**a**", inline=True), MarkdownJob("<b>x</b> ![i](http://e.example/i.png)", sanitize=True)]
    assert await render_off_loop(pool, jobs, what="test") == render_jobs(jobs)
    assert await render_off_loop(pool, [], what="test") == []
    pool.deadline = 0.3
    task = asyncio.create_task(render_off_loop(pool, [MarkdownJob(HOSTILE)], what="test"))
    while pool.busy < 1:  # the render is running in a worker, not on this loop
        assert not task.done()
        await asyncio.sleep(0.005)
    assert await task is None
