"""Time and cost of getting data back from a cold storage class, shown before asking for it.

Why show it: a Deep Archive restore is billed per GB and per request and takes up to two days;
people should see that before they press enter, not on next month's invoice.  Prices come
from config (``restore.price_per_gb``, ``restore.price_per_1000_requests``,
``restore.egress_per_gb``) and are ESTIMATES: list prices change and sites negotiate their own.
Times are the provider's published targets for each tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import DEFAULTS, Config
from ..errors import UserError
from ..remotes.storage_classes import THAW_CLASSES
from ..util.units import format_size

TIERS = ("Bulk", "Standard")
# (fastest, slowest) hours (0 = "up to") until restored objects are readable, by class and tier.
HOURS: dict[str, dict[str, tuple[float, float]]] = {
    "DEEP_ARCHIVE": {"Bulk": (0.0, 48.0), "Standard": (0.0, 12.0)},
    "GLACIER": {"Bulk": (5.0, 12.0), "Standard": (3.0, 5.0)},
}
GB = 1000**3  # providers bill decimal gigabytes


def needs_thaw(storage_class: str | None) -> bool:
    return (storage_class or "").upper() in THAW_CLASSES


def check_tier(tier: str) -> str:
    """'bulk' -> 'Bulk'; anything but Bulk/Standard is a user error (Expedited is not offered
    for Deep Archive, and costs too much to be a default anywhere)."""
    for t in TIERS:
        if tier.lower() == t.lower():
            return t
    raise UserError(f"unknown restore tier {tier!r}: use Bulk or Standard")


def _price(config: Config, key: str, storage_class: str, tier: str) -> float:
    """Price from config, falling back to the built-in table for a class/tier not set."""
    table: dict[str, Any] = config.get(key) or {}
    default: dict[str, Any] = DEFAULTS[key][0]
    for source in (table, default):
        try:
            return float(source[storage_class][tier])
        except (KeyError, TypeError, ValueError):
            continue
    return 0.0


@dataclass(frozen=True)
class Estimate:
    """What a restore will take; ``thaw`` False means objects are readable at once."""

    storage_class: str
    tier: str
    days: int
    nbytes: int
    objects: int
    thaw: bool
    hours: tuple[float, float]
    retrieval_usd: float
    requests_usd: float
    egress_usd: float

    @property
    def total_usd(self) -> float:
        return self.retrieval_usd + self.requests_usd + self.egress_usd

    def lines(self) -> list[str]:
        """Human-readable summary for the CLI."""
        size = f"{format_size(self.nbytes)} in {self.objects} object(s)"
        if not self.thaw:
            return [f"to download: {size} ({self.storage_class or 'no storage class'}: "
                    "readable at once, no restore request needed)",
                    f"estimated transfer cost: ${self.egress_usd:,.2f} (egress estimate)"]
        lo, hi = self.hours
        wait = f"up to {hi:g}" if lo == 0 else f"{lo:g}-{hi:g}"
        return [
            f"to restore: {size} from {self.storage_class}, tier {self.tier}, "
            f"kept readable for {self.days} day(s)",
            f"expected wait: {wait} hours (provider targets) before the download starts",
            f"estimated cost: ${self.total_usd:,.2f} = retrieval ${self.retrieval_usd:,.2f} + "
            f"requests ${self.requests_usd:,.2f} + egress ${self.egress_usd:,.2f} "
            "(ESTIMATES from config restore.price_per_gb / price_per_1000_requests / "
            "egress_per_gb; your contract decides)",
        ]


def estimate(config: Config, storage_class: str, tier: str, days: int, nbytes: int,
             objects: int, thaw: bool | None = None) -> Estimate:
    """Build the estimate for ``objects`` objects totalling ``nbytes`` bytes."""
    sc = (storage_class or "").upper()
    tier = check_tier(tier)
    thaw = needs_thaw(sc) if thaw is None else thaw
    gb = nbytes / GB
    egress = gb * float(config.get("restore.egress_per_gb"))
    if not thaw:
        return Estimate(sc, tier, days, nbytes, objects, False, (0.0, 0.0), 0.0, 0.0, egress)
    return Estimate(
        sc, tier, days, nbytes, objects, True, HOURS.get(sc, HOURS["DEEP_ARCHIVE"])[tier],
        retrieval_usd=gb * _price(config, "restore.price_per_gb", sc, tier),
        requests_usd=objects / 1000 * _price(config, "restore.price_per_1000_requests", sc,
                                             tier),
        egress_usd=egress)
