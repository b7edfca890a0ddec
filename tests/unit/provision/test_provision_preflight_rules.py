"""Declared vs detected hardware (what the preflight role reports), on sysfs readings we write."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterkit.preflight import hardware_problems, summarize
from clusterkit.versions import load_table

T = load_table()


def _pci(n_gpu: int, gpu_id: str = "10de:2330", nvswitch: int = 0, extra: list | None = None) -> list[dict]:
    devs = [{"address": f"0000:{0x18 + i:02x}:00.0", "id": gpu_id, "class": "0x030200"} for i in range(n_gpu)]
    devs += [{"address": f"0000:{0x80 + i:02x}:00.0", "id": "10de:22a3", "class": "0x068000"} for i in range(nvswitch)]
    return devs + (extra or [])


def _node(pci, ib=(), net=None, free=None):
    return {"pci_devices": pci, "infiniband": list(ib), "net": net or {"lo": {"pci": None, "rdma": []}},
            "free_gib": free or {"/": 100.0}}


def test_hgx_h100_as_declared_passes():
    node = _node(_pci(8, nvswitch=4), ib=[f"mlx5_{i}" for i in range(8)])
    declared = {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8, "ib_devices": ",".join(f"mlx5_{i}" for i in range(8))}
    assert hardware_problems(node, declared, T) == []
    assert summarize(node, T) == {"gpus": {"h100-sxm5-80gb": 8}, "gpu_count": 8, "unknown_gpus": [],
                                  "nvswitch_count": 4}


def test_no_gpu_when_gpus_are_declared():
    [msg] = hardware_problems(_node([]), {"gpu_model": "a100-sxm4-80gb", "gpu_count": "8"}, T)
    assert msg.startswith("no NVIDIA GPU detected: the inventory declares 8 x a100-sxm4-80gb")


def test_no_gpu_declared_and_none_present_passes():
    assert hardware_problems(_node([]), {"gpu_count": 0}, T) == []


def test_a_missing_gpu_names_the_present_addresses():
    msgs = hardware_problems(_node(_pci(7, nvswitch=4)), {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8}, T)
    [msg] = msgs
    assert "detected 7 GPU(s), the inventory declares 8" in msg and "reseat" in msg
    assert "0000:18:00.0" in msg and "0000:1e:00.0" in msg


def test_wrong_model_and_missing_nvswitch():
    msgs = hardware_problems(_node(_pci(8, gpu_id="10de:20b2")), {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8}, T)
    assert any("detected 8 x A100 SXM4 80GB (10de:20b2) but the inventory declares h100-sxm5-80gb" in m for m in msgs)
    assert any(m.startswith("no NVSwitch detected on an 8-GPU H100 SXM5 80GB board") for m in msgs)


def test_undeclared_gpus_and_unknown_ids():
    pci = _pci(2, gpu_id="10de:20b0") + [{"address": "0000:99:00.0", "id": "10de:2335", "class": "0x030200"},
                                         {"address": "0000:99:00.1", "id": "10de:22ba", "class": "0x040300"}]
    msgs = hardware_problems(_node(pci), {}, T)
    assert any("unknown NVIDIA GPU 10de:2335 at 0000:99:00.0" in m for m in msgs)
    assert any("declares no GPU" in m for m in msgs)
    assert not any("22ba" in m for m in msgs)   # an audio function is not a GPU


def test_nics_declared_but_absent_or_without_rdma():
    net = {"eth0": {"pci": "0000:01:00.0", "rdma": []}, "ens1f0": {"pci": "0000:31:00.0", "rdma": ["mlx5_4"]}}
    msgs = hardware_problems(_node([], ib=["mlx5_0"], net=net),
                             {"ib_devices": ["mlx5_0", "mlx5_1"], "roce_interfaces": "ens1f0,eth0,eth9"}, T)
    assert msgs == [
        "InfiniBand device mlx5_1 is declared but not present (present: mlx5_0; check the HCA is seated and the "
        "network stack is installed)",
        "RoCE interface eth0 has no RDMA device behind it (not an RDMA NIC, or the mlx5_ib module is not loaded)",
        "RoCE interface eth9 is declared but not present (interfaces: ens1f0, eth0)",
    ]


def test_short_disk_and_missing_path():
    msgs = hardware_problems(_node([], free={"/": 3.5, "/scratch": None}), {}, T, min_free_gib=20)
    assert msgs[0].startswith("/ has 3.5 GiB free, less than the 20 GiB needed")
    assert msgs[1].startswith("/scratch does not exist")


def test_bad_gpu_count_is_a_message():
    assert hardware_problems(_node([]), {"gpu_count": "eight"}, T) == ["gpu_count: expected a whole number, got 'eight'"]


_dev = st.fixed_dictionaries({"address": st.text(max_size=12), "id": st.sampled_from(["10de:2330", "10de:22a3",
                              "10de:ffff", "15b3:1021", "", "zz"]), "class": st.text(max_size=8)})


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({"pci_devices": st.lists(_dev, max_size=12),
                              "infiniband": st.lists(st.text(max_size=6), max_size=3)}),
       st.fixed_dictionaries({}, optional={"gpu_model": st.one_of(st.none(), st.text(max_size=15),
                                                                    st.just("h100-sxm5-80gb")),
                                           "gpu_count": st.one_of(st.integers(-3, 20), st.text(max_size=3)),
                                           "ib_devices": st.one_of(st.text(max_size=10), st.lists(st.text(max_size=5))),
                                           "roce_interfaces": st.text(max_size=10)}))
def test_any_reading_gives_messages_not_tracebacks(detected, declared):
    out = hardware_problems(detected, declared, T)
    assert all(isinstance(m, str) and m for m in out)


def test_secure_boot_with_unsigned_dkms_modules_is_refused_unless_signed():
    node = {**_node(_pci(8, nvswitch=4)), "secure_boot": True}
    declared = {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8}
    [p] = hardware_problems(node, declared, T)
    assert p.startswith("Secure Boot is on") and "preflight_secure_boot_signed_modules=true" in p
    assert hardware_problems(node, {**declared, "preflight_secure_boot_signed_modules": "true"}, T) == []
    # a host without GPUs or RDMA builds no DKMS module
    assert hardware_problems({**_node([]), "secure_boot": True}, {"gpu_count": 0}, T) == []


def test_an_infiniband_port_no_subnet_manager_configured_is_refused():
    ports = {"mlx5_0": [{"port": "1", "state": "4: ACTIVE", "sm_lid": "0x1"}],
             "mlx5_1": [{"port": "1", "state": "2: INIT", "sm_lid": "0x0"}]}
    node = {**_node(_pci(8, nvswitch=4), ib=["mlx5_0", "mlx5_1"]), "ib_ports": ports}
    declared = {"gpu_model": "h100-sxm5-80gb", "gpu_count": 8, "ib_devices": "mlx5_0,mlx5_1"}
    [p] = hardware_problems(node, declared, T)
    assert p.startswith("no InfiniBand subnet manager answers on mlx5_1 (port 1 2: INIT, SM lid 0x0)")
    ports["mlx5_1"][0].update(state="4: ACTIVE", sm_lid="garbage")
    assert len(hardware_problems(node, declared, T)) == 1   # an unreadable SM LID is no answer
