"""pepr_utils: the machinery behind the pepr notebooks.

Performance per resource (PePR) of medical-image classifiers, after Selvan et al. (2024),
"Equity through Access: A Case for Small-scale Deep Learning". One concern per module:
``settings`` (paths and offline mode), ``score`` (PePR), ``datasets``, ``models``, ``meter``,
``train``, ``records``, ``grid``, ``plots``, ``cli``.
"""

__version__ = "0.1.0"
