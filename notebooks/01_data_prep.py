# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (pepr)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · One dataset at one size: splits, training fractions, class balance, sample images, manifest
#
# Before any model is trained, this notebook pins down the data it will see:
#
# 1. **Load** the dataset at the requested size from the local data dir, the cache, or a checksummed
#    download (`pepr_utils.data.datasets.load_dataset`). MedMNIST files whose MD5 differs from the official
#    release are used with a warning and recorded as *not official*. Sizes without an official file
#    are resized (bilinear, antialiased) from the largest file available.
# 2. **Count** images per class in each split and in each training fraction. Fractions are stratified
#    by class, seeded and nested (the 1% subset lies inside the 10% subset); val and test never change.
#    For `lidc` the split is by patient (60/20/20, fixed seed), so no patient is in two splits.
# 3. **Look** at random images of every class and at the pixel statistics.
# 4. **Record** a manifest: the source file and its sha256, whether it is the official file, the size,
#    and a checksum of each fraction's indices, so any later run can show it used the same data.
#
# `pepr data prepare --dataset NAME --size N` runs the same functions from the command line.

# %%
# On Google Colab: install pepr_utils, at this notebook's release, into this session. Colab's own torch
# and Jupyter stack stay as they are; only the study's libraries get the lock's versions
# (tools/colab_install.py). A regular install, so the next cell imports it without a restart; once
# pepr_utils imports, and anywhere but Colab, this cell does nothing. Same cell in every notebook.
import importlib, importlib.util, os, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("pepr_utils") is None:
    src = os.path.expanduser("~/pepr")  # absolute: a rerun from any folder finds this clone
    if not os.path.isdir(src):
        repo = os.environ.get("PEPR_REPO", "https://github.com/pepr-study/pepr")
        ref = os.environ.get("PEPR_REF", "v0.1.0")  # the release tag (PEPR_REF=main: the latest code)
        subprocess.run(["git", "clone", "-q", "--branch", ref, repo, src], check=True)  # whole: pip clones it again
    subprocess.run([sys.executable, f"{src}/tools/colab_install.py", src], check=True)
    importlib.invalidate_caches()

# %% tags=["parameters"]
dataset = "dermamnist"  # a MedMNIST 2D flag (dermamnist, pneumoniamnist, ...) or "lidc"
size = 28  # image size in px: 28, 64, 128, 224 or 256
fractions = [1.0, 0.1, 0.01]  # shares of the training split to describe (each in (0, 1])
seed = 0  # seed of the training fractions
data_dir = None  # local dataset files; None: PEPR_DATA_DIR, else the cache / a download
out_dir = None  # where tables, figure and manifest go; None: <PEPR_OUTPUT_DIR>/data/<dataset>-<size>px

# %%
import pandas as pd
from IPython.display import display

from pepr_utils import data as dr
from pepr_utils.data import load_dataset
from pepr_utils.fileio import atomic_write_csv, atomic_write_figure
from pepr_utils.params import check_param

pd.set_option("display.width", 140)
fractions = dr.check_fractions(fractions)
seed = check_param("seed", seed)  # the grids' rule (an integer >= 0), before anything is written
out = dr.resolve_out_dir(out_dir, dataset, size)

# %% [markdown]
# ## Load
# Where the data came from, and whether it is the official file.

# %%
ds = load_dataset(dataset, size, data_dir=data_dir)
display(pd.Series(ds.source, name=dataset).to_frame())

# %%
display(dr.label_table(ds))

# %% [markdown]
# ## Splits and training fractions
# Images per class (columns are class indices, see above) in each split, and in each training fraction.

# %%
table = dr.split_table(ds, fractions, seed)
atomic_write_csv(out / dr.SPLIT_TABLE_FILE, table)
display(table)

# %% [markdown]
# ## Sample images
# Random training images of each class (row label: class, and its number of training images).

# %%
fig = dr.sample_grid(ds, seed=seed)
png = atomic_write_figure(out / dr.SAMPLES_FILE, fig, dpi=120)

# %% [markdown]
# ## Pixel statistics
# Per split and channel, all on one 0..1 scale (grey level / 255, what the models see).

# %%
stats = dr.pixel_stats(ds)
atomic_write_csv(out / dr.PIXEL_STATS_FILE, stats)
display(stats)

# %% [markdown]
# ## Manifest
# The record of exactly which data (and which training subsets) later runs will use.

# %%
manifest = dr.build_manifest(ds, fractions, seed, files=[dr.SPLIT_TABLE_FILE, dr.SAMPLES_FILE, dr.PIXEL_STATS_FILE])
path = dr.write_manifest(out, manifest)
print(f"wrote {path}")
display(pd.DataFrame(manifest["fractions"]).drop(columns="class_counts"))
