"""The ``telemetry`` section: which exporters a container installs, checked when it is built.

Exporters are shared by every container of the process (one per kind, counted): two
containers never count a send twice, and the last one shut down removes the exporter.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from gocomm.errors import ConfigError

if TYPE_CHECKING:
    from gocomm.config import Settings, TelemetrySettings

__all__ = ["check_telemetry", "install_telemetry", "metrics_endpoint"]

#: kind -> (module, the extra that brings its dependency)
_EXPORTERS = {
    "opentelemetry": ("gocomm.telemetry.opentelemetry", "otel"),
    "prometheus": ("gocomm.telemetry.prometheus", "prometheus"),
}


class Instrumentation(Protocol):
    def uninstrument(self) -> None: ...


def _wanted(settings: TelemetrySettings | None) -> list[str]:
    if settings is None:
        return []
    kinds = []
    if settings.opentelemetry:
        kinds.append("opentelemetry")
    if settings.prometheus is not None:
        kinds.append("prometheus")
    return kinds


def check_telemetry(settings: TelemetrySettings | None) -> None:
    """Raise :class:`ConfigError` naming the extra to install for each exporter the section
    enables whose library is missing."""
    for kind in _wanted(settings):
        module, extra = _EXPORTERS[kind]
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(
                f"telemetry.{kind} is enabled but its library is not installed ({exc}): "
                f"pip install 'gocomm[{extra}]', or remove telemetry.{kind} from the "
                "configuration"
            ) from exc


class _Shared:
    """One exporter of the process, and how many containers use it."""

    def __init__(self, kind: str, instrumentation: Instrumentation) -> None:
        self.kind = kind
        self.instrumentation = instrumentation
        self.users = 0

    def uninstrument(self) -> None:
        self.users -= 1
        if self.users == 0:
            del _installed[self.kind]
            self.instrumentation.uninstrument()


_installed: dict[str, _Shared] = {}


def install_telemetry(settings: TelemetrySettings | None) -> list[Any]:
    """Install the exporters ``settings`` enables; each returned has ``uninstrument()``."""
    check_telemetry(settings)
    handles: list[Any] = []
    for kind in _wanted(settings):
        shared = _installed.get(kind)
        if shared is None:
            module = importlib.import_module(_EXPORTERS[kind][0])
            shared = _installed[kind] = _Shared(kind, module.instrument())
        shared.users += 1
        handles.append(shared)
    return handles


@contextlib.contextmanager
def metrics_endpoint(settings: Settings, *, processes: bool = False) -> Iterator[None]:
    """Serve ``/metrics`` on ``telemetry.prometheus.port`` while the block runs (nothing when
    no port is configured); used by ``gocomm batch`` and ``gocomm worker``.

    With ``processes`` (``gocomm worker``: metrics are counted in worker processes started
    inside the block), prometheus_client's multiprocess mode adds up every process's metrics
    through files in a temporary directory, which goes with the block.
    """
    telemetry = settings.telemetry
    section = telemetry.prometheus if telemetry is not None else None
    if section is None or section.port is None:
        yield
        return
    check_telemetry(telemetry)
    directory = None
    if processes:
        directory = tempfile.mkdtemp(prefix="gocomm-prometheus-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        _choose_value_class()
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    from gocomm.telemetry.prometheus import serve

    registry = REGISTRY
    if directory is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    server = serve(section.port, registry, addr=section.addr)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        if directory is not None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            _choose_value_class()
            shutil.rmtree(directory, ignore_errors=True)


def _choose_value_class() -> None:
    """prometheus_client picks single or multiprocess values when imported: pick again now
    that ``PROMETHEUS_MULTIPROC_DIR`` changed."""
    import prometheus_client.values as values

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
