"""The cost config (cost.toml): validated, with every value's provenance.

A money value may be written three ways, and the report shows which was used:
  server_price = 2000000                                   # the config's currency, assumed
  server_price = { amount = 30000, currency = "USD", date = 2025-01-10, source = "quote 1234" }
  server_price = "catalog:server-8x-h100-sxm"              # dated, sourced catalog entry
Plain numbers are in the config's `currency`; the report may be in another one (`report_currency`,
the CLI's --currency): every amount goes through the dated exchange-rate table.
Every error is a ConfigError whose one-line message names the field.
"""

from __future__ import annotations

import datetime as dt
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from clusterkit.cost.catalog import Catalog, Price, Rate, _date, load_catalog
from clusterkit.cost.finance import DEPRECIATION_METHODS
from clusterkit.errors import ConfigError

EXAMPLE_CONFIG = Path(__file__).resolve().parent / "example.toml"

# Provenance of an input, as the report shows it.
ASSUMED, CATALOG, MEASURED, DEFAULT = "assumed", "catalog", "measured", "default"


@dataclass(frozen=True)
class Input:
    key: str                 # "capex.server_price"
    value: float             # in the report currency for money
    unit: str
    basis: str               # assumed | catalog | measured | default
    source: str = ""
    date: dt.date | None = None
    original: str = ""       # "USD 12.29 x 7.1884 CNY/USD" when converted
    orig_amount: float | None = None   # the amount in its own currency, when converted
    orig_currency: str = ""
    historical: bool = False           # a catalog price kept for reference, not current


@dataclass(frozen=True)
class Rental:
    id: str
    term: str                # on-demand | 1-year | 3-year
    price: Input             # per GPU-hour, report currency, at year 1
    trajectory: Input        # annual change of the price (-0.3 = falls 30 % a year)
    availability: Input      # the provider's availability: what reserved capacity delivers

    @property
    def committed(self) -> bool:
        return self.term in ("1-year", "3-year")

    @property
    def follows_default_trajectory(self) -> bool:
        """True when the option has no trajectory of its own: trajectory.rental_per_year applies."""
        return self.trajectory.key == "trajectory.rental_per_year"


@dataclass
class CostConfig:
    currency: str            # the report currency: every money value is in it
    as_of: dt.date
    max_price_age_days: int
    gpu_model: str
    inputs: dict[str, Input]
    rentals: list[Rental]
    reference: str
    catalog: Catalog
    options: dict[str, str] = field(default_factory=dict)     # text inputs: finance.depreciation
    prometheus: dict[str, str] = field(default_factory=dict)
    path: str = ""
    is_example: bool = False
    rates_used: list[Rate] = field(default_factory=list)
    scenarios: list[tuple[str, "CostConfig"]] = field(default_factory=list)   # [[scenario]] name, whole config
    config_currency: str = ""  # what plain numbers in the file are in

    def v(self, key: str) -> float:
        return self.inputs[key].value

    def with_values(self, **changes: float) -> "CostConfig":
        """A copy with some inputs replaced (keys use '__' for '.': capex__server_price=...)."""
        new = dict(self.inputs)
        for k, val in changes.items():
            key = k.replace("__", ".")
            new[key] = replace(new[key], value=float(val))
        return replace(self, inputs=new)

    def ref_rental(self) -> Rental:
        return next(r for r in self.rentals if r.id == self.reference)

    def trajectory(self, r: Rental) -> float:
        """The option's annual price change: its own, or trajectory.rental_per_year."""
        return self.v("trajectory.rental_per_year") if r.follows_default_trajectory else r.trajectory.value

    def stale(self) -> list[str]:
        """Warnings for historical prices and for prices and rates older than max_price_age_days."""
        out: list[str] = []
        seen: set[str] = set()
        dated = [(i.key, i.date, i.source, i.historical) for i in self.inputs.values()
                 if i.date and i.basis != MEASURED]
        dated += [(f"rental {r.id}", r.price.date, r.price.source, r.price.historical) for r in self.rentals
                  if r.price.date]
        dated += [(f"fx {r.currency}", r.date, r.source, False) for r in self.rates_used]
        for what, when, src, historical in dated:
            age = (self.as_of - when).days
            if what in seen:
                continue
            if historical:
                seen.add(what)
                out.append(f"{what}: HISTORICAL price dated {when} ({age} days old), not a current one: {src}")
            elif age > self.max_price_age_days:
                seen.add(what)
                out.append(f"{what}: price dated {when} is {age} days old (limit {self.max_price_age_days}): {src}")
        return out


# ---- schema: section -> key -> (kind, required, default, unit) ----
# kinds: money, count (int >= 1), pos (number >= 0), frac (0..1), util (0 < x <= 1), change (-1 < x <= 1),
# years (whole 1..30), tax, pue, text choices
_SCHEMA: dict[str, dict[str, tuple[str, bool, Any, str]]] = {
    "cluster": {"gpu_model": ("str", True, None, ""), "nodes": ("count", True, None, "nodes"),
                "gpus_per_node": ("count", True, None, "GPUs")},
    "capex": {"server_price": ("money", True, None, "per node"), "network_per_node": ("money", False, 0, "per node"),
              "storage": ("money", False, 0, "total"), "installation": ("money", False, 0, "total"),
              "spares_fraction": ("frac", False, 0.0, "of server and network capex")},
    "finance": {"cost_of_capital": ("frac", True, None, "per year"), "life_years": ("years", True, None, "years"),
                "residual_fraction": ("frac", False, 0.0, "of capex"), "tax_rate": ("tax", False, 0.0, ""),
                "depreciation": ("method", False, "straight-line", ""),
                "declining_balance_factor": ("dbf", False, 2.0, "x straight-line rate")},
    "power": {"gpu_power_w": ("pos", False, None, "W per node"), "non_gpu_overhead_w": ("pos", False, 1500.0, "W per node"),
              "pue": ("pue", True, None, ""), "price_per_kwh": ("money", True, None, "per kWh")},
    "colocation": {"per_kw_month": ("money", False, 0, "per kW-month"),
                   "provisioned_kw_per_node": ("pos", False, None, "kW per node"),
                   "per_rack_month": ("money", False, 0, "per rack-month"), "racks": ("pos", False, 0.0, "racks")},
    "operations": {"staff_fte": ("pos", False, 0.0, "FTE (fixed)"),
                   "staff_fte_per_node": ("pos", False, 0.0, "FTE per node"),
                   "staff_cost_per_fte_year": ("money", False, 0, "per FTE-year"),
                   "support_fraction_per_year": ("frac", False, 0.0, "of server capex per year"),
                   "failures_per_node_year": ("pos", False, 0.0, "per node-year"),
                   "cost_per_failure": ("money", False, 0, "per failure")},
    "utilization": {"scheduler": ("util", True, None, "of GPU-hours"), "availability": ("util", True, None, "of node-hours")},
    "trajectory": {"rental_per_year": ("change", False, 0.0, "per year"), "power_per_year": ("change", False, 0.0, "per year"),
                   "staff_per_year": ("change", False, 0.0, "per year"),
                   "colocation_per_year": ("change", False, 0.0, "per year"),
                   "fx_per_year": ("change", False, 0.0, "per year")},
    "rental_side": {"storage_tb": ("pos", False, 0.0, "TB"), "storage_per_tb_month": ("money", False, 0, "per TB-month"),
                    "egress_tb_per_month": ("pos", False, 0.0, "TB per month"),
                    "egress_per_tb": ("money", False, 0, "per TB"), "staff_fte": ("pos", False, 0.0, "FTE")},
    "hybrid": {"peak_share": ("frac", False, 0.2, "of useful GPU-hours"),
               "base_utilization": ("util", False, 0.9, "of GPU-hours")},
    "generation": {"compute_share": ("frac", False, 0.8, "of a training step")},
    "sensitivity": {"swing": ("frac", False, 0.2, "relative"), "threshold": ("frac", False, 0.01, "of the NPV")},
}


def input_kind(key: str) -> str:
    """The schema kind of "section.key" (money, frac, util, change, ...), "" when not a schema key."""
    section, _, k = key.partition(".")
    return _SCHEMA.get(section, {}).get(k, ("",))[0]

_TOP = {"currency", "as_of", "max_price_age_days", "catalog", "description", "rental", "fx", "prometheus", "scenario",
        *_SCHEMA}
_RENTAL_KEYS = {"options", "reference", "availability", "trajectories", "custom", "hybrid_burst_share"}
_PROM_KEYS = {"power_query", "availability_query", "period_days"}
DEFAULT_PROMETHEUS = {
    # clusterkit's exporter: each GPU host's mean total GPU power over the period (one series per host);
    # {period} becomes the [prometheus] period_days in seconds.
    "power_query": "avg_over_time(clusterkit_gpu_power_draw_watts[{period}])",
    # 1 while a GPU host's latest results pass or warn, 0 otherwise; one series per host. GPU hosts are those
    # reporting GPU power. Read as a range over the period: missing samples count as unreachable time.
    "availability_query": '(max by (host) (clusterkit_node_status{status=~"pass|warn"}) '
                          'or on(host) (0 * max by (host) (clusterkit_node_status))) '
                          'and on(host) max by (host) (clusterkit_gpu_power_draw_watts)',
    "period_days": "30",
}


def _num(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{where}: must be a number, got {v!r}")
    if v != v or v in (float("inf"), float("-inf")):
        raise ConfigError(f"{where}: must be a finite number, got {v!r}")
    return float(v)


_CHECKS: dict[str, Callable[[float], str | None]] = {
    "count": lambda x: None if x >= 1 and x == int(x) else "must be a whole number >= 1",
    "pos": lambda x: None if x >= 0 else "must be >= 0",
    "money": lambda x: None if x >= 0 else "must be >= 0 (a price cannot be negative)",
    "frac": lambda x: None if 0 <= x <= 1 else "must be between 0 and 1",
    "util": lambda x: None if 0 < x <= 1 else "must be above 0 and at most 1",
    "change": lambda x: None if -1 < x <= 1 else "must be an annual change above -1 and at most 1 (-0.3 = falls 30 % a year)",
    "tax": lambda x: None if 0 <= x < 1 else "must be at least 0 and below 1",
    "years": lambda x: None if 1 <= x <= 30 and x == int(x) else "must be a whole number of years from 1 to 30",
    "pue": lambda x: None if 1 <= x <= 5 else "must be between 1 and 5",
    "dbf": lambda x: None if 1 <= x <= 3 else "must be between 1 and 3 (2 = double-declining balance)",
}


class _Reader:
    """Reads money values into the report currency, remembering the exchange rates used."""

    def __init__(self, catalog: Catalog, config_currency: str, report_currency: str, where: str):
        self.catalog, self.config_currency, self.currency, self.where = catalog, config_currency, report_currency, where
        self.rates: dict[str, Rate] = {}

    def convert(self, amount: float, cur: str, key: str) -> tuple[float, str]:
        if not self.catalog.knows(cur):
            raise ConfigError(f"{self.where}{key}.currency: unknown currency '{cur}' "
                              f"(known: {', '.join(self.catalog.currencies)})")
        if cur == self.currency:
            return amount, ""
        for r in self.catalog.rates_used(cur, self.currency):
            self.rates[r.currency] = r
        f = self.catalog.factor(cur, self.currency)
        return amount * f, f"{cur} {amount:,.10g} x {f:.6g} {self.currency}/{cur}"

    def money(self, v: Any, key: str, unit: str) -> Input:
        w = f"{self.where}{key}"
        if isinstance(v, str) and v.startswith("catalog:"):
            pid = v[len("catalog:"):]
            p = self.catalog.prices.get(pid)
            if p is None:
                raise ConfigError(f"{w}: unknown catalog price '{pid}' (known: {', '.join(sorted(self.catalog.prices))})")
            return self.price(p, key, unit)
        if isinstance(v, dict):
            extra = set(v) - {"amount", "currency", "date", "source"}
            if extra:
                raise ConfigError(f"{w}.{sorted(extra)[0]}: unknown field (use amount, currency, date, source)")
            if "amount" not in v:
                raise ConfigError(f"{w}.amount: missing field")
            amount = _num(v["amount"], f"{w}.amount")
            if amount < 0:
                raise ConfigError(f"{w}.amount: must be >= 0 (a price cannot be negative), got {amount:g}")
            cur = v.get("currency", self.config_currency)
            if not isinstance(cur, str):
                raise ConfigError(f"{w}.currency: must be a currency code like 'USD'")
            value, orig = self.convert(amount, cur, key)
            date = _date(v["date"], f"{w}.date") if "date" in v else None
            return Input(key, value, f"{self.currency} {unit}", ASSUMED, str(v.get("source", "cost config")), date, orig,
                         amount if orig else None, cur if orig else "")
        x = _num(v, w)
        if x < 0:
            raise ConfigError(f"{w}: must be >= 0 (a price cannot be negative), got {x:g}")
        value, orig = self.convert(x, self.config_currency, key)
        return Input(key, value, f"{self.currency} {unit}", ASSUMED, "cost config", None, orig,
                     x if orig else None, self.config_currency if orig else "")

    def price(self, p: Price, key: str, unit: str) -> Input:
        value, orig = self.convert(p.amount, p.currency, key)
        return Input(key, value, f"{self.currency} {unit}", CATALOG, p.cited, p.date, orig,
                     p.amount if orig else None, p.currency if orig else "", p.historical)


def _check_keys(doc: dict[str, Any], allowed: set[str], where: str, required: tuple[str, ...] = ()) -> None:
    """Unknown fields and missing required ones are config errors naming the field."""
    for k in doc:
        if k not in allowed:
            raise ConfigError(f"{where}{k}: unknown field (allowed: {', '.join(sorted(allowed))})")
    for k in required:
        if k not in doc:
            raise ConfigError(f"{where}{k}: missing field")


def _read_fx(doc: dict[str, Any], catalog: Catalog, where: str) -> None:
    fx = doc.get("fx", {})
    if not isinstance(fx, dict):
        raise ConfigError(f"{where}fx: must be a table of [fx.<CURRENCY>] rates")
    for cur, r in fx.items():
        if not isinstance(r, dict):
            raise ConfigError(f"{where}fx.{cur}: must be a table with per_unit, date, source")
        _check_keys(r, {"per_unit", "date", "source"}, f"{where}fx.{cur}.", required=("per_unit", "date", "source"))
        rate = _num(r["per_unit"], f"{where}fx.{cur}.per_unit")
        if rate <= 0:
            raise ConfigError(f"{where}fx.{cur}.per_unit: must be > 0, got {rate:g}")
        catalog.rates[cur] = Rate(cur, rate, _date(r["date"], f"{where}fx.{cur}.date"), str(r["source"]))


def _read_value(kind: str, v: Any, key: str, unit: str, rd: _Reader, where: str) -> Any:
    if kind == "str":
        if not isinstance(v, str) or not v:
            raise ConfigError(f"{where}{key}: must be a non-empty string")
        return v
    if kind == "method":
        if v not in DEPRECIATION_METHODS:
            raise ConfigError(f"{where}{key}: must be one of {', '.join(DEPRECIATION_METHODS)}, got {v!r}")
        return v
    if kind == "money":
        return rd.money(v, key, unit)
    x = _num(v, f"{where}{key}")
    problem = _CHECKS[kind](x)
    if problem:
        raise ConfigError(f"{where}{key}: {problem}, got {x:g}")
    return Input(key, x, unit, ASSUMED, "cost config")


def parse_config(doc: dict[str, Any], path: str = "cost.toml", catalog: Catalog | None = None,
                 today: dt.date | None = None, report_currency: str | None = None) -> CostConfig:
    where = f"{path}: "
    _check_keys(doc, _TOP, where)
    extra_files = doc.get("catalog", [])
    if not isinstance(extra_files, list) or not all(isinstance(x, str) for x in extra_files):
        raise ConfigError(f"{where}catalog: must be a list of price file paths")
    base = Path(path).parent
    catalog = catalog or load_catalog([base / f for f in extra_files])
    _read_fx(doc, catalog, where)
    config_currency = doc.get("currency", "CNY")
    if not isinstance(config_currency, str) or not catalog.knows(config_currency):
        raise ConfigError(f"{where}currency: unknown currency {config_currency!r} "
                          f"(known: {', '.join(catalog.currencies)})")
    currency = report_currency or config_currency
    if not catalog.knows(currency):
        raise ConfigError(f"--currency: unknown currency {currency!r} (known: {', '.join(catalog.currencies)})")
    as_of = _date(doc["as_of"], f"{where}as_of") if "as_of" in doc else (today or dt.date.today())
    max_age = doc.get("max_price_age_days", 365)
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
        raise ConfigError(f"{where}max_price_age_days: must be a whole number of days >= 0, got {max_age!r}")

    rd = _Reader(catalog, config_currency, currency, where)
    raw: dict[str, Any] = {}
    for section, keys in _SCHEMA.items():
        sec = doc.get(section, {})
        if not isinstance(sec, dict):
            raise ConfigError(f"{where}{section}: must be a table [{section}]")
        _check_keys(sec, set(keys), f"{where}{section}.")
        for k, (kind, required, default, unit) in keys.items():
            key = f"{section}.{k}"
            if k not in sec:
                if required:
                    raise ConfigError(f"{where}{key}: missing field ([{section}] {k} = ...)")
                raw[key] = default
                continue
            raw[key] = _read_value(kind, sec[k], key, unit, rd, where)

    rental_doc = doc.get("rental", {})
    if isinstance(rental_doc, dict) and "hybrid_burst_share" in rental_doc and "peak_share" not in doc.get("hybrid", {}):
        # the name before [hybrid] existed
        raw["hybrid.peak_share"] = _read_value("frac", rental_doc["hybrid_burst_share"], "rental.hybrid_burst_share",
                                               "of useful GPU-hours", rd, where)
    gpu = raw.pop("cluster.gpu_model")
    options = {"finance.depreciation": raw.pop("finance.depreciation")}
    model = catalog.models.get(gpu)
    inputs: dict[str, Input] = {}
    for key, val in raw.items():
        section, k = key.split(".")
        kind, _, default, unit = _SCHEMA[section][k]
        if isinstance(val, Input):
            inputs[key] = val
        elif val is None:   # per-model defaults from the catalog
            if model is None:
                raise ConfigError(f"{where}{key}: missing field (no catalog default for gpu_model '{gpu}'; "
                                  f"known: {', '.join(sorted(catalog.models))})")
            attr = "node_gpu_power_w" if k == "gpu_power_w" else k
            inputs[key] = Input(key, float(getattr(model, attr)), unit, DEFAULT, model.source)
        elif kind == "money":
            inputs[key] = Input(key, float(val), f"{currency} {unit}", DEFAULT, "not set: counted as 0")
        else:
            inputs[key] = Input(key, float(val), unit, DEFAULT, "clusterkit default")

    rentals, reference = _rentals(rental_doc, gpu, catalog, rd, where, inputs)
    prom = doc.get("prometheus", {})
    if not isinstance(prom, dict):
        raise ConfigError(f"{where}prometheus: must be a table")
    _check_keys(prom, _PROM_KEYS, f"{where}prometheus.")
    if "period_days" in prom:
        days = _num(prom["period_days"], f"{where}prometheus.period_days")
        if not 0 < days <= 3650:
            raise ConfigError(f"{where}prometheus.period_days: must be above 0 and at most 3650, got {days:g}")
    scenarios = (_scenarios(doc, path, catalog, today, report_currency) if doc.get("scenario") is not None else [])
    return CostConfig(currency=currency, as_of=as_of, max_price_age_days=max_age, gpu_model=gpu, inputs=inputs,
                      rentals=rentals, reference=reference, catalog=catalog, options=options,
                      prometheus={**DEFAULT_PROMETHEUS, **{k: str(v) for k, v in prom.items()}},
                      path=path, rates_used=list(rd.rates.values()), scenarios=scenarios,
                      config_currency=config_currency)


def settable_keys(doc: dict[str, Any] | None = None) -> list[str]:
    """Every key a [[scenario]] may set (rental prices and trajectories by option id besides)."""
    keys = [f"{s}.{k}" for s, ks in _SCHEMA.items() for k in ks]
    return keys + ["rental.reference", "rental.availability", "rental.<id>.price", "rental.<id>.trajectory"]


def _scenarios(doc: dict[str, Any], path: str, catalog: Catalog, today: dt.date | None,
               report_currency: str | None) -> list[tuple[str, CostConfig]]:
    """[[scenario]] name = "...", set = { "section.key" = value, ... }: the config with those values,
    validated like the config itself. Any input may be set, a rental price or trajectory included:
    "rental.<id>.price", "rental.<id>.trajectory", "trajectory.rental_per_year", "rental.reference"."""
    items = doc["scenario"]
    if not isinstance(items, list):
        raise ConfigError(f"{path}: scenario: must be an array of tables [[scenario]]")
    out = []
    for n, sc in enumerate(items):
        w = f"scenario[{n}]"
        if not isinstance(sc, dict):
            raise ConfigError(f"{path}: {w}: must be a table")
        _check_keys(sc, {"name", "set"}, f"{path}: {w}.")
        name, changes = sc.get("name"), sc.get("set")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{path}: {w}.name: missing field")
        if not isinstance(changes, dict) or not changes:
            raise ConfigError(f"{path}: {w}.set: must be a table of \"section.key\" = value")
        variant = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items() if k != "scenario"}
        rental = variant.setdefault("rental", {})
        for key, value in changes.items():
            section, _, k = key.partition(".")
            if section == "rental" and k in ("reference", "availability"):
                rental[k] = value
            elif section == "rental" and k.endswith((".price", ".trajectory")):
                rid, _, what = k.rpartition(".")
                if what == "price":
                    rental.setdefault("prices", {})[rid] = value
                else:
                    rental["trajectories"] = {**rental.get("trajectories", {}), rid: value}
            elif section in _SCHEMA and k in _SCHEMA[section]:
                variant.setdefault(section, {})[k] = value
            else:
                raise ConfigError(f"{path}: {w}.set.{key}: unknown input (use section.key, e.g. capex.server_price, "
                                  f"or rental.<option id>.price)")
        try:
            out.append((name, _parse_variant(variant, path, catalog, today, report_currency)))
        except ConfigError as e:
            raise ConfigError(str(e).replace(f"{path}: ", f"{path}: {w} '{name}': ", 1)) from None
    return out


def _parse_variant(variant: dict[str, Any], path: str, catalog: Catalog, today: dt.date | None,
                   report_currency: str | None) -> CostConfig:
    """A scenario's config: rental prices it sets replace the options' prices after parsing."""
    prices = variant.get("rental", {}).pop("prices", {})
    cfg = parse_config(variant, path, catalog, today, report_currency)
    if not prices:
        return cfg
    rd = _Reader(catalog, cfg.config_currency, cfg.currency, f"{path}: ")
    rentals = []
    known = {r.id for r in cfg.rentals}
    for rid in prices:
        if rid not in known:
            raise ConfigError(f"{path}: rental.{rid}.price: no rental option '{rid}' (options: {', '.join(sorted(known))})")
    for r in cfg.rentals:
        if r.id in prices:
            r = replace(r, price=rd.money(prices[r.id], f"rental.{r.id}.price", "per GPU-hour"))
        rentals.append(r)
    return replace(cfg, rentals=rentals, rates_used=list({**{x.currency: x for x in cfg.rates_used}, **rd.rates}.values()))


def _rentals(sec: Any, gpu: str, catalog: Catalog, rd: _Reader, where: str,
             inputs: dict[str, Input]) -> tuple[list[Rental], str]:
    if not isinstance(sec, dict):
        raise ConfigError(f"{where}rental: must be a table [rental]")
    _check_keys(sec, _RENTAL_KEYS, f"{where}rental.")
    ids = sec.get("options", "catalog")
    if ids == "catalog":
        chosen = [p for p in catalog.rentals(gpu) if not p.historical]   # historical prices only when named
    elif isinstance(ids, list) and all(isinstance(i, str) for i in ids):
        chosen = []
        for i in ids:
            if i not in catalog.prices or catalog.prices[i].kind != "rental":
                raise ConfigError(f"{where}rental.options: unknown rental price '{i}'")
            chosen.append(catalog.prices[i])
    else:
        raise ConfigError(f"{where}rental.options: must be \"catalog\" or a list of catalog rental ids")
    avail = _read_value("util", sec.get("availability", 0.99), "rental.availability", "of reserved GPU-hours", rd, where)
    avail = replace(avail, basis=ASSUMED if "availability" in sec else DEFAULT,
                    source=avail.source if "availability" in sec else "clusterkit default (a typical 99 % SLA)")
    trajectories = sec.get("trajectories", {})
    if not isinstance(trajectories, dict):
        raise ConfigError(f"{where}rental.trajectories: must be a table of option id = annual change")
    default_traj = inputs["trajectory.rental_per_year"]

    def trajectory(rid: str) -> Input:
        if rid in trajectories:
            return _read_value("change", trajectories[rid], f"rental.trajectories.{rid}", "per year", rd, where)
        return default_traj

    rentals = [Rental(p.id, p.term, rd.price(p, f"rental.{p.id}", "per GPU-hour"), trajectory(p.id),
                      replace(avail, key=f"rental.{p.id}.availability")) for p in chosen]
    custom = sec.get("custom", [])
    if not isinstance(custom, list):
        raise ConfigError(f"{where}rental.custom: must be an array of tables [[rental.custom]]")
    for n, c in enumerate(custom):
        w = f"rental.custom[{n}]"
        if not isinstance(c, dict):
            raise ConfigError(f"{where}{w}: must be a table")
        _check_keys(c, {"id", "term", "price_per_gpu_hour", "availability"}, f"{where}{w}.",
                    required=("id", "term", "price_per_gpu_hour"))
        if c["term"] not in ("on-demand", "1-year", "3-year"):
            raise ConfigError(f"{where}{w}.term: must be on-demand, 1-year or 3-year, got {c['term']!r}")
        rid = str(c["id"])
        a = (_read_value("util", c["availability"], f"{w}.availability", "of reserved GPU-hours", rd, where)
             if "availability" in c else replace(avail, key=f"rental.{rid}.availability"))
        rentals.append(Rental(rid, c["term"], rd.money(c["price_per_gpu_hour"], f"{w}.price_per_gpu_hour",
                                                       "per GPU-hour"), trajectory(rid), a))
    if not rentals:
        raise ConfigError(f"{where}rental.options: no rental price for gpu_model '{gpu}' in the catalog; "
                          f"add [[rental.custom]] entries")
    for rid in trajectories:
        if rid not in {r.id for r in rentals}:
            raise ConfigError(f"{where}rental.trajectories.{rid}: no rental option '{rid}'")
    on_demand = [r for r in rentals if not r.committed]
    ref = sec.get("reference")
    if ref is None:
        if not on_demand:
            raise ConfigError(f"{where}rental.reference: missing field (no on-demand option to default to)")
        ref = min(on_demand, key=lambda r: r.price.value).id   # the cheapest: the hardest test for owning
    elif not isinstance(ref, str) or ref not in {r.id for r in rentals}:
        raise ConfigError(f"{where}rental.reference: '{ref}' is not one of the options ({', '.join(r.id for r in rentals)})")
    return rentals, ref


def load_config(path: Path | None, today: dt.date | None = None, report_currency: str | None = None) -> CostConfig:
    """Read cost.toml, or the built-in example when `path` is None."""
    src = path or EXAMPLE_CONFIG
    try:
        text = Path(src).read_text()
    except OSError as e:
        raise ConfigError(f"{src}: cannot read cost config: {e.strerror}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{src}: invalid TOML: {e}") from None
    cfg = parse_config(doc, str(src) if path else "built-in example", today=today, report_currency=report_currency)
    cfg.is_example = path is None
    return cfg
