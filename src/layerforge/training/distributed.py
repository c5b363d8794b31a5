"""Data-parallel training with torch.distributed (``layerforge train SPEC --nproc N`` launches it on
one machine, ``training.launch``; ``torchrun ... -m layerforge train SPEC`` anywhere).

Every process prepares the same rows and walks the same shuffled order; each global batch of
``train.batch_size`` rows is cut into one contiguous part per process, and each process's loss
is weighted by its share of the batch, so that the gradients DistributedDataParallel averages are
those of the whole batch: the weights follow a single process's run. Gloo on CPUs (one intra-op
thread per process, or the cores shared out), NCCL on GPUs. Only the first process (rank 0)
writes the run directory; the others read its checkpoints when a run resumes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import SpecError

# the exit code of a process whose peer of data-parallel training went away (it says so in a line)
PEER_LOST = 3


def lost_peer(error: BaseException) -> bool:
    """Whether ``error`` is this process losing another process of its group (killed, or failed):
    the backend's error on a broken connection, in a process that trains with others."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch.distributed as dist

    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        words in text for words in ("Connection reset by peer", "Connection closed by peer", "gloo", "NCCL"))


@dataclass
class Distributed:
    """This process's place among the processes of one training run."""

    rank: int
    world: int
    device: torch.device

    @property
    def leader(self) -> bool:
        """Whether this process writes the run directory."""
        return self.rank == 0

    @classmethod
    def from_env(cls, device: torch.device) -> Distributed | None:
        """Join the process group ``torchrun`` describes (``WORLD_SIZE`` above 1), or None when
        this is the only process.

        Raises:
            SpecError: GPUs asked for with fewer GPUs than processes on this machine.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return None
        import torch.distributed as dist

        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        if device.type == "cuda":
            if torch.cuda.device_count() < local_world:
                raise SpecError(f"--nproc: {local_world} processes on this machine but {torch.cuda.device_count()} "
                                "GPU(s); start one process per GPU, or train.device: cpu")
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        else:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(rank, world, device)

    def parallel(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` wrapped so that a backward pass averages the gradients of all processes."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def total(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of ``tensor`` over all processes (every process gets it)."""
        import torch.distributed as dist

        summed = tensor.clone()
        dist.all_reduce(summed)
        return summed

    def shared(self, text: str) -> str:
        """The first process's ``text``, in every process (sent as bytes in a tensor)."""
        import torch.distributed as dist

        data = torch.tensor(list(text.encode("utf-8")) if self.leader else [], dtype=torch.uint8)
        size = torch.tensor([len(data)], dtype=torch.int64, device=self.device)  # NCCL sends GPU tensors only
        dist.broadcast(size, src=0)
        box = torch.zeros(int(size), dtype=torch.uint8, device=self.device)
        if self.leader:
            box.copy_(data)
        dist.broadcast(box, src=0)
        return bytes(box.cpu().tolist()).decode("utf-8")

    def wait(self) -> None:
        """Until every process reaches this point."""
        import torch.distributed as dist

        dist.barrier()


__all__ = ["Distributed"]
