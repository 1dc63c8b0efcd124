"""A sub-package's face: the names it exports, each imported from its module on first use.

Each sub-package's ``__init__`` says in a docstring what the package is for and lists its exports by
module. Importing ``pepr_utils.data.lidc`` then does not import torch through the data package's face,
and the CLI starts without importing the analysis stack; the notebooks still write
``from pepr_utils.models import create_model``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, Sequence[str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` exporting ``{module: names}``.

    A name is looked up in its module on first access and kept in the package, so later accesses cost
    nothing. One name, one module: a name exported twice is a bug in the face.
    """
    where: dict[str, str] = {}
    for module, names in exports.items():
        for name in names:
            if name in where:
                raise ValueError(f"{package} exports {name!r} from both {where[name]} and {module}")
            where[name] = module
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value  # also replaces a submodule of the same name bound by the import system
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__, sorted(where)
