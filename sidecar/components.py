"""What runs beside the pipeline in `tftrt-sidecar run`, built from the settings:
the shape store (always: jobs replay its shapes), and the tap when asked for."""

from __future__ import annotations

import time
from collections.abc import Callable

from sidecar.config import Settings
from sidecar.errors import ConfigError
from sidecar.service import BackgroundComponent, ServiceComponents
from sidecar.shapes import ShapeStore, ShapeStoreSettings
from sidecar.tap import TapSettings
from sidecar.tap.background import TapComponent


class _ClosesOnStop:
    """Closes a resource when the service stops."""

    def __init__(self, close: Callable[[], None]) -> None:
        self._close = close

    def start(self) -> None:
        """Nothing to start: the resource is open already."""

    def stop(self) -> None:
        """Close the resource."""
        self._close()


def build_components(settings: Settings, clock: Callable[[], float] = time.time
                     ) -> ServiceComponents:
    """The shape store in the state directory, and the tap recording into it."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    store = ShapeStore(settings.state_dir, ShapeStoreSettings(), clock)
    background: list[BackgroundComponent] = []
    if settings.tap_listen is not None:
        if settings.upstream is None:
            store.close()
            raise ConfigError(field="upstream", value=None, source="settings",
                              problem="is empty while tap_listen is set",
                              fix="set upstream to TF Serving's gRPC address, e.g. "
                                  "127.0.0.1:8600, or unset tap_listen")
        background.append(TapComponent(
            TapSettings(listen=settings.tap_listen, upstream=settings.upstream), store,
            clock=clock))
    background.append(_ClosesOnStop(store.close))
    return ServiceComponents(shape_source=store, background=tuple(background))
