"""The room-side filters forge connections share: hookshot's `HookFilter` over `enableHooks`,
and its label filter (`includingLabels` / `excludingLabels`).

Both follow hookshot (`src/HookFilter.ts`, `matchesLabelFilter`), so state written for hookshot
filters the same here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set

__all__ = ["HookFilter", "labels_allowed"]


class HookFilter:
    """hookshot's `HookFilter`: an event passes if *any* of its candidate names is enabled."""

    def __init__(self, enabled_hooks: Iterable[str] = ()) -> None:
        self.enabled_hooks: frozenset[str] = frozenset(enabled_hooks)

    def should_skip(self, *hook_names: str) -> bool:
        return all(name not in self.enabled_hooks for name in hook_names)

    def allows(self, *hook_names: str) -> bool:
        return not self.should_skip(*hook_names)

    @staticmethod
    def convert_ignored_hooks_to_enabled_hooks(
        enabled: Sequence[str], ignored: Sequence[str], defaults: Sequence[str]
    ) -> list[str]:
        """Translate the deprecated `ignoreHooks` list into an `enableHooks` list.

        Starts from explicit + default hooks and removes each ignored name and, for a root
        name such as `issue`, every `issue.*` child. Order is kept (first occurrence wins).
        """
        result = list(dict.fromkeys([*enabled, *defaults]))
        for ignored_hook in ignored:
            child_prefix = f"{ignored_hook}."
            result = [
                h for h in result if h != ignored_hook and not h.startswith(child_prefix)
            ]
        return result


def labels_allowed(labels: Set[str], including: Set[str], excluding: Set[str]) -> bool:
    """hookshot's `matchesLabelFilter`: an excluded label vetoes; when labels are included,
    one of them is required."""
    if labels & excluding:
        return False
    if including:
        return bool(labels & including)
    return True
