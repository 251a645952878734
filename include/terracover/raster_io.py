"""Reading many rasters by window, locally or over HTTP/S3, at continental volume.

Three things made the object-store path 3x slower than a local folder: ``rasterio.Env`` built a boto3 session
(and logged "Found credentials") on every open, every band was reopened for every block of rows, and GDAL ran
with its defaults for remote files. Here GDAL reads the ``AWS_*`` variables itself (no boto3 on the read path),
one environment covers a whole subtile, each raster is opened once and read by window, and the HTTP settings
suit Cloud-Optimized GeoTIFFs: no directory listings, merged ranges, a per-file cache, retries on 429/5xx.
The reads of a subtile run in a few pinned threads (:class:`PinnedReaders`), so the object store's latency
overlaps decoding and compositing instead of adding to them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.session import DummySession
from rasterio.windows import from_bounds

if TYPE_CHECKING:
    from rasterio.io import DatasetReader

T = TypeVar("T")

# GDAL options for reading COGs by window from a folder, an S3 API or plain HTTP(S).
READ_OPTIONS: dict[str, str | int] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # never list a remote "directory" to find side-car files
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF",  # nor probe for .aux.xml/.ovr/.msk
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",  # adjacent tiles of a window in one ranged GET
    "GDAL_HTTP_MULTIPLEX": "YES",  # HTTP/2 multiplexing where the server offers it
    "VSI_CACHE": "TRUE",  # keep fetched chunks per open file: rows of a tile read by two blocks cost one GET
    # Per open file, and a subtile-year keeps ~900 open: 16 MB each let one 1098 px subtile with 61 dates reach
    # 5.7 GB RSS (OOM-killed); 2 MB still holds a row of a COG's tiles between two blocks.
    "VSI_CACHE_SIZE": str(2 * 2**20),
    "GDAL_CACHEMAX": 512 * 2**20,  # bytes of decoded blocks shared by the process (rasterio wants an int)
    "GDAL_HTTP_MAX_RETRY": "5",  # transient 429/500/502/503/504 are retried...
    "GDAL_HTTP_RETRY_DELAY": "1",  # ...with exponential back-off from 1 s
    "GDAL_HTTP_TIMEOUT": "60",
}


def read_env(options: Mapping[str, str] | None = None) -> rasterio.Env:
    """A GDAL environment for windowed reads. ``DummySession``: credentials come from GDAL's own ``AWS_*``
    configuration (environment, ~/.aws, web identity), never from a boto3 session built per open."""
    return rasterio.Env(session=DummySession(), **{**READ_OPTIONS, **(options or {})})


class OpenRasters:
    """Rasters opened once each and read by window many times, closed together at exit, all inside one GDAL
    environment. One per thread: rasterio environments and datasets are not shared across threads."""

    def __init__(self, options: Mapping[str, str] | None = None):
        self._env = read_env(options)
        self._open: dict[str, DatasetReader] = {}
        self._thread = threading.get_ident()
        self.opened = 0

    def __enter__(self) -> OpenRasters:
        self._env.__enter__()
        return self

    def get(self, path: str) -> DatasetReader:
        """The open dataset of ``path`` (a local path or a GDAL ``/vsis3/``/``/vsicurl/`` path)."""
        if threading.get_ident() != self._thread:
            raise RuntimeError("OpenRasters is per thread: open one in each worker")
        src = self._open.get(path)
        if src is None:
            src = self._open[path] = rasterio.open(path)
            self.opened += 1
        return src

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            for src in self._open.values():
                src.close()
            self._open.clear()
        finally:
            self._env.__exit__(exc_type, exc, tb)
            release_freed_memory()


class PinnedReaders:
    """``workers`` reading threads, each with its own :class:`OpenRasters`. Work submitted under a key always
    runs on the same thread, so a raster is opened, and its bytes fetched into that thread's caches, once per
    subtile whatever the number of threads. Reads overlap: rasterio releases the GIL while GDAL fetches and
    decompresses, so one thread's wait on the object store is another's decoding (and the caller composites
    meanwhile)."""

    def __init__(self, workers: int, options: Mapping[str, str] | None = None):
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self._options = options
        self._pools = [ThreadPoolExecutor(1, thread_name_prefix=f"raster-read-{i}") for i in range(workers)]
        self._rasters: list[OpenRasters | None] = [None] * workers
        self._pinned: dict[str, int] = {}
        self._futures: weakref.WeakSet[Future[Any]] = weakref.WeakSet()

    def __enter__(self) -> PinnedReaders:
        return self

    def submit(self, key: str, fn: Callable[[OpenRasters], T]) -> Future[T]:
        """Run ``fn`` with the open rasters of the thread that ``key`` is pinned to (round robin on first use)."""
        i = self._pinned.setdefault(key, len(self._pinned) % len(self._pools))
        future = self._pools[i].submit(self._run, i, fn)
        self._futures.add(future)
        return future

    def _run(self, i: int, fn: Callable[[OpenRasters], T]) -> T:
        rasters = self._rasters[i]
        if rasters is None:  # entered in the worker thread: GDAL environments are per thread
            rasters = self._rasters[i] = OpenRasters(self._options).__enter__()
        return fn(rasters)

    def _close(self, i: int) -> None:
        rasters, self._rasters[i] = self._rasters[i], None
        if rasters is not None:
            rasters.__exit__(None, None, None)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for future in list(self._futures):
            future.cancel()  # reads queued ahead that nobody will take (an error, or a prefetch past the end)
        for i, pool in enumerate(self._pools):
            pool.submit(self._close, i).result()  # after any work still queued; in the thread that opened them
            pool.shutdown(cancel_futures=True)


def release_freed_memory() -> None:
    """Hand the heap pages freed by closing many rasters back to the OS (glibc's ``malloc_trim``; nothing elsewhere).

    A subtile-year's ~900 open rasters hold ~1 MB each of decoder state and cached blocks. glibc keeps what they
    free in its heaps, and the COG write that follows does not reuse it: measured, RSS stayed at 1.8 GB after
    closing them and only dropped to 0.4 GB after a trim, so every stack's write phase stacked on top of its
    read phase.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is not None:
        trim(0)


def read_bounds(
    src: DatasetReader,
    bounds: tuple[float, float, float, float],
    shape: tuple[int, int],
    fill_value: float = 0,
    resampling: Resampling = Resampling.nearest,
    band: int = 1,
) -> np.ndarray:
    """``band`` of ``src`` over ``bounds`` (its CRS) resampled to ``shape``. A window inside the raster is read
    from the open dataset; only one reaching outside goes through rasterio's boundless path, which wraps the
    file in a VRT and so opens it again."""
    win = from_bounds(*bounds, transform=src.transform)
    eps = 1e-6
    inside = (
        win.col_off >= -eps
        and win.row_off >= -eps
        and win.col_off + win.width <= src.width + eps
        and win.row_off + win.height <= src.height + eps
    )
    return np.asarray(
        src.read(band, window=win, out_shape=shape, boundless=not inside, fill_value=fill_value, resampling=resampling)
    )
