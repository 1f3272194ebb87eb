"""Bench worker: PyTorch eager, the idiomatic fast loop: the data on the device once, a random permutation per
epoch, each batch indexed from it (no DataLoader, whose per-sample collation would be slower still).

Run by the driver as a fresh process: python -m experiments.bench.worker_torch --spec SPEC --out RESULT.json
"""

from __future__ import annotations

import time
from typing import Any

from experiments.bench import spec as spec_lib


def run_setting(torch, device, s: spec_lib.Setting, x, y, weights) -> dict[str, Any]:
  nn = torch.nn
  torch.manual_seed(0)
  sizes = [spec_lib.INPUTS, *s.hidden, spec_lib.CLASSES]
  layers: list[Any] = []
  for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
    layers.append(nn.Linear(fan_in, fan_out))
    if i < len(sizes) - 2:
      layers.append(nn.ReLU())
  model = nn.Sequential(*layers).to(device)
  with torch.no_grad():
    for linear, (kernel, bias) in zip([m for m in model if isinstance(m, nn.Linear)], weights):
      linear.weight.copy_(torch.from_numpy(kernel.T.copy()))  # torch keeps (out, in)
      linear.bias.copy_(torch.from_numpy(bias))
  optimizer = torch.optim.Adam(model.parameters(), lr=spec_lib.LEARNING_RATE, eps=spec_lib.ADAM_EPSILON)
  loss_fn = nn.CrossEntropyLoss()
  n, b = s.samples, s.batch_size
  x_t = torch.from_numpy(x[:n].copy()).to(device)
  y_t = torch.from_numpy(y[:n].astype("int64")).to(device)

  def epoch() -> tuple[float, float]:
    order = torch.randperm(n, device=device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, n, b):
      idx = order[start:start + b]
      xb, yb = x_t[idx], y_t[idx]
      optimizer.zero_grad(set_to_none=True)
      logits = model(xb)
      loss = loss_fn(logits, yb)
      loss.backward()
      optimizer.step()
      loss_sum += loss.detach() * len(idx)
      correct += (logits.detach().argmax(1) == yb).sum()
    return float(loss_sum) / n, float(correct) / n  # float() waits for the device

  t0 = time.perf_counter()
  c0 = time.process_time()
  loss, accuracy = epoch()
  first_seconds = time.perf_counter() - t0
  first_cpu_seconds = time.process_time() - c0
  seconds, cpu = [], time.process_time()
  for _ in range(s.epochs - 1):
    t0 = time.perf_counter()
    loss, accuracy = epoch()
    seconds.append(time.perf_counter() - t0)
  cpu = time.process_time() - cpu
  return spec_lib.setting_result(s, first_seconds=first_seconds, first_cpu_seconds=first_cpu_seconds,
                                 epoch_seconds=seconds, steady_cpu_seconds=cpu,
                                 loss=loss, accuracy=accuracy)


def run(work: spec_lib.Work) -> dict[str, Any]:
  import torch
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  torch.zeros(1, device=device).sum().item()  # start the backend outside every timed region
  settings = [run_setting(torch, device, s, work.x, work.y, work.weights[s.model]) for s in work.settings]
  return {"version": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
          "settings": settings}


if __name__ == "__main__":
  spec_lib.worker_main("torch", run)
