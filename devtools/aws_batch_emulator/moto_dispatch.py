"""moto's request dispatcher, without its per-request directory scan."""

from __future__ import annotations

from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_MAX_HOSTS = 1024  # hosts come from (service, region) pairs; the bound only guards against odd requests


class MotoDispatcher(DomainDispatcherApplication):
    """moto finds each request's backend by listing its own package directory (an `os.listdir` and a stat per
    module, twice per request, under a lock that serialises every request thread): about a third of the
    emulator's CPU for a small S3 call. A host's backend never changes, so it is looked up once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._backends: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        try:
            return self._backends[host]
        except KeyError:
            backend = super().get_backend_for_host(host)
            if len(self._backends) < _MAX_HOSTS:
                self._backends[host] = backend
            return backend
