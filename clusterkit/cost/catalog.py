"""The price catalog: dated, sourced prices and exchange rates, kept as data.

`clusterkit/cost/prices/*.toml` holds `[[price]]` entries (servers, GPUs, network,
cloud rental), `[[rate]]` exchange rates into the catalog's base currency and
`[[gpu_model]]` defaults (typical mean power, provisioned kW per node, published
training throughput, GEMM and NCCL figures). Every price has an amount, a
currency, a date, a source and a `url` someone can open; one that is not current
says `historical = true`. docs/cost-sources.md lists them. A cost config may add
its own files (`catalog = ["my-prices.toml"]`); a later entry with the same id
replaces an earlier one.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from clusterkit.errors import ConfigError

PRICES_DIR = Path(__file__).resolve().parent / "prices"
KINDS = ("server", "gpu", "network", "rental")
TERMS = ("on-demand", "1-year", "3-year")


@dataclass(frozen=True)
class Price:
    id: str
    kind: str
    gpu: str
    amount: float
    currency: str
    unit: str
    date: dt.date
    source: str
    term: str = ""          # rental only: on-demand | 1-year | 3-year
    note: str = ""
    url: str = ""           # where to check it
    historical: bool = False   # kept for reference; "catalog" rental options leave it out

    @property
    def cited(self) -> str:
        """Source and address, as the report shows them."""
        return f"{self.source} <{self.url}>" if self.url else self.source

    @property
    def committed(self) -> bool:
        """Reserved capacity is paid for every hour, used or not."""
        return self.term in ("1-year", "3-year")


@dataclass(frozen=True)
class Rate:
    currency: str
    per_unit: float         # units of the base currency for 1 unit of `currency`
    date: dt.date
    source: str


@dataclass(frozen=True)
class GpuModel:
    gpu: str
    node_gpu_power_w: float
    provisioned_kw_per_node: float
    source: str
    training_throughput: float = 1.0      # per GPU, relative to A100 = 1 (published)
    throughput_source: str = ""
    gemm_tflops: float = 0.0              # dense BF16 peak per GPU (published)
    nccl_busbw_gbps: float = 0.0          # single-node all-reduce bus bandwidth (published)
    figures_source: str = ""


@dataclass
class Catalog:
    base: str = "CNY"
    prices: dict[str, Price] = field(default_factory=dict)
    rates: dict[str, Rate] = field(default_factory=dict)
    models: dict[str, GpuModel] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def currencies(self) -> list[str]:
        return sorted({self.base, *self.rates})

    def knows(self, currency: str) -> bool:
        return currency == self.base or currency in self.rates

    def factor(self, src: str, dst: str) -> float:
        """Multiply an amount in `src` by this to get `dst`."""
        return self._to_base(src) / self._to_base(dst)

    def rates_used(self, src: str, dst: str) -> list[Rate]:
        return [self.rates[c] for c in (src, dst) if c != self.base and c in self.rates and src != dst]

    def _to_base(self, cur: str) -> float:
        if cur == self.base:
            return 1.0
        if cur not in self.rates:
            raise ConfigError(f"unknown currency '{cur}' (known: {', '.join(self.currencies)})")
        return self.rates[cur].per_unit

    def rentals(self, gpu: str) -> list[Price]:
        return [p for p in self.prices.values() if p.kind == "rental" and p.gpu == gpu]

    def server(self, gpu: str) -> Price | None:
        return next((p for p in self.prices.values() if p.kind == "server" and p.gpu == gpu), None)


def _date(v: Any, where: str) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            pass
    raise ConfigError(f"{where}: date must be YYYY-MM-DD, got {v!r}")


def _need(entry: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if key not in entry:
        raise ConfigError(f"{where}: missing field '{key}'")
    v = entry[key]
    if isinstance(v, bool) or not isinstance(v, kind):
        raise ConfigError(f"{where}.{key}: wrong type {type(v).__name__}")
    return v


def _positive(v: float, where: str) -> float:
    if v < 0:
        raise ConfigError(f"{where}: must be >= 0, got {v}")
    return float(v)


def _opt(entry: dict[str, Any], key: str, where: str, default: float) -> float:
    """An optional non-negative number."""
    return _positive(_need(entry, key, where, (int, float)), f"{where}.{key}") if key in entry else default


def load_catalog(extra: list[Path] | None = None, base_dir: Path = PRICES_DIR) -> Catalog:
    cat = Catalog()
    paths = sorted(base_dir.glob("*.toml")) + list(extra or [])
    raw: list[tuple[Path, dict[str, Any]]] = []
    for path in paths:
        try:
            raw.append((path, tomllib.loads(Path(path).read_text())))
        except OSError as e:
            raise ConfigError(f"{path}: cannot read price catalog: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML: {e}") from None
    for path, doc in raw:
        cat.files.append(str(path))
        if "base" in doc:
            cat.base = str(doc["base"])
        for i, r in enumerate(doc.get("rate", [])):
            where = f"{path.name} rate[{i}]"
            cur = _need(r, "currency", where, str)
            cat.rates[cur] = Rate(cur, _positive(_need(r, "per_unit", where, (int, float)), f"{where}.per_unit"),
                                  _date(_need(r, "date", where, (str, dt.date)), f"{where}.date"),
                                  _need(r, "source", where, str))
    for path, doc in raw:
        for i, g in enumerate(doc.get("gpu_model", [])):
            where = f"{path.name} gpu_model[{i}]"
            name = _need(g, "gpu", where, str)
            cat.models[name] = GpuModel(name, float(_need(g, "node_gpu_power_w", where, (int, float))),
                                        float(_need(g, "provisioned_kw_per_node", where, (int, float))),
                                        _need(g, "source", where, str),
                                        _opt(g, "training_throughput", where, 1.0) or 1.0,
                                        str(g.get("throughput_source", "")),
                                        _opt(g, "gemm_tflops", where, 0.0), _opt(g, "nccl_busbw_gbps", where, 0.0),
                                        str(g.get("figures_source", "")))
        for i, p in enumerate(doc.get("price", [])):
            where = f"{path.name} price[{i}]"
            pid = _need(p, "id", where, str)
            where = f"{path.name} price '{pid}'"
            kind = _need(p, "kind", where, str)
            if kind not in KINDS:
                raise ConfigError(f"{where}.kind: must be one of {', '.join(KINDS)}, got {kind!r}")
            term = p.get("term", "")
            if kind == "rental" and term not in TERMS:
                raise ConfigError(f"{where}.term: must be one of {', '.join(TERMS)}, got {term!r}")
            cur = _need(p, "currency", where, str)
            if not cat.knows(cur):
                raise ConfigError(f"{where}.currency: unknown currency '{cur}' (known: {', '.join(cat.currencies)})")
            cat.prices[pid] = Price(
                id=pid, kind=kind, gpu=_need(p, "gpu", where, str),
                amount=_positive(_need(p, "amount", where, (int, float)), f"{where}.amount"),
                currency=cur, unit=_need(p, "unit", where, str),
                date=_date(_need(p, "date", where, (str, dt.date)), f"{where}.date"),
                source=_need(p, "source", where, str), term=term, note=str(p.get("note", "")),
                url=str(p.get("url", "")), historical=bool(p.get("historical", False)))
    return cat
