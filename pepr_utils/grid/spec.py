"""Grid files: a study as data, expanded into runs and validated before anything runs.

A grid YAML names the paper's recipe once (``defaults``) and the things that vary (``axes``, crossed
with each other and with the optional ``experiments`` list), then trims or extends the product with
``exclude`` / ``include``. Every run that comes out is fully resolved (no defaults left to guess) and
carries its ``run_id``, a hash of exactly the parameters that decide its result, so a rerun of the
same grid finds the runs already done. All problems in a file are reported together, in one
:class:`~pepr_utils.errors.PeprError`, before a single run starts.

Example::

    name: quick
    defaults: {epochs: 3, batch_size: 32, lr: 5.0e-4, size: 28, device: cpu}
    axes:
      model: [resnet18d, mobilenetv3_small_050]    # or {catalogue: paper131}
      dataset: [dermamnist, pneumoniamnist, lidc]
      fraction: [1.0, 0.1]
    include:
      - {model: tf_efficientnet_lite0, weights: [scratch, imagenet], dataset: [dermamnist, lidc]}
    exclude:
      - {model: resnet18d, dataset: lidc, fraction: 0.1}
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import settings
from ..errors import PeprError
from ..models.build import no_weights
from ..params import DEFAULT_NAMES, NAMES, SETTING_NAMES, RunParams, RunSettings, defaults

#: What a grid may set: the run parameters (pepr_utils.params.NAMES, hashed into ``run_id``) and the run
#: settings (SETTING_NAMES: where files are, how CO2 is counted; not hashed).
SETTABLE = DEFAULT_NAMES + ("model", "dataset", "pretrained")
ALIASES = {"models": "model", "datasets": "dataset", "sizes": "size", "fractions": "fraction",
           "seeds": "seed", "modes": "mode", "devices": "device"}
TOP_KEYS = ("name", "description", "defaults", "axes", "experiments", "include", "exclude", "notebook")
NOTEBOOK_SCRATCH = "02_train"
NOTEBOOK_PRETRAINED = "03_finetune"


@dataclass(frozen=True)
class Run:
    """One fully resolved run: what the notebook gets, and the id its result is filed under."""

    run_id: str
    notebook: str  # "02_train", "03_finetune", or the path of a grid's own notebook
    params: RunParams  # the run's identity (its record's ``params``: ``params.as_dict()``)
    settings: RunSettings = field(default_factory=RunSettings)  # what the notebook gets besides, not hashed
    label: str | None = None  # the experiment's name in the grid file, if any

    def notebook_parameters(self, out_dir: str) -> dict[str, Any]:
        """The papermill parameters, as DESIGN.md lists them for 02_train / 03_finetune."""
        p, s = self.params, self.settings
        out = {k: getattr(p, k) for k in NAMES if k not in ("pretrained", "weights", "mode")}
        out.update(data_dir=s.data_dir, out_dir=out_dir, country_iso_code=s.country_iso_code,
                   eval_every_epoch=bool(s.eval_every_epoch))
        if self.notebook != NOTEBOOK_SCRATCH:
            out.update(weights=p.weights, mode=p.mode, weights_dir=s.weights_dir)
        return out

    @property
    def cost(self) -> float:
        """A rough relative cost (images x pixels x epochs), to start the longest runs first."""
        p = self.params
        return _train_count(p.dataset) * p.fraction * p.epochs * (p.size / 28) ** 2


@dataclass
class Grid:
    name: str
    runs: list[Run]
    path: Path | None = None
    description: str = ""
    notebook_path: Path | None = None  # a grid's own notebook for every run (else 02/03)
    duplicates: int = 0  # combinations that resolved to a run already in the list

    def __len__(self) -> int:
        return len(self.runs)


# --------------------------------------------------------------------------- loading
def shipped_grids() -> list[str]:
    """Names of the grids shipped with the package (``smoke``, ``quick``, ``paper``, ...)."""
    return sorted(p.stem for p in settings.shipped("parameters", "grids").glob("*.yaml"))


def grid_file(grid: str | Path) -> Path:
    """A grid argument as a file: a YAML path (wins when it exists) or the name of a shipped grid."""
    path = Path(grid)
    if path.is_file():
        return path
    shipped = settings.shipped("parameters", "grids", f"{path.name}.yaml")
    if path.name == str(grid) and path.suffix == "" and shipped.is_file():
        return shipped
    raise PeprError(f"grid {str(grid)!r} not found: give a YAML file (e.g. parameters/grids/quick.yaml) or the "
                    f"name of a shipped grid ({', '.join(shipped_grids())})")


def load_grid(path: str | Path, *, check_names: bool = True) -> Grid:
    """Read, expand and validate a grid file; one PeprError lists every problem found."""
    from ..fileio import load_yaml

    path = grid_file(path)
    spec = load_yaml(path, "grid file")  # not UTF-8, not YAML, a key given twice: one line naming the file
    if not isinstance(spec, dict):
        raise PeprError(f"grid file {str(path)!r} must be a mapping with keys {', '.join(TOP_KEYS)}")
    spec.setdefault("name", path.stem)
    return expand_grid(spec, source=path, check_names=check_names)


def expand_grid(spec: dict, *, source: str | Path | None = None, check_names: bool = True) -> Grid:
    """Expand a grid mapping into resolved runs; raise one PeprError naming every problem."""
    problems: list[str] = []
    where = str(source) if source is not None else "grid"
    for key in spec:
        if key not in TOP_KEYS:
            problems.append(f"unknown key {key!r} (accepted: {', '.join(TOP_KEYS)})")
    name = spec.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name or ""):
        problems.append(f"name: {name!r} must be a folder-safe word (letters, digits, _ . -)")
        name = "grid"

    defaults = paper_defaults()
    defaults.update(_settings(spec.get("defaults") or {}, "defaults", problems, lists=False))
    axes = _settings(spec.get("axes") or {}, "axes", problems, lists=True)
    experiments = _section_list(spec.get("experiments"), "experiments", problems, allow_name=True)
    includes = _section_list(spec.get("include"), "include", problems)
    excludes = _section_list(spec.get("exclude"), "exclude", problems)

    notebook_path = None
    if spec.get("notebook") is not None:
        nb = Path(str(spec["notebook"])).expanduser()
        if not nb.is_absolute() and source is not None:
            nb = Path(source).parent / nb
        if nb.suffix != ".ipynb" or not nb.is_file():
            problems.append(f"notebook: {str(nb)!r} is not an existing .ipynb file")
        notebook_path = nb

    # axes x experiments, then the include entries; each combination resolved over the defaults
    combos: list[tuple[dict[str, str], dict, str | None]] = []  # (where each value came from, values, label)
    for values in itertools.product(*axes.values()) if axes else [()]:
        base = dict(zip(axes, values, strict=True))
        for j, (label, exp) in enumerate(experiments or [(None, {})]):
            for exp_values in itertools.product(*exp.values()) if exp else [()]:
                where_from = {**{k: "axes" for k in base}, **{k: f"experiments[{j}]" for k in exp}}
                combos.append((where_from, {**base, **dict(zip(exp, exp_values, strict=True))}, label))
    if not spec.get("axes") and not experiments:
        combos = []
    for i, (_, inc) in enumerate(includes):
        for values in itertools.product(*inc.values()):
            combos.append(({k: f"include[{i}]" for k in inc}, dict(zip(inc, values, strict=True)), None))

    registry = _Names(check_names, problems)
    runs: list[Run] = []
    seen: set[str] = set()
    duplicates = 0
    excluded_by: set[int] = set()
    for where_from, combo, label in combos:
        resolved = {**defaults, **combo}
        hits = [i for i, (_, ex) in enumerate(excludes) if _matches(resolved, ex)]
        if hits:
            excluded_by.update(hits)
            continue
        run = _resolve(resolved, where_from, label, registry, problems, notebook_path)
        if run is None:
            continue
        if run.run_id in seen:
            duplicates += 1
            continue
        seen.add(run.run_id)
        runs.append(run)
    for i, (_, ex) in enumerate(excludes):  # a typo in an exclude entry must not quietly run what it meant to drop
        if i not in excluded_by:
            problems.append(f"exclude[{i}] {ex} matches no run; check its values against the axes")
    if not combos and not problems:
        problems.append("no runs: give axes (e.g. model and dataset lists), experiments, or include entries")
    elif combos and not runs and not problems:
        problems.append("no runs left after exclude")
    registry.report()
    if problems:
        unique = list(dict.fromkeys(problems))
        raise PeprError(f"{where}: {len(unique)} problem{'s' * (len(unique) > 1)}, nothing was run: "
                        + "; ".join(unique))
    return Grid(name=name, runs=runs, path=Path(source) if source is not None else None,
                description=str(spec.get("description") or ""), notebook_path=notebook_path,
                duplicates=duplicates)


def missing_checkpoints(runs: list[Run]) -> list[str]:
    """One line per checkpoint path (``weights``) that is not an existing file, for ``grid run`` to refuse
    before anything runs (dry run included): a run starts in its own folder, so the path must be absolute."""
    out = []
    for run in runs:
        weights = run.params.weights
        if weights in (None, "imagenet"):
            continue
        path = Path(str(weights)).expanduser()
        if not path.is_absolute():
            out.append(f"run {run.run_id}: weights {weights!r} is a relative path; runs execute in their own folder, "
                       "so give the checkpoint's absolute path")
        elif not path.is_file():
            out.append(f"run {run.run_id}: weights {weights!r} is not an existing checkpoint file")
    return out


def paper_defaults() -> dict[str, Any]:
    """``parameters/defaults.yaml``: every parameter a grid may leave out, with its value."""
    return dict(defaults())


# --------------------------------------------------------------------------- sections
def _settings(section: Any, where: str, problems: list[str], *, lists: bool) -> dict[str, Any]:
    """A mapping of parameter -> value (defaults) or -> list of values (axes), aliases folded."""
    if not isinstance(section, dict):
        problems.append(f"{where}: expected a mapping of parameter: value, got {type(section).__name__}")
        return {}
    out: dict[str, Any] = {}
    for raw_key, value in section.items():
        key = ALIASES.get(raw_key, raw_key)
        if key not in SETTABLE:
            problems.append(f"{where}: unknown parameter {raw_key!r} (accepted: {', '.join(SETTABLE)})")
            continue
        if key in out:
            problems.append(f"{where}: {key!r} given twice")
            continue
        if key == "model" and isinstance(value, dict):
            value = _catalogue_models(value, f"{where}.{raw_key}", problems)
            if not lists:
                problems.append(f"{where}: a model catalogue belongs in axes, not {where}")
                continue
        if lists:
            if not isinstance(value, list):
                value = [value]
            if not value:
                problems.append(f"{where}.{raw_key}: empty list")
                continue
        elif isinstance(value, list):
            problems.append(f"{where}.{raw_key}: one value expected here, got a list (lists go in axes)")
            continue
        out[key] = value
    return out


def _section_list(section: Any, where: str, problems: list[str], allow_name: bool = False
                  ) -> list[tuple[str | None, dict]]:
    if section is None:
        return []
    if not isinstance(section, list) or not all(isinstance(e, dict) for e in section):
        problems.append(f"{where}: expected a list of mappings (parameter: value or [values])")
        return []
    out = []
    for i, entry in enumerate(section):
        entry = dict(entry)
        label = entry.pop("name", None) if allow_name else None
        settings = _settings(entry, f"{where}[{i}]", problems, lists=True)
        out.append((str(label) if label is not None else None, settings))
    return out


def _catalogue_models(value: dict, where: str, problems: list[str]) -> list[str]:
    if set(value) != {"catalogue"}:
        problems.append(f"{where}: expected a list of timm names or {{catalogue: NAME}}, got keys {sorted(value)}")
        return []
    try:
        from ..models.catalogue import catalogue_models
    except ImportError as exc:  # pragma: no cover - the models module ships with the package
        problems.append(f"{where}: cannot read model catalogues ({exc})")
        return []
    try:
        names = list(catalogue_models(str(value["catalogue"])))
    except PeprError as exc:
        problems.append(f"{where}: {exc}")
        return []
    return names


def _matches(resolved: dict, pattern: dict) -> bool:
    """True when every key of an exclude entry matches the run (a list means any of these values)."""
    for key, values in pattern.items():
        actual = resolved.get(key)
        if key == "pretrained":
            key, actual, values = "weights", _weights(resolved.get("weights"), resolved.get("pretrained")), \
                [("imagenet" if v is True else "scratch" if v is False else v) for v in values]
        if key == "weights":
            actual = _weights(actual, resolved.get("pretrained"))
            values = [_weights(v, None) for v in values]
        if actual not in values:
            return False
    return True


def _weights(weights: Any, pretrained: Any) -> Any:
    """Fold the ``pretrained`` shorthand and the spellings of 'no weights' into one value."""
    if pretrained is True and no_weights(weights):
        return "imagenet"
    if pretrained is False or no_weights(weights):
        return "scratch"
    return weights


# --------------------------------------------------------------------------- one run
def _resolve(p: dict, where_from: dict[str, str], label: str | None, names: _Names, problems: list[str],
             notebook_path: Path | None) -> Run | None:
    before = len(problems)
    for key in ("model", "dataset"):
        if key not in p:
            problems.append(f"{where_from.get('model', 'grid')}: no {key} given (set it in axes, defaults or "
                            "the include entry)")
    if len(problems) > before:
        return None

    class _Origin:  # "axes", "experiments[1]", "include[0]" or "defaults", per parameter
        def __mod__(self, key: str) -> str:
            return where_from.get(key, "defaults")

    o = _Origin()

    weights = _weights(p.get("weights"), p.get("pretrained"))
    if p.get("pretrained") not in (None, True, False):
        problems.append(f"{o % 'pretrained'}: pretrained {p['pretrained']!r} must be true or false")
    if not isinstance(weights, str):
        problems.append(f"{o % 'weights'}: weights {weights!r} must be scratch, imagenet or a checkpoint path")
        return None
    pretrained = weights != "scratch"
    values = {k: p[k] for k in NAMES if k in p and k not in ("pretrained", "weights", "mode")}
    run = RunParams.of(**values, weights=weights if pretrained else None,
                       mode=p["mode"] if pretrained else "full")  # a model from scratch trains all its layers
    problems.extend(f"{o % key}: {message}" for key, message in run.problems())
    if isinstance(run.model, str) and run.model:
        names.model(run.model)
    if isinstance(run.dataset, str) and run.dataset:
        names.dataset(run.dataset)
    run_settings = RunSettings.of(**{k: p[k] for k in SETTING_NAMES if k in p})
    problems.extend(f"{o % key}: {message}" for key, message in run_settings.problems())
    if len(problems) > before:
        return None
    notebook = str(notebook_path) if notebook_path else (NOTEBOOK_PRETRAINED if pretrained else NOTEBOOK_SCRATCH)
    return Run(run_id=make_run_id(run), notebook=notebook, params=run, settings=run_settings, label=label)


def make_run_id(params: RunParams) -> str:
    """The records module's hash of the resolved parameters (one definition of a run's identity)."""
    from ..records import run_id

    return run_id(params.as_dict())


class _Names:
    """Checks model and dataset names against timm and the datasets catalogue, once each."""

    def __init__(self, enabled: bool, problems: list[str]):
        self.enabled, self.problems = enabled, problems
        self.models: set[str] = set()
        self.datasets: set[str] = set()

    def model(self, name: str) -> None:
        self.models.add(name)

    def dataset(self, name: str) -> None:
        self.datasets.add(name)

    def report(self) -> None:
        if not self.enabled:
            return
        from ..data.datasets import dataset_names

        valid = dataset_names()
        for name in sorted(self.datasets - set(valid)):
            close = difflib.get_close_matches(name, valid, n=1)
            self.problems.append(f"unknown dataset {name!r}" + (f" (did you mean {close[0]!r}?)" if close
                                                               else f" (accepted: {', '.join(valid)})"))
        unknown = sorted(m for m in self.models if not _known_model(m))
        if unknown:
            import timm

            every = timm.list_models()
            for name in unknown:
                close = difflib.get_close_matches(name, every, n=1)
                self.problems.append(f"unknown model {name!r}" + (f" (did you mean {close[0]!r}?)" if close
                                                                  else " (not a timm model name)"))


def _known_model(name: str) -> bool:
    """A timm architecture, or one of the project's catalogues (the paper's list names a few that
    newer timm removed; their runs are reported incompatible rather than blocking the grid)."""
    import timm

    if timm.is_model(name):
        return True
    return name in _catalogued_models()


_CATALOGUED: set[str] | None = None


def _catalogued_models() -> set[str]:
    global _CATALOGUED
    if _CATALOGUED is None:

        names: set[str] = set()
        try:
            from ..models.catalogue import catalogue_models

            for f in sorted(settings.shipped("parameters", "models").glob("*.yaml")):
                names.update(catalogue_models(f.stem))
        except (ImportError, PeprError):
            pass
        _CATALOGUED = names
    return _CATALOGUED


def _train_count(dataset: str) -> int:
    """Training images of ``dataset`` by the dataset catalogue (a scheduling hint: 10,000 if unknown)."""
    from ..data.datasets import dataset_info

    try:
        return int((dataset_info(dataset).n_samples or {}).get("train", 10000))
    except PeprError:
        return 10000
