"""Progress bars: ``tqdm`` when it is installed (the ``train`` extra), else a silent stand-in."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Iterable, Iterator

try:
    from tqdm import tqdm
except ImportError:  # the runtime install has no tqdm: no bars

    class tqdm:  # type: ignore[no-redef]  # noqa: N801 (the name of the class it stands in for)
        """Accepts tqdm's arguments, iterates like its iterable and shows nothing."""

        def __init__(self, iterable: Iterable[Any] | None = None, **_options: Any) -> None:
            self._iterable = iterable if iterable is not None else ()

        def __iter__(self) -> Iterator[Any]:
            return iter(self._iterable)

        def __enter__(self) -> tqdm:
            return self

        def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
            return None

        def update(self, _n: float = 1) -> None:
            """Nothing to show."""

__all__ = ["tqdm"]
