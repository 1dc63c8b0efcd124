# pepr: every target creates .venv when it is missing, installs the pinned stack and registers the
# Jupyter kernel. Set PYTHON to choose the interpreter: Python >=3.11 (pyproject.toml requires-python).
# torch: CPU wheels (PyTorch's CPU index) without an NVIDIA GPU, the CUDA build with one; override with
# TORCH_VARIANT=cpu|cuda or TORCH_INDEX=URL (TORCH_INDEX=pypi: the default index; PyPI's Linux torch is the
# CUDA-13 build, so a CUDA 12 driver wants TORCH_INDEX=https://download.pytorch.org/whl/cu126). Versions always come
# from requirements-lock.txt; an unreachable index falls back to the default one (tools/setup_env.py).
# --no-compile, then compileall on every core: the 15,000 files of the venv are byte-compiled in parallel
# (about 30 s on 2 cores instead of a minute of one). Done once, on purpose: where PYTHONDONTWRITEBYTECODE is
# set (as on our CI machines) nothing is cached on first use, so every kernel, worker and CLI process would
# compile torch, timm and pandas again (about 8 s of CPU each time).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.pepr-installed
COMPILED = $(VENV)/.pepr-compiled
# Local data and weights (air-gapped machines); ../shared holds real files on the team's machines.
SHARED ?= ../shared
export PEPR_DATA_DIR      ?= $(if $(wildcard $(SHARED)/data),$(abspath $(SHARED)/data),)
export PEPR_WEIGHTS_DIR   ?= $(if $(wildcard $(SHARED)/weights),$(abspath $(SHARED)/weights),)
export PEPR_REFERENCE_DIR ?= $(if $(wildcard $(SHARED)/reference/saintslab-pepr),$(abspath $(SHARED)/reference/saintslab-pepr),)
export MPLBACKEND = Agg
# GRID: a shipped grid name (smoke, quick, paper) or a YAML path.
GRID   ?= quick
WORKERS ?= 2

.PHONY: setup study test lint paper notebooks lab bench clean-venv

TORCH_VARIANT ?= auto
TORCH_INDEX   ?=
export TORCH_VARIANT TORCH_INDEX

$(STAMP): pyproject.toml requirements-lock.txt
	@test -x $(BIN)/python || { $(PYTHON) tools/setup_env.py check-python && $(PYTHON) -m venv $(VENV); }
	@$(BIN)/python tools/setup_env.py check-python
	$(BIN)/python -m pip install --quiet --upgrade pip wheel
	$(BIN)/python -m pip install --quiet --no-compile -c requirements-lock.txt torch torchvision \
		$$($(BIN)/python tools/setup_env.py torch-args)
	$(BIN)/python -m pip install --quiet --no-compile -c requirements-lock.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (pepr)" >/dev/null
	@touch $(STAMP)

# A venv made before this step existed gets it on its next target. py312-only test files in torch do not
# compile on 3.11 (compileall then exits 1): the rest is compiled all the same.
$(COMPILED): $(STAMP)
	@echo "byte-compiling .venv on every core (once)"
	@env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m compileall -q -j0 --invalidation-mode timestamp \
		"$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" >/dev/null 2>&1 || true
	@touch $(COMPILED)

setup: $(COMPILED)  ## create .venv with the pinned stack and the notebooks' kernel

# The suite runs on every core (pytest-xdist, one worker per core): TEST_WORKERS=0 runs it in this one process
# (to debug a test), TEST_WORKERS=N on N workers.
TEST_WORKERS ?= auto
test: $(COMPILED)  ## unit tests and notebook runs on small slices of the real data
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

lint: $(COMPILED)
	$(BIN)/ruff check pepr_utils tests benchmarks tools notebooks/*.py
	$(BIN)/jupytext --check "$(BIN)/python -c pass" notebooks/*.ipynb >/dev/null

paper: $(COMPILED)  ## the paper's tables and figures from its published results -> outputs/paper/
	@mkdir -p outputs/paper
	$(BIN)/papermill --cwd notebooks notebooks/00_paper_results.ipynb outputs/paper/00_paper_results.ipynb \
		-p out_dir $(abspath outputs/paper) $(if $(PEPR_REFERENCE_DIR),-p reference_dir $(PEPR_REFERENCE_DIR),)
	@echo "paper results: outputs/paper/"

STUDY_DIR = $(or $(PEPR_OUTPUT_DIR),outputs)/$(basename $(notdir $(GRID)))

# Resumable: run it again after an interruption and only the missing runs are done. Runs that failed
# (exit status 1) are recorded and reported; the study goes on without them.
# At the end it says how long it took and where the time went (setup, grid, report, also written to
# <study>/study_time.json for tools/study_findings.py; `grid status` splits the
# grid's worker time into training, evaluation and per-run overhead).
MAKE_T0 := $(shell date +%s)
study: $(COMPILED)  ## the main job: the quick grid, then the analysis report
	@t1=$$(date +%s); \
	$(BIN)/pepr grid run $(GRID) --workers $(WORKERS) || [ $$? -eq 1 ] || exit 1; \
	t2=$$(date +%s); \
	$(BIN)/pepr grid status $(GRID) && $(BIN)/pepr grid collect $(GRID) && \
	$(BIN)/pepr report $(STUDY_DIR)/results.csv -o $(STUDY_DIR)/report || exit 1; \
	t3=$$(date +%s); \
	echo "report: $(STUDY_DIR)/report/report.html"; \
	echo "study time: $$((t3 - $(MAKE_T0))) s in all = setup $$((t1 - $(MAKE_T0))) s + grid $$((t2 - t1)) s + report $$((t3 - t2)) s"; \
	printf '{"total_s": %d, "setup_s": %d, "grid_s": %d, "report_s": %d, "workers": %d, "commit": "%s", "cpu": "%s"}\n' \
		$$((t3 - $(MAKE_T0))) $$((t1 - $(MAKE_T0))) $$((t2 - t1)) $$((t3 - t2)) $(WORKERS) \
		"$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$$(nproc) cores" > $(STUDY_DIR)/study_time.json

lab: $(COMPILED)  ## open the notebooks in JupyterLab (the .py twins open as notebooks too, via jupytext)
	$(BIN)/jupyter lab notebooks/ $(LAB_ARGS) $(if $(filter 0,$(shell id -u)),--allow-root,)

bench: $(COMPILED)  ## every performance goal side by side, one line each (<= 10 min on 2 cores; not part of test)
	$(BIN)/python benchmarks/run_all.py --workers $(WORKERS)

notebooks:  ## 02/03 from their one template (tools/train_notebooks.in), then each .ipynb from its .py twin (outputs stripped)
	$(BIN)/python tools/train_notebooks.py
	$(BIN)/jupytext --sync notebooks/*.py

clean-venv:
	rm -rf $(VENV)
