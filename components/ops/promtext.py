"""
The Prometheus text exposition format (version 0.0.4): metric families with
HELP and TYPE lines, label values escaped, numbers as Prometheus reads them.
"""

import math

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
TYPES = ("counter", "gauge")


class Family:
    """One metric: ``name``, ``kind`` (counter or gauge), help text, and samples ``(labels, value)``."""

    def __init__(self, name, kind, help_text):
        if kind not in TYPES:
            raise ValueError("kind must be counter or gauge")
        self.name = name
        self.kind = kind
        self.help_text = help_text
        self.samples = []

    def add(self, value, **labels):
        self.samples.append((labels, value))
        return self


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(int(value))


def render(families):
    """The exposition text of ``families`` (families without samples are left out)."""
    lines = []
    for family in families:
        if not family.samples:
            continue
        lines.append("# HELP {} {}".format(family.name, family.help_text.replace("\\", "\\\\").replace("\n", " ")))
        lines.append("# TYPE {} {}".format(family.name, family.kind))
        for labels, value in family.samples:
            label_text = ",".join('{}="{}"'.format(key, _escape(labels[key])) for key in sorted(labels))
            lines.append("{}{} {}".format(family.name, "{" + label_text + "}" if label_text else "",
                                          _number(value)))
    return "\n".join(lines) + "\n"
