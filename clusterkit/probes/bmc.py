"""BMC probes beyond the PSU ones (probes/gpu.py): every sensor record, states included."""

from __future__ import annotations

from clusterkit.parsers.ipmi import IPMI_SEL_INFO
from clusterkit.parsers.ipmi_sensors import IPMI_SDR_V
from clusterkit.probes.registry import simple_probe

# `ipmitool sdr -v` reads every sensor through the BMC: seconds to a minute on a large server.
simple_probe("power.ipmi_sdr_v", IPMI_SDR_V, timeout_s=180, root=True)
# A full SEL drops new events: the other BMC checks would miss what happened since.
simple_probe("power.ipmi_sel_info", IPMI_SEL_INFO, timeout_s=60, root=True)
