"""Matplotlib figures written as PNG files (headless: the Agg backend)."""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save(fig, path: str) -> str:
  """Writes a figure as PNG atomically (temporary file, then rename) and closes it."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp.png"
  fig.savefig(tmp, dpi=110, bbox_inches="tight")
  plt.close(fig)
  os.replace(tmp, path)  # never leave a half-written PNG behind
  return path


def history_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], key: str, path: str,
                   *, title: str | None = None) -> str:
  """One line per run for `key` (solid) and `val_key` (dashed) against the epoch."""
  fig, ax = plt.subplots(figsize=(6, 4))
  for i, (name, hist) in enumerate(histories.items()):
    color = f"C{i}"
    if key in hist:
      ax.plot(range(1, len(hist[key]) + 1), hist[key], color=color, label=f"{name} train")
    if f"val_{key}" in hist:
      ax.plot(range(1, len(hist[f"val_{key}"]) + 1), hist[f"val_{key}"], color=color, linestyle="--",
              label=f"{name} validation")
  ax.set_xlabel("epoch")
  ax.set_ylabel(key)
  ax.set_title(title or key)
  ax.grid(alpha=0.3)
  ax.legend()
  return save(fig, path)


def confusion_matrix(cm: np.ndarray, path: str, *, class_names: Sequence[str] | None = None,
                     title: str = "confusion matrix") -> str:
  """Counts with rows = true class, columns = predicted class."""
  cm = np.asarray(cm)
  n = cm.shape[0]
  names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
  fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
  ax.imshow(cm, cmap="Blues")
  threshold = cm.max() / 2 if cm.size else 0
  for i in range(n):
    for j in range(n):
      ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
              color="white" if cm[i, j] > threshold else "black")
  ax.set_xticks(range(n), names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right")
  ax.set_yticks(range(n), names)
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  ax.set_title(title)
  return save(fig, path)


def image_grid(images: np.ndarray, labels: Sequence[int], path: str, *, true_labels: Sequence[int] | None = None,
               class_names: Sequence[str] | None = None, title: str = "", cols: int = 8) -> str:
  """Images in a grid, each titled with its predicted label (and the true one, in red, when they differ)."""
  images = np.asarray(images)
  n = len(images)
  rows = max(1, -(-n // cols))
  fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.6 * rows + 0.4), squeeze=False)
  name = (lambda c: class_names[c]) if class_names is not None else str
  for k, ax in enumerate(axes.flat):
    ax.axis("off")
    if k >= n:
      continue
    ax.imshow(images[k], cmap="gray_r")
    if true_labels is not None and true_labels[k] != labels[k]:
      ax.set_title(f"{name(labels[k])} (true {name(true_labels[k])})", fontsize=7, color="red")
    else:
      ax.set_title(f"{name(labels[k])}", fontsize=8)
  if title:
    fig.suptitle(title)
  return save(fig, path)
