"""cheesecellar: a self-hosted Python package index.

``create_app(config)`` builds the WSGI app from a Config; ``app(**kwargs)`` is the
pypiserver-compatible factory that ``.wsgi`` files call.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "app", "create_app"]


def create_app(config: Any) -> Any:
    """A fresh WSGI application for a :class:`cheesecellar.config.Config`."""
    from .web import create_app as _create

    return _create(config)


def app(**kwargs: Any) -> Any:
    """pypiserver-style factory: ``app(root=..., password_file=..., redirect_to_fallback=...)``.

    Unknown keywords raise TypeError, bad values ConfigError (a ValueError). Under mod_wsgi there
    is no CLI, so this sets up logging to stderr (Apache's error log) when nothing else has.
    """
    from .config import config_from_kwargs
    from .web import with_access_log

    config = config_from_kwargs(kwargs)
    root_logger = logging.getLogger()
    if not root_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root_logger.addHandler(handler)
        root_logger.setLevel(logging.INFO if config.verbosity == 0 else logging.DEBUG)
    return with_access_log(create_app(config))
