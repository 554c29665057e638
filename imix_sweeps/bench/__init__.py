"""Side-by-side benchmark of the device data path and the reference per-sample pipeline.

    python -m imix_sweeps.bench [--data DIR] [--device auto|cpu|cuda] [--batch N] [--steps N]
                                [--workers N] [--aug-batches N] [--knn-train N] [--knn-test N]
                                [--aug-seconds S] [--rounds N] [--compile] [--imagenet DIR]
                                [--json PATH]

In one process, on the device it runs on, it measures

1. augmented two-view pairs per second of the CIFAR i-Mix augmentation (RandomResizedCrop(32,
   0.2-1), ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8, grayscale p 0.2, flip, normalisation):
   - ``device``: the dataset resident on the device as uint8, batches augmented there with
     per-sample parameters (``imix_sweeps.augment.contrastive_views`` through the project's
     ``InMemoryDomain``); on a CPU, where every worker computes on one core, it runs in
     ``--workers`` threads (``train.augment_threads``), and is also timed in-process on one
     thread and in ``--workers`` DataLoader worker processes;
   - ``reference``: torchvision transforms on PIL images in ``--workers`` DataLoader workers
     (the official i-Mix data path), batches copied to the device;
   on a CPU the paths take turns for ``--rounds`` rounds, each timed in steady state, and the
   medians are compared;
2. the training step of ResNet-18 (CIFAR stem) N-pair + i-Mix mixup, built with the project's
   builders and run by ``imix_sweeps.train.train_step`` (bf16 autocast, channels_last and fused
   SGD on CUDA) fed by each data path: step time, images/s, peak memory
   (``torch.cuda.max_memory_allocated`` on a GPU; peak RSS of the process, plus the loader
   workers' RSS, on a CPU), and the same step on resident pre-augmented batches (pure compute:
   the GPU-busy estimate is compute time / step time);
3. the kNN monitor (``imix_sweeps.train.knn_monitor``: features of the train and test splits,
   weighted kNN k 200) on ``--knn-train`` / ``--knn-test`` images, scaled to 50,000 / 10,000;
4. the projected CIFAR-10 epoch time (50,000 images: ``50000 // batch`` steps + the kNN
   monitor) of each path, checked against the targets;
5. with ``--imagenet DIR``: pairs/s of the streaming ImageNet domain
   (``imix_sweeps.data.images.imagenet``), ``device`` (workers crop, the rest batched on the
   device) against ``reference`` (all of it on PIL images in the workers), 224 px.

``--data DIR``: a CIFAR-10 python folder (``DIR/cifar-10-batches-py`` or the folder itself),
read with ``torchvision.datasets.CIFAR10(download=False)``. Without it a synthetic CIFAR-10 is
written in exactly that format (``data_batch_1..5``, ``test_batch``, ``batches.meta`` pickles)
to a temporary folder and read back the same way (the MD5 check of the official files is
skipped for it), so both paths start from the same files.

The package follows those phases: ``cifar`` (the files), ``paths`` (the two data paths),
``measure`` (timing and the training step), ``report`` (the report and its targets) and
``cli`` (``main``, one function per phase). It uses only the library's public API.
"""

from imix_sweeps.bench.cifar import (
    CIFAR_CLASSES,
    CIFAR_FOLDER,
    CIFAR_MEAN,
    CIFAR_STD,
    EPOCH_IMAGES,
    TEST_IMAGES,
    cifar_root,
    load_cifar10,
    write_synthetic_cifar10,
)
from imix_sweeps.bench.cli import Setup, main, parse_args
from imix_sweeps.bench.measure import (
    StepResult,
    Trainer,
    build_model,
    resident,
    steady_pairs_per_s,
    stream_pairs_per_s,
    time_batches,
    time_trainers,
)
from imix_sweeps.bench.paths import (
    BatchedViews,
    TwoViews,
    batched_views_loader,
    device_batches,
    device_domain,
    loop,
    reference_batches,
    reference_loader,
    reference_transform,
)
from imix_sweeps.bench.report import (
    TARGET_DATA_SPEEDUP,
    TARGET_EPOCH_S,
    TARGET_EPOCH_SPEEDUP,
    TARGET_GPU_BUSY,
    TARGET_PEAK_GB,
    Report,
    check_targets,
    render,
)

__all__ = [
    "CIFAR_CLASSES",
    "CIFAR_FOLDER",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "EPOCH_IMAGES",
    "TARGET_DATA_SPEEDUP",
    "TARGET_EPOCH_S",
    "TARGET_EPOCH_SPEEDUP",
    "TARGET_GPU_BUSY",
    "TARGET_PEAK_GB",
    "TEST_IMAGES",
    "BatchedViews",
    "Report",
    "Setup",
    "StepResult",
    "Trainer",
    "TwoViews",
    "batched_views_loader",
    "build_model",
    "check_targets",
    "cifar_root",
    "device_batches",
    "device_domain",
    "load_cifar10",
    "loop",
    "main",
    "parse_args",
    "reference_batches",
    "reference_loader",
    "reference_transform",
    "render",
    "resident",
    "steady_pairs_per_s",
    "stream_pairs_per_s",
    "time_batches",
    "time_trainers",
    "write_synthetic_cifar10",
]
