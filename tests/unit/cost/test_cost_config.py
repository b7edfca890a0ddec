"""Bad cost configs give one clear line naming the field; good ones keep provenance."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterkit.cost.catalog import load_catalog
from clusterkit.cost.config import load_config, parse_config, settable_keys
from clusterkit.errors import ConfigError


def parse(text: str):
    return parse_config(tomllib.loads(text), "cost.toml", today=dt.date(2025, 1, 1))


def edit(toml: str, old: str, new: str) -> str:
    assert old in toml
    return toml.replace(old, new, 1)


@pytest.mark.parametrize("old,new,field,words", [
    ("server_price = 100000", "server_price = -5", "capex.server_price", "negative"),
    ("price_per_kwh = 1.0", "price_per_kwh = { amount = -1, currency = \"USD\" }", "power.price_per_kwh.amount",
     "negative"),
    ("scheduler = 0.5", "scheduler = 1.2", "utilization.scheduler", "at most 1"),
    ("availability = 1.0", "availability = 0", "utilization.availability", "above 0"),
    ("price_per_kwh = 1.0", "price_per_kwh = { amount = 1, currency = \"XYZ\" }", "power.price_per_kwh.currency",
     "unknown currency 'XYZ'"),
    ('currency = "USD"', 'currency = "ZZZ"', "currency", "unknown currency"),
    ("server_price = 100000\n", "", "capex.server_price", "missing field"),
    ("cost_of_capital = 0.10\n", "", "finance.cost_of_capital", "missing field"),
    ("pue = 1.5", "pue = 0.9", "power.pue", "between 1 and 5"),
    ("nodes = 2", "nodes = 2.5", "cluster.nodes", "whole number"),
    ("nodes = 2", 'nodes = "two"', "cluster.nodes", "must be a number"),
    ("life_years = 3", "life_yeras = 3", "finance.life_yeras", "unknown field"),
    ('server_price = 100000', 'server_price = "catalog:nope"', "capex.server_price", "unknown catalog price"),
    ('reference = "od"', 'reference = "zz"', "rental.reference", "not one of the options"),
    ('term = "3-year"', 'term = "5-year"', "rental.custom[1].term", "on-demand, 1-year or 3-year"),
    ('as_of = 2025-01-01', 'as_of = "yesterday"', "as_of", "YYYY-MM-DD"),
    ("life_years = 3", "life_years = 2.5", "finance.life_years", "whole number of years"),
    ("life_years = 3", 'life_years = 3\ndepreciation = "sum-of-years"', "finance.depreciation",
     "straight-line, declining-balance"),
    ("life_years = 3", "life_years = 3\n[trajectory]\nrental_per_year = -1.5", "trajectory.rental_per_year",
     "annual change"),
    ('reference = "od"', 'reference = "od"\ntrajectories = { zz = -0.1 }', "rental.trajectories.zz",
     "no rental option"),
    ('reference = "od"', 'reference = "od"\navailability = 1.5', "rental.availability", "at most 1"),
])
def test_bad_config_names_the_field(small_toml, old, new, field, words):
    with pytest.raises(ConfigError) as e:
        parse(edit(small_toml, old, new))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"cost.toml: {field}"), msg
    assert words in msg


def test_money_forms_and_conversion(small_toml):
    cat = load_catalog()
    usd_cny = cat.rates["USD"].per_unit
    text = edit(small_toml, "server_price = 100000",
                'server_price = { amount = 700000, currency = "CNY", date = 2024-06-01, source = "quote 42" }')
    cfg = parse(text)
    i = cfg.inputs["capex.server_price"]
    assert i.value == pytest.approx(700000 / usd_cny)
    assert (i.source, i.date, i.basis) == ("quote 42", dt.date(2024, 6, 1), "assumed")
    assert "CNY" in i.original and [r.currency for r in cfg.rates_used] == ["USD"]
    cfg2 = parse(edit(small_toml, "server_price = 100000", 'server_price = "catalog:server-8x-h100-sxm"'))
    assert cfg2.inputs["capex.server_price"].value == cat.prices["server-8x-h100-sxm"].amount    # quoted in USD
    assert cfg2.inputs["capex.server_price"].basis == "catalog"
    assert "<https://" in cfg2.inputs["capex.server_price"].source                               # with its address


def test_fx_override_is_used_and_dated(small_toml):
    text = small_toml + '\n[fx.USD]\nper_unit = 8.0\ndate = 2024-12-01\nsource = "treasury"\n'
    text = edit(text, "server_price = 100000", 'server_price = { amount = 800000, currency = "CNY" }')
    cfg = parse(text)
    assert cfg.v("capex.server_price") == pytest.approx(100_000)
    assert cfg.rates_used[0].source == "treasury"


def test_stale_prices_are_warned(small_toml):
    text = edit(small_toml, "server_price = 100000",
                'server_price = { amount = 100000, date = 2023-01-01, source = "old quote" }')
    cfg = parse(text)
    warn = cfg.stale()
    assert len(warn) == 1 and "capex.server_price" in warn[0] and "731 days old" in warn[0]
    fresh = parse(edit(text, "as_of = 2025-01-01", "as_of = 2025-01-01\nmax_price_age_days = 800"))
    assert fresh.stale() == []


def test_catalog_defaults_fill_power(small_toml):
    cfg = parse(edit(small_toml, "gpu_power_w = 1000\n", ""))
    assert cfg.v("power.gpu_power_w") == 4400 and cfg.inputs["power.gpu_power_w"].basis == "default"
    with pytest.raises(ConfigError, match="power.gpu_power_w: missing field"):
        parse(edit(edit(small_toml, "gpu_power_w = 1000\n", ""), 'gpu_model = "H100"', 'gpu_model = "B200"'))


def test_example_config_loads_and_says_so():
    cfg = load_config(None, today=dt.date(2026, 11, 30))
    assert cfg.is_example and cfg.gpu_model == "H100" and cfg.v("cluster.nodes") == 8
    assert {r.term for r in cfg.rentals} == {"on-demand", "1-year"}
    assert cfg.v("finance.tax_rate") == 0.25 and cfg.reference == "lambda-h100-on-demand"
    # "what if H100 rental falls 30 % a year" is one scenario line
    (name, sc), = [(n, c) for n, c in cfg.scenarios if "falls 30%" in n]
    assert sc.v("trajectory.rental_per_year") == -0.30 and cfg.v("trajectory.rental_per_year") == -0.10


TODAY = dt.date(2026, 11, 30)


def test_every_catalog_price_is_current_or_historical_with_a_source_in_the_repository():
    cat = load_catalog()
    sources = (Path(__file__).resolve().parents[3] / "docs" / "cost-sources.md").read_text()
    for p in cat.prices.values():
        age = (TODAY - p.date).days
        assert p.historical or 0 <= age <= 365, f"{p.id}: {p.date} is {age} days old and not marked historical"
        assert p.url.startswith("https://"), p.id
        assert p.amount > 0 and cat.knows(p.currency) and p.source
        assert f"`{p.id}`" in sources, f"{p.id} is not in docs/cost-sources.md"
    for r in cat.rates.values():
        assert 0 <= (TODAY - r.date).days <= 365 and "https://" in r.source
        assert f"`{r.currency}`" in sources
    h100 = {p.id for p in cat.rentals("H100") if not p.historical and p.term == "on-demand"}
    for provider in ("aws-p5", "lambda", "coreweave", "gcp-a3", "azure-nd-h100-v5", "runpod"):
        assert any(i.startswith(provider) for i in h100), provider
    # AWS P5 after the June 2025 cut: USD 55.04 an instance-hour, 8 GPUs
    assert cat.prices["aws-p5-on-demand"].amount == pytest.approx(55.04 / 8)
    for gpu in ("A100", "H100"):
        assert cat.server(gpu) is not None and cat.models[gpu].training_throughput > 0


def test_historical_prices_are_left_out_of_catalog_options_and_warned_when_named(small_toml):
    cat = load_catalog()
    assert any(p.historical for p in cat.prices.values())
    cfg = parse(edit(small_toml, "server_price = 100000", 'server_price = "catalog:server-8x-h100-sxm-quote-2024"'))
    assert any("HISTORICAL" in w and "capex.server_price" in w for w in cfg.stale())


def test_report_currency_goes_through_the_dated_rates(small_toml):
    usd = parse(small_toml)
    cny = parse_config(tomllib.loads(small_toml), "cost.toml", today=dt.date(2025, 1, 1), report_currency="CNY")
    rate = load_catalog().rates["USD"].per_unit
    assert cny.currency == "CNY" and cny.config_currency == "USD"
    assert cny.v("capex.server_price") == pytest.approx(usd.v("capex.server_price") * rate)
    assert cny.ref_rental().price.value == pytest.approx(1.0 * rate)
    assert [r.currency for r in cny.rates_used] == ["USD"]
    from clusterkit.cost.model import compute
    assert compute(cny).npv_saving == pytest.approx(compute(usd).npv_saving * rate, rel=1e-12)
    with pytest.raises(ConfigError, match="--currency: unknown currency 'XYZ'"):
        parse_config(tomllib.loads(small_toml), "cost.toml", report_currency="XYZ")


def test_bad_catalog_file(tmp_path, small_toml):
    bad = tmp_path / "mine.toml"
    bad.write_text('[[price]]\nid = "x"\nkind = "rental"\ngpu = "H100"\nterm = "on-demand"\namount = 1\n'
                   'currency = "USD"\nunit = "gpu-hour"\ndate = 2024-01-01\n')
    with pytest.raises(ConfigError, match="mine.toml price 'x': missing field 'source'"):
        load_catalog([bad])


_leaf = st.one_of(st.integers(-3, 3), st.floats(), st.text(max_size=3), st.lists(st.integers(), max_size=2))
_section = st.dictionaries(st.sampled_from(["nodes", "server_price", "scheduler", "pue", "gpu_model", "amount",
                                            "options", "per_unit", "life_years", "depreciation", "rental_per_year",
                                            "storage_tb", "trajectories", "availability", "period_days", "peak_share",
                                            "reference", "custom"]), _leaf, max_size=4)
_doc = st.dictionaries(st.sampled_from(["cluster", "capex", "finance", "power", "utilization", "rental", "fx",
                                        "currency", "as_of", "bogus", "trajectory", "rental_side", "hybrid",
                                        "prometheus", "scenario", "sensitivity"]),
                       st.one_of(st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=5), _section,
                                 st.lists(_section, max_size=2)))


@settings(max_examples=150, deadline=None)
@given(_doc)
def test_fuzzed_configs_never_traceback(doc):
    try:
        parse_config(doc, "fuzz.toml", today=dt.date(2025, 1, 1))
    except ConfigError as e:
        assert "\n" not in str(e) and str(e).startswith("fuzz.toml: ")


def test_config_scenarios(small_toml):
    from clusterkit.cost.analysis import scenarios
    from clusterkit.cost.model import compute

    text = small_toml + ('\n[[scenario]]\nname = "quote B"\nset = { "capex.server_price" = 80000, '
                         '"cluster.nodes" = 4 }\n')
    cfg = parse(text)
    (name, sc), = cfg.scenarios
    assert name == "quote B" and sc.v("capex.server_price") == 80000 and sc.v("cluster.nodes") == 4
    row = next(s for s in scenarios(cfg) if s.name == "quote B")
    assert row.per_useful_gpu_hour == pytest.approx(compute(sc).cost_per_useful_gpu_hour)
    with pytest.raises(ConfigError, match=r"^cost.toml: scenario\[0\] 'bad': utilization.scheduler: must be above 0"):
        parse(small_toml + '\n[[scenario]]\nname = "bad"\nset = { "utilization.scheduler" = 2 }\n')
    with pytest.raises(ConfigError, match=r"scenario\[0\].set.capex.price: unknown input"):
        parse(small_toml + '\n[[scenario]]\nname = "x"\nset = { "capex.price" = 2 }\n')


def test_scenarios_may_set_a_rental_price_or_its_trajectory(small_toml):
    text = small_toml + ('\n[[scenario]]\nname = "od halves"\nset = { "rental.od.price" = 0.5 }\n'
                         '\n[[scenario]]\nname = "od falls 30% a year"\nset = { "rental.od.trajectory" = -0.3 }\n'
                         '\n[[scenario]]\nname = "all rentals fall"\nset = { "trajectory.rental_per_year" = -0.3 }\n'
                         '\n[[scenario]]\nname = "against r3"\nset = { "rental.reference" = "r3" }\n')
    cfg = parse(text)
    sc = dict(cfg.scenarios)
    assert sc["od halves"].ref_rental().price.value == 0.5 and cfg.ref_rental().price.value == 1.0
    assert sc["od falls 30% a year"].trajectory(sc["od falls 30% a year"].ref_rental()) == -0.3
    assert sc["all rentals fall"].trajectory(sc["all rentals fall"].ref_rental()) == -0.3
    assert sc["against r3"].reference == "r3"
    with pytest.raises(ConfigError, match=r"scenario\[0\] 'x': rental.zz.price: no rental option 'zz'"):
        parse(small_toml + '\n[[scenario]]\nname = "x"\nset = { "rental.zz.price" = 2 }\n')


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(settable_keys()), st.one_of(_leaf, st.dictionaries(st.sampled_from(
    ["amount", "currency", "date", "source", "x"]), _leaf, max_size=3)), st.booleans())
def test_any_key_set_to_anything_is_a_clean_error_or_a_config(key, value, as_scenario):
    from tests.unit.cost.conftest import SMALL   # hypothesis cannot take a function-scoped fixture

    doc = tomllib.loads(SMALL)
    if as_scenario:
        doc["scenario"] = [{"name": "fuzz", "set": {key.replace("<id>", "od"): value}}]
    else:
        section, _, k = key.partition(".")
        doc.setdefault(section, {})[k] = value
    try:
        cfg = parse_config(doc, "fuzz.toml", today=dt.date(2025, 1, 1))
    except ConfigError as e:
        assert "\n" not in str(e) and str(e).startswith("fuzz.toml: ")
        return
    from clusterkit.cost.model import compute
    compute(cfg)                      # a config that parses also computes
