"""JUnit XML: one testsuite per node, one testcase per check, so CI systems and
dashboards show each node's checks; an unreachable node is one erroring testcase."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from clusterkit.render.safe_text import xml_text
from clusterkit.render.fmt import observed
from clusterkit.results import CheckResult, RunResult


def _details(c: CheckResult) -> str:
    lines = [c.summary]
    for f in c.findings:
        lines.append(f"[{f.severity}] {f.code} {f.headline()}"
                     + (f" ({observed(f)})" if f.observed is not None else "")
                     + (f"\n    action: {f.action}" if f.action else ""))
    return "\n".join(lines)


def render_junit(run: RunResult) -> str:
    root = ET.Element("testsuites", name="clusterkit", timestamp=run.started_at or "")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    suites = [(n.host, n.checks, n) for n in run.nodes]
    if run.cluster_checks:
        suites.append(("cluster", run.cluster_checks, None))
    for name, checks, node in suites:
        ts = ET.SubElement(root, "testsuite", name=name + (" (SIMULATED)" if run.simulated else ""))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        if node is not None and node.outcome != "ok":
            tc = ET.SubElement(ts, "testcase", classname=name, name="host.reachable", time="0")
            ET.SubElement(tc, "error", message=f"{node.outcome}: {node.message or ''}", type=node.outcome).text = node.message
            counts["tests"] += 1
            counts["errors"] += 1
        for c in checks:
            tc = ET.SubElement(ts, "testcase", classname=name, name=c.id, time=f"{c.duration_s:.3f}")
            counts["tests"] += 1
            if c.status == "fail":
                ET.SubElement(tc, "failure", message=c.summary, type="fail").text = _details(c)
                counts["failures"] += 1
            elif c.status == "error":
                ET.SubElement(tc, "error", message=c.summary, type="error").text = _details(c)
                counts["errors"] += 1
            elif c.status == "skip":
                ET.SubElement(tc, "skipped", message=c.summary)
                counts["skipped"] += 1
            elif c.status == "warn":
                ET.SubElement(tc, "system-out").text = "WARNING: " + _details(c)
        for k, v in counts.items():
            ts.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    for el in root.iter():   # evidence text may hold characters XML 1.0 forbids even escaped
        el.text = None if el.text is None else xml_text(el.text)
        for k, v in el.attrib.items():
            el.set(k, xml_text(v))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
