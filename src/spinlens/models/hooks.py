"""Named activation sites for torch models (TransformerLens-style, plain torch hooks underneath).

A `HookPoint` is an identity module placed where an activation should be readable and writable.
A `HookedModule` finds its hook points by their dotted module names (``layers.0.attn.hook_z``) and offers
`hooks` (a context manager: hooks exist only inside it), `run_with_hooks` and `run_with_cache`.

A hook function has the signature ``fn(activation, hook) -> activation | None``: returning a tensor
replaces the activation, returning None keeps it. ``hook`` is the HookPoint (``hook.name``).
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Generic, TypeVar, cast, overload

import torch
from torch import nn

HookFn = Callable[..., "torch.Tensor | None"]
M = TypeVar("M", bound=nn.Module)


class ModuleSeq(nn.ModuleList, Generic[M]):
    """An `nn.ModuleList` whose items are all of one module class ``M`` (the layers of a model).

    The same module at run time (same state-dict keys); indexing and iteration are typed ``M``, so that
    ``model.blocks[0].attn`` is known to the type checker.
    """

    def __init__(self, modules: Iterable[M] = ()) -> None:
        super().__init__(modules)

    def _get_name(self) -> str:
        return "ModuleList"

    @overload
    def __getitem__(self, idx: slice) -> ModuleSeq[M]: ...

    @overload
    def __getitem__(self, idx: int) -> M: ...

    # torch types the items as Module; the constructor only took M
    def __getitem__(self, idx: int | slice) -> M | ModuleSeq[M]:
        if isinstance(idx, slice):
            return ModuleSeq(cast("list[M]", list(self._modules.values())[idx]))
        return cast(M, super().__getitem__(idx))

    def __iter__(self) -> Iterator[M]:
        return cast("Iterator[M]", super().__iter__())


class HookPoint(nn.Identity):
    """Identity module marking an activation site. Its ``name`` is set by `HookedModule.setup_hooks`."""

    def __init__(self) -> None:
        super().__init__()
        self.name: str = ""

    def add_hook(self, fn: HookFn) -> torch.utils.hooks.RemovableHandle:
        def _fwd(module, inputs, output):
            out = fn(output, hook=self)
            return output if out is None else out

        return self.register_forward_hook(_fwd)


class ReadOnlyHookPoint(HookPoint):
    """A hook point that can be read (cached) but not replaced.

    Used by model adapters where writing the activation would not reach the computation (e.g. attention
    patterns returned by a Hugging Face attention module). A hook returning a different tensor raises.
    """

    def add_hook(self, fn: HookFn) -> torch.utils.hooks.RemovableHandle:
        def _fwd(module, inputs, output):
            out = fn(output, hook=self)
            if out is not None and out is not output:
                from spinlens.errors import InvalidParameterError

                raise InvalidParameterError(
                    f"The hook point {self.name!r} is read-only on this model: a hook may read it but must return "
                    "None (or the activation unchanged)."
                )
            return output

        return self.register_forward_hook(_fwd)


class ActivationCache(dict):
    """A dict ``name -> tensor`` of cached activations (detached), with a few helpers.

    Shapes are those documented at each hook point of the model (batch first).
    """

    def __getitem__(self, key):
        try:
            return super().__getitem__(key)
        except KeyError:
            raise KeyError(f"{key!r} is not in the cache; cached names: {sorted(self)}") from None

    def to(self, device) -> ActivationCache:
        return ActivationCache({k: v.to(device) for k, v in self.items()})


def _as_filter(names_filter) -> Callable[[str], bool]:
    if names_filter is None:
        return lambda name: True
    if callable(names_filter):
        return names_filter
    if isinstance(names_filter, str):
        names_filter = [names_filter]
    pats = list(names_filter)
    return lambda name: any(fnmatch.fnmatchcase(name, p) for p in pats)


class HookedModule(nn.Module):
    """Mixin base for models with `HookPoint` submodules. Call `setup_hooks()` at the end of ``__init__``."""

    def setup_hooks(self) -> None:
        self._hook_points: dict[str, HookPoint] = {}
        for name, mod in self.named_modules():
            if isinstance(mod, HookPoint):
                mod.name = name
                self._hook_points[name] = mod

    @property
    def hook_points(self) -> dict[str, HookPoint]:
        """All hook points by name, in module order."""
        return dict(self._hook_points)

    def hook_names(self) -> list[str]:
        return list(self._hook_points)

    def _resolve(self, name: str) -> list[HookPoint]:
        if name in self._hook_points:
            return [self._hook_points[name]]
        matches = [hp for n, hp in self._hook_points.items() if fnmatch.fnmatchcase(n, name)]
        if not matches:
            raise KeyError(f"unknown hook name {name!r}; valid names: {', '.join(self._hook_points)}")
        return matches

    @contextlib.contextmanager
    def hooks(self, fwd: Sequence[tuple[str, HookFn]] = ()):
        """Attach forward hooks ``[(name_or_glob, fn), ...]`` for the duration of the ``with`` block."""
        handles = []
        try:
            for name, fn in fwd:
                for hp in self._resolve(name):
                    handles.append(hp.add_hook(fn))
            yield self
        finally:
            for h in handles:
                h.remove()

    def run_with_hooks(self, *args, fwd_hooks: Sequence[tuple[str, HookFn]] = (), **kwargs):
        with self.hooks(fwd_hooks):
            return self(*args, **kwargs)

    def run_with_cache(
        self,
        *args,
        names_filter: str | Iterable[str] | Callable[[str], bool] | None = None,
        device=None,
        detach: bool = True,
        positions=None,
        **kwargs,
    ):
        """Run the model and return ``(output, ActivationCache)`` of the hook points passing the filter.

        Memory: ``names_filter`` (names, globs or a predicate) keeps only some hook points; ``device="cpu"``
        moves each activation off the accelerator as soon as it is produced; ``positions`` (int, slice or
        list of ints) keeps only those sequence positions (the query positions of attention patterns/scores,
        dim 1 of every other activation); `spinlens.interp.cache_in_batches` streams over prompt batches.
        """
        keep = _as_filter(names_filter)
        cache = ActivationCache()

        def save(act, hook):
            t = act.detach() if detach else act
            if positions is not None:
                dim = 2 if hook.name.endswith(("hook_pattern", "hook_attn_scores")) else 1
                idx = [slice(None)] * t.ndim
                idx[dim] = [positions] if isinstance(positions, int) else positions
                t = t[tuple(idx)]
            cache[hook.name] = t if device is None else t.to(device)

        fwd = [(n, save) for n in self._hook_points if keep(n)]
        with self.hooks(fwd):
            out = self(*args, **kwargs)
        return out, cache
