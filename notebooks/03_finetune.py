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
# # 03 · Fine-tuning from pretrained weights: ImageNet or an earlier run's checkpoint, full or linear probe
#
# The same run as `02_train` (the same steps and record; both notebooks are generated from one source,
# `tools/train_notebooks.in`, so they cannot drift apart), but the model starts from
# pretrained weights:
#
# - `weights="imagenet"`: timm's default ImageNet weights, read from `weights_dir` (or
#   `PEPR_WEIGHTS_DIR`) as `<model>.safetensors` when the file is there, else from the Hugging Face
#   cache or hub (never in offline mode). For one-channel images the RGB stem filters are summed.
#   Inputs are normalised with the weights' own mean and std.
# - a checkpoint path: for example the `model.safetensors` another run wrote. A classifier trained for
#   another number of classes is replaced by a new one.
#
# and trains in one of two modes: `mode="full"`, every layer trains (fine-tuning); `mode="linear"`, a
# linear probe: the backbone is frozen (its batch-norm statistics included, so it stays bit-identical)
# and only the classifier head trains. Comparing these runs with `02_train` from scratch, per unit of
# energy, time, CO₂ or memory, is the paper's question about pretraining (its `derma_pt` experiment).
#
# The steps:
#
# 1. **Parameters** are checked before anything is loaded (`RunParams`: one clear error per bad value).
# 2. **Data**: the dataset at the requested size, loaded as `01_data_prep` loads it; a training
#    fraction is a stratified, seeded subset of the training split (validation and test never change).
# 3. **Model**: the input-size policy decides, before training, whether the model runs at the data size,
#    at the size it needs (each batch resized on the fly), or not at all (the run is then recorded as
#    *incompatible*, with the reason, and nothing is trained).
# 4. **Train**: the paper's recipe (Adam, lr 5·10⁻⁴, batch 32, 10 epochs, cross-entropy), an explicit
#    epoch loop inside a meter that records wall time, energy (with the method that measured or
#    estimated it), CO₂ and peak memory. Validation and test are evaluated after every epoch, as the
#    paper did; P is the test accuracy after the last epoch.
# 5. **Record** everything in `result.json` (plus `history.csv`, `predictions.npz` and the trained
#    weights `model.safetensors`, which `03_finetune` accepts as a checkpoint) in `out_dir`.
#
# `pepr grid run` executes this notebook once per run of a grid, with papermill.

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
model = "tf_efficientnet_lite0"  # any timm model name (one with ImageNet weights, for weights "imagenet")
dataset = "pneumoniamnist"  # a MedMNIST 2D flag (pneumoniamnist, dermamnist, ...) or "lidc"
size = 28  # image size in px: 28, 64, 128, 224 or 256
fraction = 1.0  # share of the training split used, in (0, 1]
epochs = 10  # the paper: 10
batch_size = 32  # the paper: 32
lr = 5e-4  # Adam learning rate; the paper: 5e-4
seed = 0  # seeds the initial weights, the batch order and the training fraction
device = "auto"  # auto: CUDA, then MPS, then CPU (a Colab GPU is used; the record says so); or cpu, cuda, cuda:N, mps
weights = "imagenet"  # "imagenet" or the path of a checkpoint (.safetensors, .pt, .pth)
mode = "full"  # "full": all layers train; "linear": frozen backbone, only the head trains
weights_dir = None  # local pretrained weights <model>.safetensors; None: PEPR_WEIGHTS_DIR, else the hub
data_dir = None  # local dataset files; None: PEPR_DATA_DIR, else the cache / a download
out_dir = None  # where result.json, history.csv and model.safetensors go; None: <outputs>/runs/<run_id>
country_iso_code = "DNK"  # where the electricity comes from, for CO2 (ISO-3 code, offline table)
eval_every_epoch = True  # val and test after every epoch (the paper); False: after the last one only (same P, cheaper)

# %%
# %matplotlib inline
import torch
from IPython.display import display

from pepr_utils import data as dr
from pepr_utils import train as ex
from pepr_utils.data import load_dataset
from pepr_utils.meter import Meter
from pepr_utils.models import create_model, plan_input, set_trainable
from pepr_utils.params import RunParams
from pepr_utils.records import now
from pepr_utils.train import inference_time_ms, plot_history

# %% [markdown]
# ## 1 · Parameters
# The run's identity (its `run_id` hashes these values). `device="auto"` becomes the device this machine
# has (a GPU where there is one), and the `run_id` hashes that device; the record keeps "auto" as
# `env.device_requested`. The meter is set up here too, so an unknown country fails before any data is read.

# %%
params = RunParams.of(model=model, dataset=dataset, size=size, fraction=fraction, epochs=epochs,
                      batch_size=batch_size, lr=lr, seed=seed, device=device, weights=weights, mode=mode).check()
requested_device = device  # as given: with "auto" the record says the device was chosen on this machine
meter = Meter(params.device, country_iso_code=country_iso_code)
started_at = now()
display(params.as_dict())

# %% [markdown]
# ## 2 · Data
# Loaded as `01_data_prep` loads it; images per class in each split and in the training fraction
# (the table `01_data_prep` shows), then the training split is cut to the fraction.

# %%
data = load_dataset(params.dataset, params.size, data_dir=data_dir)
display(dr.split_table(data, [params.fraction], params.seed))
data = data.with_train_fraction(params.fraction, params.seed)

# %% [markdown]
# ## 3 · Model
# The input plan (run at the data size, resize on the fly, or incompatible), then the model
# with its pretrained weights (the new head is seeded) and, for `mode="linear"`, a frozen backbone.
# Inputs are normalised with the weights' own mean and std (ImageNet weights), else 0.5 and 0.5.

# %%
plan = plan_input(params.model, params.size)
print(f"input plan: {plan.status}, runs at {plan.run_size} px" + (f" ({plan.reason})" if plan.reason else ""))
net = None  # the network; `model` stays the parameter (its name)
if plan.status != "incompatible":
    torch.manual_seed(params.seed)
    net, weights_info = create_model(params.model, data.n_classes, data.n_channels, weights=params.weights,
                                     weights_dir=weights_dir)
    frozen_norms = set_trainable(net, params.mode)  # "linear": only the head trains; these batch norms stay frozen
    mean, std = ex.input_normalisation(net, params.weights, data.n_channels)
    model_info = ex.model_summary(plan, net, data, weights_info)
    display(model_info)

# %% [markdown]
# ## 4 · Train
# The optimiser, the loss, the learning-rate schedule (none) and the augmentation (none) are the
# paper's; change them here. Batches come straight from uint8 tensors (reshuffled every epoch, seeded).
# The meter wraps all epochs: the training steps and the per-epoch evaluation the paper's protocol
# includes. Inference time is measured afterwards on the test set, in eval mode after a warm-up. An
# incompatible model skips this step.

# %%
history = []
if net is not None:
    torch_device = ex.place(net, params.device)
    torch.manual_seed(params.seed)
    optimizer = torch.optim.Adam(ex.trainable_parameters(net), lr=params.lr)
    scaler = ex.grad_scaler(torch_device)  # fp16 autocast (a GPU without bf16) scales the loss; else None
    scheduler = None  # the paper keeps lr fixed; e.g. torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, params.epochs)
    loss_fn = ex.classification_loss(data.info.task)  # cross-entropy (per label for multi-label tasks)
    augment = None  # the paper trains on the images as they are; e.g. a random flip: lambda x: x.flip(-1)
    inputs = dict(device=torch_device, run_size=plan.run_size, mean=mean, std=std)
    train_batches = ex.batches(data, "train", params.batch_size, shuffle=True, seed=params.seed, **inputs)
    val_batches = ex.batches(data, "val", ex.EVAL_BATCH_SIZE, **inputs)
    test_batches = ex.batches(data, "test", ex.EVAL_BATCH_SIZE, **inputs)
    with meter:
        for epoch in range(1, params.epochs + 1):
            trained = ex.train_one_epoch(net, train_batches, optimizer, loss_fn, device=torch_device,
                                         scaler=scaler, frozen_norms=frozen_norms, augment=augment,
                                         desc=f"epoch {epoch}/{params.epochs}")
            if scheduler is not None:
                scheduler.step()
            if eval_every_epoch or epoch == params.epochs:  # evaluation never changes the training
                val = ex.evaluate(net, val_batches, data.info.task, device=torch_device)
                test = ex.evaluate(net, test_batches, data.info.task, device=torch_device)
                history.append(ex.history_entry(epoch, trained, val, test))
            else:
                history.append(ex.history_entry(epoch, trained))
    infer_ms = inference_time_ms(net, ex.batches(data, "test", params.batch_size, **inputs), device=torch_device)
    display(ex.final_metrics(data, val, test))

# %% [markdown]
# ## 5 · Record
# `result.json` is written last and atomically: when it exists, the run is complete.

# %%
if net is None:  # incompatible: the record says why, and there is nothing else to save
    record = ex.make_record(params, data=data, plan=plan, started_at=started_at, device_requested=requested_device)
    ex.save_run(out_dir, record)
else:
    record = ex.make_record(params, data=data, plan=plan, started_at=started_at, model_info=model_info,
                            history=history, val=val, test=test, measurement=meter.measurement,
                            infer_ms_per_image=infer_ms, mean=mean, std=std, speed=ex.speed_options(torch_device),
                            device_requested=requested_device)
    ex.save_run(out_dir, record, model=net, data=data, test=test)
ex.record_summary(record)

# %% [markdown]
# ## Learning curves

# %%
fig = plot_history(history, title=f"{params.model} on {params.dataset} {params.size}px "
                                  f"({'imagenet' if params.weights == 'imagenet' else 'checkpoint'}, {params.mode})")
