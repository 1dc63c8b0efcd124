# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#   kernelspec:
#     display_name: Python 3 (pepr)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · One model trained from scratch on one dataset: metrics and resources → run record
#
# One run of the study, as the PePR paper (Selvan et al., 2024) made each of its 1048 runs:
#
# 1. **Parameters** are checked before anything is loaded (one clear error per bad value).
# 2. **Load** the dataset at the requested size; a training fraction is a stratified, seeded subset
#    of the training split (validation and test never change).
# 3. **Build** the model from random weights. The input-size policy decides, before training, whether
#    the model runs at the data size, at the size it needs (each batch resized on the fly), or not at
#    all (the run is then recorded as *incompatible*, with the reason, and nothing is trained).
# 4. **Train** with the paper's recipe (Adam, lr 5·10⁻⁴, batch 32, 10 epochs, cross-entropy), inside
#    a meter that records wall time, energy (with the method that measured or estimated it), CO₂ and
#    peak memory. Validation and test ACC/AUC are computed after every epoch, as the paper did.
# 5. **Evaluate**: P is the test accuracy after the last epoch; AUC as MedMNIST defines it, plus
#    balanced accuracy and macro-F1; inference time per image.
# 6. **Record** everything in `result.json` (plus `history.csv` and the trained weights
#    `model.safetensors`, which `03_finetune` accepts as a checkpoint) in `out_dir`.
#
# `pepr grid run` executes this notebook once per run of a grid, with papermill.

# %%
# On Google Colab: install pepr_utils and the pinned stack (requirements-lock.txt) into this session.
# A regular install (not -e), so the next cell imports it without a restart; once pepr_utils imports,
# and anywhere but Colab, this cell does nothing. Same cell in every notebook (tests/test_reproduce.py).
import importlib, importlib.util, os, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("pepr_utils") is None:
    src = os.path.expanduser("~/pepr")  # absolute: a rerun from any folder finds this clone
    if not os.path.isdir(src):
        repo = os.environ.get("PEPR_REPO", "https://github.com/pepr-study/pepr")
        subprocess.run(["git", "clone", "--depth", "1", repo, src], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", f"{src}/requirements-lock.txt", src],
                   check=True)
    importlib.invalidate_caches()

# %% tags=["parameters"]
model = "resnet18d"  # any timm model name
dataset = "pneumoniamnist"  # a MedMNIST 2D flag (pneumoniamnist, dermamnist, ...) or "lidc"
size = 28  # image size in px: 28, 64, 128, 224 or 256
fraction = 1.0  # share of the training split used, in (0, 1]
epochs = 10  # the paper: 10
batch_size = 32  # the paper: 32
lr = 5e-4  # Adam learning rate; the paper: 5e-4
seed = 0  # seeds the initial weights, the batch order and the training fraction
device = "auto"  # cpu, cuda, cuda:N, mps or auto (CUDA, then MPS, then CPU)
data_dir = None  # local dataset files; None: PEPR_DATA_DIR, else the cache / a download
out_dir = None  # where result.json, history.csv and model.safetensors go; None: <outputs>/runs/<run_id>
country_iso_code = "DNK"  # where the electricity comes from, for CO2 (ISO-3 code, offline table)

# %%
# %matplotlib inline
from IPython.display import display

from pepr_utils import experiment as ex
from pepr_utils.train import plot_history

params = ex.resolve_params(model=model, dataset=dataset, size=size, fraction=fraction, epochs=epochs,
                           batch_size=batch_size, lr=lr, seed=seed, device=device)
display(params)

# %% [markdown]
# ## Load and build
# Images per split and class (the training split after the fraction), then the model: its size, its
# MACs per image at the size it runs at, and the input plan.

# %%
run = ex.prepare(params, data_dir=data_dir, country_iso_code=country_iso_code)
display(run.data_summary())
display(run.model_summary())

# %% [markdown]
# ## Measure and train
# The meter wraps all epochs (training steps and the per-epoch evaluation the paper's protocol
# includes); inference time is measured afterwards on the test set, in eval mode after a warm-up.

# %%
fit_result = run.train()

# %% [markdown]
# ## Evaluate
# The test metrics after the last epoch (P = `test_acc`) and the validation metrics.

# %%
run.metrics_table()

# %% [markdown]
# ## Record
# `result.json` is written last and atomically: when it exists, the run is complete.

# %%
record = run.save(out_dir)
ex.record_summary(record)

# %% [markdown]
# ## Learning curves

# %%
fig = plot_history(record["metrics"]["history"] if record["metrics"] else [],
                   title=f"{params['model']} on {params['dataset']} {params['size']}px (from scratch)")
