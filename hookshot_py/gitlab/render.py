"""Messages → Matrix content off the event loop: GitLab titles, descriptions and comments are a
stranger's markdown, and markdown can be made to cost superlinear CPU. Rendering runs in the CPU
pool (`services.cpu`) with its deadline; past it, a message goes out as escaped plain text."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hookshot_py.cpu_pool import CpuPool, CpuPoolError
from hookshot_py.gitlab.format import Message, render_all, render_fallback

__all__ = ["Renderer"]

log = logging.getLogger(__name__)

#: Above this many characters, a batch renders in the pool's heavy lane.
LIGHT_CHARS = 4 * 1024


@dataclass
class Renderer:
    cpu: CpuPool | None  # None: render on the loop (tests of the parts around it)

    async def contents(self, messages: Sequence[Message]) -> list[dict[str, Any]]:
        if not messages:
            return []
        if self.cpu is None:
            return render_all(list(messages))
        size = sum(len(m.markdown) for m in messages)
        run = self.cpu.run_heavy if size > LIGHT_CHARS else self.cpu.run
        try:
            return await run(render_all, list(messages))
        except CpuPoolError as e:
            log.warning("Rendering %d GitLab message(s) failed (%s); posting them as plain text", len(messages), e)
            return [render_fallback(m) for m in messages]
