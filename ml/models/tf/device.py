"""Choose the device at run time: one code path for CPU and GPU.

On GPU: ``mixed_float16`` and a ``tf.distribute`` strategy (Mirrored for several GPUs, OneDevice for
one). On CPU: float32, the default strategy, seeded and deterministic ops, few threads (the CPU is
shared). The returned :class:`DeviceInfo` is what a training run logs to MLflow.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

#: Threads TensorFlow may use on CPU (the host is shared; more threads only add contention).
DEFAULT_CPU_THREADS = 2


@dataclass
class DeviceInfo:
    """What the models run on. ``strategy`` is the live ``tf.distribute.Strategy`` (not logged)."""

    kind: str  # "gpu" | "cpu"
    name: str
    n_devices: int
    precision: str  # keras dtype policy name
    strategy_name: str
    deterministic: bool
    seed: int
    threads: int | None = None
    strategy: Any = field(default=None, repr=False, compare=False)

    def as_params(self) -> dict[str, str]:
        """Flat string dict for ``mlflow.log_params`` (prefixed ``device_``)."""
        return {
            "device_kind": self.kind,
            "device_name": self.name,
            "device_count": str(self.n_devices),
            "device_precision": self.precision,
            "device_strategy": self.strategy_name,
            "device_deterministic": str(self.deterministic),
            "device_seed": str(self.seed),
            "device_threads": str(self.threads),
        }


_CURRENT: DeviceInfo | None = None


def _limit_cpu_threads(threads: int) -> int | None:
    """Cap TF's thread pools; only possible before the TF runtime starts (else keep what is set)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(max(1, threads // 2))
        return threads
    except RuntimeError:  # runtime already initialised by an earlier call in this process
        return tf.config.threading.get_intra_op_parallelism_threads() or None


def configure_device(
    seed: int = 42, *, force_cpu: bool = False, cpu_threads: int | None = None
) -> DeviceInfo:
    """Seed everything and set precision + distribution strategy for the visible hardware.

    Idempotent within a process (TensorFlow's device state is process-wide): a second call re-seeds
    and returns the same strategy. ``force_cpu`` (or ``RECSYS_TF_FORCE_CPU=1``) ignores GPUs.
    """
    global _CURRENT
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    force_cpu = force_cpu or os.environ.get("RECSYS_TF_FORCE_CPU", "") == "1"
    gpus = [] if force_cpu else tf.config.list_physical_devices("GPU")
    if _CURRENT is not None and _CURRENT.kind == ("gpu" if gpus else "cpu"):
        _CURRENT.seed = seed
        return _CURRENT

    if gpus:
        for g in gpus:
            with contextlib.suppress(RuntimeError):  # already initialised: growth cannot change any more
                tf.config.experimental.set_memory_growth(g, True)
        keras.mixed_precision.set_global_policy("mixed_float16")
        if len(gpus) > 1:
            strategy = tf.distribute.MirroredStrategy()
            strategy_name = "MirroredStrategy"
        else:
            strategy = tf.distribute.OneDeviceStrategy("/gpu:0")
            strategy_name = "OneDeviceStrategy"
        details = tf.config.experimental.get_device_details(gpus[0])
        info = DeviceInfo(
            kind="gpu",
            name=str(details.get("device_name", gpus[0].name)),
            n_devices=len(gpus),
            precision="mixed_float16",
            strategy_name=strategy_name,
            deterministic=False,
            seed=seed,
            strategy=strategy,
        )
    else:
        if force_cpu:
            with contextlib.suppress(RuntimeError):  # devices already initialised
                tf.config.set_visible_devices([], "GPU")
        threads = _limit_cpu_threads(
            cpu_threads or int(os.environ.get("RECSYS_TF_THREADS", DEFAULT_CPU_THREADS))
        )
        keras.mixed_precision.set_global_policy("float32")
        tf.config.experimental.enable_op_determinism()
        info = DeviceInfo(
            kind="cpu",
            name="cpu",
            n_devices=1,
            precision="float32",
            strategy_name="default",
            deterministic=True,
            seed=seed,
            threads=threads,
            strategy=tf.distribute.get_strategy(),
        )
    _CURRENT = info
    return info
