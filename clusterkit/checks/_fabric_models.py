"""What an HCA model can do, from what the text shows of it: the CA type (PCI device id,
`MT4129`) or, where that is the generic virtual-function id, the firmware's major number.

Rates are per port, Gb/s, as ibstat prints them. `top` is the fastest the model runs;
`floor` the slowest rate any of its board SKUs runs natively (a ConnectX-6 HDR100 card
runs 100, a 2x25GbE ConnectX-6 Dx runs 25), so a port at or above its floor may simply be
that SKU and is never called slow from the model alone. Sources: the mlx5_core PCI id
table (drivers/net/ethernet/mellanox/mlx5/core/main.c) for the ids, the vendor's adapter
product briefs for the rates. Models not listed are not judged.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HcaModel:
    name: str
    ib: tuple[float, float] | None    # (floor, top) on InfiniBand; None: no InfiniBand
    eth: tuple[float, float]          # (floor, top) on Ethernet

    def rates(self, link_layer: str | None) -> tuple[float, float] | None:
        return self.eth if (link_layer or "").lower() == "ethernet" else self.ib


_CX3 = HcaModel("ConnectX-3", (40.0, 56.0), (10.0, 56.0))
_CX4 = HcaModel("ConnectX-4", (56.0, 100.0), (10.0, 100.0))
_CX4LX = HcaModel("ConnectX-4 Lx", None, (10.0, 50.0))
_CX5 = HcaModel("ConnectX-5", (100.0, 100.0), (10.0, 100.0))
_CX6 = HcaModel("ConnectX-6", (100.0, 200.0), (10.0, 200.0))
_CX6DX = HcaModel("ConnectX-6 Dx", None, (10.0, 200.0))
_CX6LX = HcaModel("ConnectX-6 Lx", None, (10.0, 50.0))
_CX7 = HcaModel("ConnectX-7", (200.0, 400.0), (10.0, 400.0))
_BF2 = HcaModel("BlueField-2", (100.0, 200.0), (10.0, 200.0))
_BF3 = HcaModel("BlueField-3", (200.0, 400.0), (10.0, 400.0))

# CA type (decimal PCI device id) -> model; virtual functions share their PF's rates.
BY_CA_TYPE: dict[str, HcaModel] = {
    "MT4099": _CX3, "MT4100": _CX3, "MT4103": _CX3, "MT4104": _CX3,
    "MT4113": HcaModel("Connect-IB", (56.0, 56.0), (10.0, 56.0)),
    "MT4115": _CX4, "MT4116": _CX4, "MT4117": _CX4LX, "MT4118": _CX4LX,
    "MT4119": _CX5, "MT4120": _CX5, "MT4121": _CX5, "MT4122": _CX5,
    "MT4123": _CX6, "MT4124": _CX6, "MT4125": _CX6DX, "MT4127": _CX6LX,
    "MT4129": _CX7, "MT41686": _BF2, "MT41692": _BF3,
}
GENERIC_VF = "MT4126"   # "ConnectX Family mlx5Gen Virtual Function": any mlx5 generation from ConnectX-6 Dx on

# Firmware major number -> model (mlx5 generations; mlx4 all use 2.x and are told apart by CA type).
BY_FW_MAJOR: dict[str, HcaModel] = {
    "10": BY_CA_TYPE["MT4113"], "12": _CX4, "14": _CX4LX, "16": _CX5, "20": _CX6, "22": _CX6DX,
    "24": _BF2, "26": _CX6LX, "28": _CX7, "32": _BF3,
}


def fw_major(firmware: str | None) -> str | None:
    head = (firmware or "").strip().split(".")[0]
    return head if head.isdigit() else None


def hca_model(ca_type: str | None, firmware: str | None) -> HcaModel | None:
    """The model a port belongs to, or None when the text does not show it."""
    ca = (ca_type or "").strip().upper()
    if ca and ca != GENERIC_VF and ca in BY_CA_TYPE:
        return BY_CA_TYPE[ca]
    major = fw_major(firmware)
    if major and (not ca or ca == GENERIC_VF) and major in BY_FW_MAJOR:
        return BY_FW_MAJOR[major]
    return None


def silicon(ca_type: str | None, firmware: str | None) -> tuple[str, str | None]:
    """Ports that should run one firmware: the same CA type AND the same firmware major.
    Virtual functions of a ConnectX-6 Dx and of a ConnectX-7 both report MT4126; their
    firmware majors (22, 28) show they are different NICs, not one NIC out of date."""
    return (ca_type or "?", fw_major(firmware))
