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
# # 03 · Fine-tuning from pretrained weights: ImageNet or an earlier run's checkpoint, full or linear probe
#
# The same run as `02_train` (same steps, same record), but the model starts from pretrained weights:
#
# - `weights="imagenet"`: timm's default ImageNet weights, read from `weights_dir` (or
#   `PEPR_WEIGHTS_DIR`) as `<model>.safetensors` when the file is there, else from the Hugging Face
#   cache or hub (never in offline mode). For one-channel images the RGB stem filters are summed.
#   Inputs are normalised with the weights' own mean and std.
# - a checkpoint path: for example the `model.safetensors` another run wrote. A classifier trained for
#   another number of classes is replaced by a new one.
#
# and trains in one of two modes:
#
# - `mode="full"`: every layer trains (fine-tuning);
# - `mode="linear"`: a linear probe — the backbone is frozen (its batch-norm statistics included, so it
#   stays bit-identical) and only the classifier head trains.
#
# Comparing these runs with `02_train` from scratch, per unit of energy, time, CO₂ or memory, is the
# paper's question about pretraining (its `derma_pt` experiment).

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
model = "tf_efficientnet_lite0"  # any timm model name (with ImageNet weights for weights="imagenet")
dataset = "pneumoniamnist"  # a MedMNIST 2D flag (pneumoniamnist, dermamnist, ...) or "lidc"
size = 28  # image size in px: 28, 64, 128, 224 or 256
fraction = 1.0  # share of the training split used, in (0, 1]
epochs = 10  # the paper: 10
batch_size = 32  # the paper: 32
lr = 5e-4  # Adam learning rate; the paper: 5e-4
seed = 0  # seeds the new head, the batch order and the training fraction
device = "auto"  # cpu, cuda, cuda:N, mps or auto (CUDA, then MPS, then CPU)
weights = "imagenet"  # "imagenet" or the path of a checkpoint (.safetensors, .pt, .pth)
mode = "full"  # "full": all layers train; "linear": frozen backbone, only the head trains
data_dir = None  # local dataset files; None: PEPR_DATA_DIR, else the cache / a download
weights_dir = None  # local pretrained weights <model>.safetensors; None: PEPR_WEIGHTS_DIR, else the hub
out_dir = None  # where result.json, history.csv and model.safetensors go; None: <outputs>/runs/<run_id>
country_iso_code = "DNK"  # where the electricity comes from, for CO2 (ISO-3 code, offline table)

# %%
# %matplotlib inline
from IPython.display import display

from pepr_utils import experiment as ex
from pepr_utils.train import plot_history

params = ex.resolve_params(model=model, dataset=dataset, size=size, fraction=fraction, epochs=epochs,
                           batch_size=batch_size, lr=lr, seed=seed, device=device, weights=weights, mode=mode)
display(params)

# %% [markdown]
# ## Load and build
# Images per split and class, then the model with its pretrained weights: which file they came from,
# how many parameters train in this mode, the MACs per image and the input plan.

# %%
run = ex.prepare(params, data_dir=data_dir, weights_dir=weights_dir, country_iso_code=country_iso_code)
display(run.data_summary())
display(run.model_summary())

# %% [markdown]
# ## Measure and train
# The meter wraps all epochs (training steps and the per-epoch evaluation); inference time is
# measured afterwards on the test set.

# %%
fit_result = run.train()

# %% [markdown]
# ## Evaluate
# The test metrics after the last epoch (P = `test_acc`) and the validation metrics.

# %%
run.metrics_table()

# %% [markdown]
# ## Record
# `result.json` is written last and atomically; `model.safetensors` can seed a further fine-tuning run.

# %%
record = run.save(out_dir)
ex.record_summary(record)

# %% [markdown]
# ## Learning curves

# %%
fig = plot_history(record["metrics"]["history"] if record["metrics"] else [],
                   title=f"{params['model']} on {params['dataset']} {params['size']}px "
                         f"({params['weights'] if params['weights'] == 'imagenet' else 'checkpoint'}, {params['mode']})")
