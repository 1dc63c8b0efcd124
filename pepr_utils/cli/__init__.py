"""The ``pepr`` command: ``score``, ``data``, ``grid``, ``models`` and ``report``, thin wrappers over the library.

Exports :func:`main` (``command``); each other module adds its subcommands.
"""

from ..face import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "command": ("main",),
})
