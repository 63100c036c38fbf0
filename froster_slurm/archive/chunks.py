"""How large files travel to S3: part size, parallel parts, memory, and the PUTs they cost.

Why plan it: rclone's default 5 MiB parts make a 1 TB file ~190,700 PUT requests (about $9.5
at Deep Archive's $0.05 per 1,000; 64 MiB parts: ~$0.75), and near S3's 10,000-part limit
rclone raises the part size by itself, so memory grows with the file.  rclone holds
``transfers x chunk x concurrency`` bytes of parts in memory; that product is capped here by
the task's memory (half of the job's ``--mem``, else ``archive.upload_memory``),
lowering concurrency, then transfers, never the part size a file needs to fit in 10,000 parts.
A file over the backend's object limit (S3: 5 TiB) is refused before anything is uploaded.
Flags the site sets itself (``archive.rclone_flags``) come later on rclone's command line and
win.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PermanentError
from ..remotes.storage_classes import GLACIER_CLASSES
from ..scheduler import injob
from ..util.units import format_size

MiB = 1024**2
S3_MIN_PART = 5 * MiB
S3_MAX_PART = 5 * 1024 * MiB
S3_MAX_PARTS = 10_000
S3_UPLOAD_CUTOFF = 200 * MiB  # rclone's default: smaller files are one PUT
COLD_CHUNK = 64 * MiB  # Glacier classes: each PUT costs 10x STANDARD's; fewer, larger parts
WARM_CHUNK = 5 * MiB  # rclone's own default
DEFAULT_CONCURRENCY = 4  # rclone's --s3-upload-concurrency default
DEFAULT_MEMORY = 1024 * MiB  # without a job memory limit or archive.upload_memory


@dataclass(frozen=True)
class ChunkPlan:
    """The multipart settings for one upload and what they cost in memory."""

    chunk: int
    concurrency: int
    transfers: int

    @property
    def memory(self) -> int:
        """Bytes of parts rclone may hold at once."""
        return self.transfers * self.chunk * self.concurrency

    def flags(self) -> list[str]:
        return [f"--s3-chunk-size={self.chunk // MiB}Mi",
                f"--s3-upload-concurrency={self.concurrency}",
                f"--transfers={self.transfers}"]

    def requests(self, size: int) -> int:
        """PUT-class requests for one object: one PUT, or create + parts + complete."""
        if size < S3_UPLOAD_CUTOFF:
            return 1
        return -(-size // self.chunk) + 2

    def describe(self) -> str:
        return (f"{format_size(self.chunk)} parts, {self.concurrency} at once per file, "
                f"{self.transfers} files at once: up to {format_size(self.memory)} of buffers")


def default_chunk(storage_class: str) -> int:
    return COLD_CHUNK if storage_class in GLACIER_CLASSES else WARM_CHUNK


def needed_chunk(size: int) -> int:
    """The smallest part size (whole MiB) that fits ``size`` in 10,000 parts."""
    need = -(-size // S3_MAX_PARTS)
    return max(S3_MIN_PART, -(-need // MiB) * MiB)


def memory_budget(configured: int = 0, env: dict[str, str] | None = None) -> int:
    """Bytes rclone's part buffers may take: ``archive.upload_memory`` when set, else half of
    the job's memory (``--mem``, as ``injob.memory_mb`` reads it), else 1 GiB."""
    if configured > 0:
        return configured
    mem = injob.memory_mb(env)
    if mem:
        return mem * MiB // 2
    return DEFAULT_MEMORY


def plan(largest: int, storage_class: str, transfers: int, budget: int,
         concurrency: int = DEFAULT_CONCURRENCY, max_object: int | None = None) -> ChunkPlan:
    """The part size for ``storage_class`` (at least what the largest file needs), with
    concurrency and transfers lowered until the buffers fit ``budget``."""
    if max_object is not None and largest > max_object:
        raise PermanentError(f"a file of {format_size(largest)} is over the remote's object "
                             f"limit of {format_size(max_object)}")
    chunk = min(S3_MAX_PART, max(default_chunk(storage_class), needed_chunk(largest)))
    need = needed_chunk(largest)
    concurrency, transfers = max(1, concurrency), max(1, transfers)
    while transfers * chunk * concurrency > budget:
        if concurrency > 1:
            concurrency -= 1
        elif transfers > 1:
            transfers -= 1
        elif chunk > need:
            chunk = max(need, chunk // 2 // MiB * MiB)
        else:
            raise PermanentError(
                f"a file of {format_size(largest)} needs parts of at least {format_size(need)}"
                f" (S3 allows 10,000 parts) but the task may use only {format_size(budget)} "
                "for upload buffers: give the archive stage more memory (slurm.archive.mem) "
                "or raise archive.upload_memory")
    return ChunkPlan(chunk, concurrency, transfers)
