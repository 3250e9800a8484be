"""A per-file job on a Ray cluster: Ray Data feeds batches of files to a pool of actors.

Each actor builds its worker once (one model load per actor) and decodes ``files_per_batch``
files per call (short files batched together, see
:func:`whisper_tune.inference.batching.transcribe_short`). Results stream back in the order
they finish and are written at once by a :class:`~whisper_tune.inference.file_jobs.JobSink`
(outputs, then the resumable job log). A killed actor is restarted and its batch tried
again (``max_restarts``, ``max_task_retries``); a batch that fails every try is dropped by
Ray Data and its files are recorded as failed, so the job always ends and a rerun retries
them. Ray is an optional extra, imported only here: ``pip install whisper-tune[ray]``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from whisper_tune.errors import WhisperTuneError
from whisper_tune.inference.file_jobs import (
    FileOutcome,
    JobSummary,
    WorkerFactory,
    open_job,
    outcomes_of,
    worker_id,
)
from whisper_tune.inference.job_log import FileKey
from whisper_tune.options import check_ranges, option

MAX_TASK_RETRIES = 3  # a batch whose actor died is tried this many more times
CONNECT_TIMEOUT_S = 5.0  # a dead address fails this fast (ray.init itself waits minutes)


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide a job runs on Ray."""

    # None: $RAY_ADDRESS, else the cluster `ray start` started on this machine, else a new
    # local Ray instance; or host:port of a cluster's head, or ray://host:port (Ray Client)
    address: str | None = None
    num_actors: int = option(1, help="Ray actors, each with its own copy of the model")
    cpus_per_actor: float = option(1.0, help="CPUs Ray reserves for each actor")
    gpus_per_actor: float = option(
        0.0, help="GPUs Ray reserves for each actor (0.5: two actors share one GPU)"
    )

    def __post_init__(self) -> None:
        check_ranges(
            self,
            num_actors=self.num_actors >= 1,
            cpus_per_actor=self.cpus_per_actor >= 0,
            gpus_per_actor=self.gpus_per_actor >= 0,
        )


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or a one-line error naming the pip command."""
    try:
        import ray.data  # binds ``ray``; Ray Data comes with ray[data] only
    except ImportError as exc:
        raise WhisperTuneError(
            f"--ray needs Ray Data ({exc.name} is missing): pip install 'whisper-tune[ray]'"
        ) from None
    return ray


def run_on_ray(
    files: Sequence[str | Path],
    worker_factory: WorkerFactory,
    log_path: str | Path,
    *,
    settings: RaySettings = RaySettings(),
    files_per_batch: int = 4,
    output_dir: str | Path | None = None,
    desc: str = "files",
) -> JobSummary:
    """Run ``worker_factory``'s worker over ``files`` on Ray, skipping those ``log_path``
    already has done, writing each outcome as it arrives. The files must be readable at
    the same paths on every node (a shared filesystem). Connects to the cluster unless this
    process already did (``ray.init``), and disconnects after."""
    ray = import_ray()
    files = [Path(path).absolute() for path in files]  # actors run in folders of their own
    with open_job(files, log_path, output_dir, desc) as sink:
        if sink.todo:
            batches = math.ceil(len(sink.todo) / files_per_batch)
            with (
                _connected(ray, settings.address),
                _job_data_context(ray),
                warnings.catch_warnings(),
            ):
                # Ray 2.60 deprecates passing actor options to map_batches but has no
                # other way to bound the retries (its default: retry a batch forever, so a
                # file that kills its actor every time would hang the job)
                warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
                dataset = ray.data.from_items(
                    [asdict(key) for key in sink.todo], override_num_blocks=batches
                ).map_batches(
                    _Actor,
                    fn_constructor_args=(worker_factory,),
                    batch_size=files_per_batch,
                    batch_format="numpy",
                    compute=ray.data.ActorPoolStrategy(size=min(settings.num_actors, batches)),
                    num_cpus=settings.cpus_per_actor,
                    num_gpus=settings.gpus_per_actor,
                    max_restarts=-1,  # a killed actor is started again...
                    max_task_retries=MAX_TASK_RETRIES,  # ...and its batch tried again
                )
                for row in dataset.iter_rows():
                    key = FileKey(str(row["audio_path"]), int(row["size"]), float(row["mtime"]))
                    sink.add(key, FileOutcome.from_json(row["outcome"]), str(row["worker"]))
        return sink.finish(
            f"no result came back: its batch failed {MAX_TASK_RETRIES + 1} times on Ray "
            "(a worker died each time); see the Ray logs"
        )


class _Actor:
    """Ray Data's callable class: builds the worker once, then decodes batch after batch."""

    def __init__(self, worker_factory: WorkerFactory) -> None:
        self.worker = worker_factory()
        self.id = worker_id()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        paths = [str(path) for path in batch["audio_path"]]
        outcomes = outcomes_of(self.worker, paths)
        return {
            "audio_path": paths,
            "size": [int(size) for size in batch["size"]],
            "mtime": [float(mtime) for mtime in batch["mtime"]],
            "outcome": [outcome.to_json() for outcome in outcomes],
            "worker": [self.id] * len(paths),
        }


@contextlib.contextmanager
def _connected(ray: Any, address: str | None) -> Iterator[None]:
    """Connected to the cluster at ``address`` for the block (unless already connected)."""
    if ray.is_initialized():
        yield
        return
    if address:
        _check_reachable(ray, address)
    try:
        ray.init(address=address or None, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"at {address}" if address else "(local)"
        raise WhisperTuneError(f"cannot connect to the Ray cluster {where}: {exc}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(ray: Any, address: str) -> None:
    """Fail within :data:`CONNECT_TIMEOUT_S` when nothing listens at ``address``."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise WhisperTuneError(
            f"--ray {address}: give host:port of the cluster's head, or ray://host:port"
        )
    # Ray binds the node's own IP; a localhost address reaches it there
    hosts = [host]
    if host in ("localhost", "127.0.0.1"):
        hosts.append(ray.util.get_node_ip_address())
    reasons = []
    for candidate in hosts:
        try:
            socket.create_connection((candidate, int(port)), CONNECT_TIMEOUT_S).close()
            return
        except OSError as exc:
            reasons.append(exc.strerror or str(exc) or type(exc).__name__)
    raise WhisperTuneError(
        f"no Ray cluster at {address}: {reasons[0]} (is `ray start --head` running there, "
        "and is the port open?)"
    )


# Ray Data's settings for a job: no bars of its own (the job shows one), no start banner,
# and a batch that fails every try is dropped instead of stopping the job (its files fail)
_DATA_CONTEXT = {"enable_progress_bars": False, "print_on_execution_start": False}
_DATA_CONTEXT |= {"max_errored_blocks": -1}


@contextlib.contextmanager
def _job_data_context(ray: Any) -> Iterator[None]:
    """Ray Data's current context with :data:`_DATA_CONTEXT` for the block, restored after."""
    context = ray.data.DataContext.get_current()
    saved = {name: getattr(context, name) for name in _DATA_CONTEXT}
    data_logger = logging.getLogger("ray.data")
    level = data_logger.level
    data_logger.setLevel(logging.ERROR)
    for name, value in _DATA_CONTEXT.items():
        setattr(context, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        data_logger.setLevel(level)
