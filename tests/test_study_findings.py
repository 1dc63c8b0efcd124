"""tools/study_findings.py: the README's findings come from the runs, and only what held everywhere is stated."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import load_tool

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool():
    return load_tool("study_findings")


def make_study(folder: Path, seeds: tuple[int, int], verdicts: dict[str, tuple[str, bool]],
               below_floor: int = 0, not_after_holm: tuple[str, ...] = ()) -> Path:
    """A study folder as `make study` leaves it: results, the verdict tables, the floor table, the time."""
    tables = folder / "report" / "tables"
    tables.mkdir(parents=True)
    rows = [{"run_id": f"{m}{s}", "status": "ok", "experiment": "pneu-28px-1-scratch", "model": m, "seed": s,
             "dataset": "pneumoniamnist", "size": 28, "fraction": 1.0, "energy_method": "cpu-time x TDP estimate",
             "env_git_commit": "abcdef123"} for m in ("a", "b", "c") for s in seeds]
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    pd.DataFrame([{"claim": c, "verdict": v, "estimate": 0.05, "ci_lo": 0.01, "ci_hi": 0.09, "p": 0.01,
                   "survives_holm": c not in not_after_holm and v in ("supported", "reversed", "contradicted")}
                  for c, (v, _) in verdicts.items()]).to_csv(tables / "verdicts.csv", index=False)
    pd.DataFrame([{"claim": c, "all seeds": v, "holds in every seed": h} for c, (v, h) in verdicts.items()]
                 ).to_csv(tables / "verdicts_by_seed.csv", index=False)
    pd.DataFrame([{"experiment": "pneu-28px-1-scratch", "model": "a"}] * below_floor).to_csv(
        tables / "at_floor.csv", index=False)
    (folder / "study_time.json").write_text(json.dumps(
        {"total_s": 1500, "setup_s": 90, "grid_s": 1300, "report_s": 110, "workers": 2, "commit": "abcdef1",
         "cpu": "2 cores"}))
    return folder


def test_only_verdicts_that_hold_in_every_run_and_seed_are_findings(tool, tmp_path):
    a = make_study(tmp_path / "a", (0, 1), {"More data raises accuracy": ("supported", True),
                                           "Small models win": ("supported", True),
                                           "Pretraining raises accuracy": ("supported", False),
                                           "Cost to target": ("not testable", True)}, below_floor=1)
    b = make_study(tmp_path / "b", (2, 3), {"More data raises accuracy": ("supported", True),
                                           "Small models win": ("inconclusive", True),
                                           "Pretraining raises accuracy": ("supported", True),
                                           "Cost to target": ("not testable", True)})
    text = tool.block([tool.Study(a), tool.Study(b)])
    findings = text.split("Findings:")[1]
    assert "**More data raises accuracy: supported**" in findings
    for claim in ("Small models win", "Pretraining raises accuracy", "Cost to target"):
        assert claim not in findings.split("Model-experiments")[0]
    assert "| Small models win | supported: +0.05 [+0.01, +0.09], p = 0.01 | inconclusive" in text
    assert "no: differs between runs" in text and "no: differs between seeds" in text and "no: untested" in text
    assert "2 of 3 (seeds 0, 1); 3 of 3 (seeds 2, 3)" in text  # learned model-experiments, from the floor table
    assert "**1,500 s**" in text and "seeds 0, 1 and 2, 3" in text


def test_the_readme_block_is_replaced_in_place_and_a_missing_report_is_one_line(tool, tmp_path, capsys):
    a = make_study(tmp_path / "a", (0, 1), {"More data raises accuracy": ("supported", True)})
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\nbefore\n{tool.BEGIN}\nold text\n{tool.END}\nafter\n")
    assert tool.main([str(a), "--readme", str(readme)]) == 0
    doc = readme.read_text()
    assert doc.startswith("# x\nbefore\n") and doc.endswith("after\n") and "old text" not in doc
    assert doc.count(tool.BEGIN) == 1 and "More data raises accuracy: supported" in doc
    with pytest.raises(SystemExit, match="verdicts.csv not found"):
        tool.main([str(tmp_path / "missing")])


def test_only_verdicts_a_test_decided_and_that_survive_holm_are_findings(tool, tmp_path):
    """'inconclusive' in every run and seed is no finding; nor is a 'supported' that Holm's correction overturns."""
    claims = {"Pretraining raises accuracy": ("inconclusive", True), "Small models win": ("supported", True),
              "More data raises accuracy": ("contradicted", True)}
    a = make_study(tmp_path / "a", (0, 1), claims, not_after_holm=("Small models win",))
    b = make_study(tmp_path / "b", (2, 3), claims)
    text = tool.block([tool.Study(a), tool.Study(b)])
    findings = text.split("Findings:")[1].split("Model-experiments")[0]
    assert "**More data raises accuracy: contradicted**" in findings
    assert "Pretraining raises accuracy" not in findings and "Small models win" not in findings
    assert "| Pretraining raises accuracy | inconclusive" in text and "no: no test decided it" in text
    assert "p = 0.01 (not after Holm) |" in text and "no: not after Holm's correction" in text


def test_an_inconclusive_cell_says_what_the_design_detects_and_the_papers_effect(tool, tmp_path):
    a = make_study(tmp_path / "a", (0,), {"More data raises accuracy": ("inconclusive", True)})
    table = a / "report" / "tables" / "verdicts.csv"
    pd.read_csv(table).assign(detectable=0.031, paper_effect=0.0617).to_csv(table, index=False)
    text = tool.block([tool.Study(a)])
    assert "inconclusive: +0.05 [+0.01, +0.09], p = 0.01; the design detects 0.031 or more, the paper's own effect +0.0617" in text
