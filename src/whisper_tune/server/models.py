"""The models one server offers: named, loaded on first use, unloaded when idle.

Every request names a model (or takes the default, the first one). :meth:`ModelRegistry.use`
lends its transcriber to a worker thread, loading it first if needed (one load at a time per
model). A model no request has used for ``ttl`` seconds is unloaded by a sweeper thread; with
``max_loaded`` set, loading one more unloads the least recently used idle model first (when
every loaded model is busy, the new one loads anyway and the cap is restored as they finish).
A transcriber handed in already loaded (tests, the GUI) is pinned: it cannot be reloaded, so
it is never unloaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from whisper_tune.engine_settings import EngineSettings
from whisper_tune.errors import ModelError
from whisper_tune.inference import Transcriber, load_transcriber
from whisper_tune.inference.ggml_format import is_ggml_file

log = logging.getLogger("whisper_tune.server")

OPENAI_DEFAULT = "whisper-1"  # what the openai SDK's examples send: the default model


class UnknownModel(LookupError):
    """A request named a model this server does not offer."""

    def __init__(self, name: str, available: Sequence[str]) -> None:
        super().__init__(f"model {name!r} is not served here; available: {', '.join(available)}")


def model_name(model_path: str) -> str:
    """A model's id: a bundled name as is, a directory by its last part, a file by its stem."""
    path = Path(model_path).expanduser()
    if path.is_file():
        return path.stem
    return path.name if path.is_dir() else model_path


def models_in(directory: str) -> list[str]:
    """Each sub-folder of ``directory`` (a CTranslate2 or Hugging Face model) and each GGML
    file in it, sorted by name."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise ModelError(f"--models_dir {directory}: not a directory")
    found = [
        str(p)
        for p in sorted(root.iterdir())
        if not p.name.startswith(".") and (p.is_dir() or (p.is_file() and is_ggml_file(p)))
    ]
    if not found:
        raise ModelError(f"--models_dir {directory}: no model folders or GGML files in it")
    return found


def named_models(engine: EngineSettings, paths: Sequence[str]) -> dict[str, EngineSettings]:
    """``engine``'s settings for each model path, by :func:`model_name` (unique)."""
    models: dict[str, EngineSettings] = {}
    for path in paths:
        name = model_name(path)
        if name in models:
            raise ModelError(
                f"two models are named {name!r} ({models[name].model_path} and {path}); "
                "model ids are folder names and must differ"
            )
        models[name] = dataclasses.replace(engine, model_path=path)
    return models


def release_memory() -> None:
    """Collect the unloaded engine, and hand the freed heap back to the system (glibc keeps
    it otherwise, so the process would not shrink)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)  # glibc; elsewhere the attribute is missing


@dataclasses.dataclass
class _Model:
    settings: EngineSettings
    transcriber: Transcriber | None = None
    pinned: bool = False
    users: int = 0
    last_used: float = 0.0
    load_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class ModelRegistry:
    """Named models, loaded lazily and shared by every worker thread."""

    def __init__(
        self,
        models: dict[str, EngineSettings],
        *,
        ttl: float = 0.0,
        max_loaded: int = 0,
        loaded: dict[str, Transcriber] | None = None,
        loader: Callable[[EngineSettings], Transcriber] = load_transcriber,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        if not models:
            raise ModelError("no model to serve")
        self._models = {name: _Model(settings) for name, settings in models.items()}
        for name, transcriber in (loaded or {}).items():
            self._models[name].transcriber = transcriber
            self._models[name].pinned = True
        self.default = next(iter(models))
        self.ttl = ttl  # 0: never unload an idle model
        self.max_loaded = max_loaded  # 0: no cap
        self._loader = loader
        self.on_change = on_change or (lambda event, name: None)  # ("load"|"unload", name)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None

    @property
    def names(self) -> list[str]:
        return list(self._models)

    def resolve(self, name: str | None) -> str:
        """The model a request names: absent, empty or ``whisper-1`` is the default one."""
        if not name or name == OPENAI_DEFAULT:
            return self.default
        if name not in self._models:
            raise UnknownModel(name, self.names)
        return name

    def settings(self, name: str) -> EngineSettings:
        return self._models[name].settings

    def loaded(self) -> list[str]:
        with self._lock:
            return [name for name, m in self._models.items() if m.transcriber is not None]

    def load(self, name: str) -> Transcriber:
        """Load ``name`` now (if it is not loaded) and return its transcriber."""
        with self.use(name) as transcriber:
            return transcriber

    @contextmanager
    def use(self, name: str) -> Iterator[Transcriber]:
        """Lend ``name``'s transcriber (loading it first); it stays loaded while lent."""
        model = self._models[name]
        with self._lock:
            model.users += 1
        try:
            yield self._loaded(name, model)
        finally:
            with self._lock:
                model.users -= 1
                model.last_used = time.monotonic()
            self._enforce_cap(keep=None)

    def start(self) -> None:
        """Start the sweeper that unloads idle models (when a TTL is set)."""
        if self.ttl > 0 and self._sweeper is None:
            self._stop.clear()
            self._sweeper = threading.Thread(target=self._sweep_loop, name="model-ttl", daemon=True)
            self._sweeper.start()

    def stop(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
            self._sweeper = None

    def sweep(self, now: float | None = None) -> list[str]:
        """Unload every unpinned model idle for ``ttl`` seconds; the names unloaded."""
        now = time.monotonic() if now is None else now
        with self._lock:
            idle = [
                name
                for name, m in self._models.items()
                if self._unloadable(m) and now - m.last_used >= self.ttl
            ]
        return [name for name in idle if self._unload(name, "idle")]

    def _loaded(self, name: str, model: _Model) -> Transcriber:
        with model.load_lock:  # one load per model; other models load in parallel
            if model.transcriber is None:
                self._enforce_cap(keep=name)
                started = time.monotonic()
                transcriber = self._loader(model.settings)
                with self._lock:
                    model.transcriber = transcriber
                log.info("model %s loaded in %.1f s", name, time.monotonic() - started)
                self.on_change("load", name)
            return model.transcriber

    def _enforce_cap(self, keep: str | None) -> None:
        """Unload least recently used idle models until one more (``keep``) fits the cap."""
        if not self.max_loaded:
            return
        while True:
            with self._lock:
                loaded = [n for n, m in self._models.items() if m.transcriber is not None]
                room = self.max_loaded - (keep is not None and keep not in loaded)
                idle = [n for n in loaded if n != keep and self._unloadable(self._models[n])]
                if len(loaded) <= room or not idle:
                    return
                oldest = min(idle, key=lambda n: self._models[n].last_used)
            if not self._unload(oldest, "cap"):
                return

    def _unloadable(self, model: _Model) -> bool:
        return model.transcriber is not None and not model.pinned and model.users == 0

    def _unload(self, name: str, reason: str) -> bool:
        model = self._models[name]
        with self._lock:
            if not self._unloadable(model):
                return False  # taken again meanwhile
            model.transcriber = None
        release_memory()
        log.info("model %s unloaded (%s)", name, reason)
        self.on_change("unload", name)
        return True

    def _sweep_loop(self) -> None:
        interval = min(max(self.ttl / 4, 0.1), 5.0)
        while not self._stop.wait(interval):
            self.sweep()
