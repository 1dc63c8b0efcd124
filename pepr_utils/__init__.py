"""pepr_utils: the machinery behind the pepr notebooks.

Performance per resource (PePR) of medical-image classifiers, after Selvan et al. (2024),
"Equity through Access: A Case for Small-scale Deep Learning". One concern per place, and imports only go
down this list (tests/test_layout.py checks it): the ground (``errors``, ``settings``, ``fileio``, ``face``,
``provenance``, ``resources``, ``devices``); ``score`` (PePR), ``data``, ``models``, ``meter``; ``params``
(the run parameters) and ``paper`` (the published results); ``records``; ``train``; ``grid``; ``analysis``;
``report``; ``cli``. Each sub-package's ``__init__`` says what it is for and what it exports.
"""

__version__ = "0.1.0"
