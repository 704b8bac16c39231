"""``python -m cheesecellar`` is the same command line as ``pypi-server``."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
