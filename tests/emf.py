"""CloudWatch embedded metric format (EMF): find the documents a handler
printed and check them against the specification
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

MAX_METRICS_PER_DIRECTIVE = 100
MAX_DIMENSION_KEYS = 30
MAX_VALUES_PER_METRIC = 100
UNITS = {
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
}


def emf_documents(output: str) -> list[dict[str, Any]]:
    """Every JSON object on its own line of `output` that carries the `_aws` key."""
    documents = []
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and "_aws" in parsed:
            documents.append(parsed)
    return documents


def emf_problems(document: Any) -> list[str]:
    """What makes `document` invalid EMF; empty when it is valid."""
    if not isinstance(document, dict):
        return ["the root is not an object"]
    meta = document.get("_aws")
    if not isinstance(meta, dict):
        return ["_aws is missing or not an object"]
    problems = []
    timestamp = meta.get("Timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp <= 0:
        problems.append("_aws.Timestamp is not a positive integer of milliseconds")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list) or not directives:
        return [*problems, "_aws.CloudWatchMetrics is not a non-empty array"]
    for n, directive in enumerate(directives):
        at = f"CloudWatchMetrics[{n}]"
        if not isinstance(directive, dict):
            problems.append(f"{at} is not an object")
            continue
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not 1 <= len(namespace) <= 1024:
            problems.append(f"{at}.Namespace is not a 1-1024 character string")
        dimension_sets = directive.get("Dimensions")
        if not isinstance(dimension_sets, list):
            problems.append(f"{at}.Dimensions is not an array")
            dimension_sets = []
        for dimension_set in dimension_sets:
            if not isinstance(dimension_set, list) or not all(isinstance(key, str) for key in dimension_set):
                problems.append(f"{at}.Dimensions holds {dimension_set!r}, not an array of strings")
                continue
            if len(dimension_set) > MAX_DIMENSION_KEYS:
                problems.append(f"{at}: a dimension set has {len(dimension_set)} keys (max {MAX_DIMENSION_KEYS})")
            for key in dimension_set:
                value = document.get(key)
                if not isinstance(value, str) or not 1 <= len(value) <= 1024:
                    problems.append(f"dimension {key!r} has no 1-1024 character string value at the root")
        metrics = directive.get("Metrics")
        if not isinstance(metrics, list) or not metrics:
            problems.append(f"{at}.Metrics is not a non-empty array")
            continue
        if len(metrics) > MAX_METRICS_PER_DIRECTIVE:
            problems.append(f"{at} has {len(metrics)} metrics (max {MAX_METRICS_PER_DIRECTIVE})")
        for definition in metrics:
            name = definition.get("Name") if isinstance(definition, dict) else None
            if not isinstance(name, str) or not 1 <= len(name) <= 1024:
                problems.append(f"{at}.Metrics holds {definition!r} without a 1-1024 character Name")
                continue
            if "Unit" in definition and definition["Unit"] not in UNITS:
                problems.append(f"metric {name!r} has unit {definition['Unit']!r}, not a CloudWatch unit")
            if definition.get("StorageResolution", 60) not in (1, 60):
                problems.append(f"metric {name!r} has a StorageResolution other than 1 or 60")
            value = document.get(name)
            values = value if isinstance(value, list) else [value]
            if not values or len(values) > MAX_VALUES_PER_METRIC:
                problems.append(f"metric {name!r} has {len(values)} values (1 to {MAX_VALUES_PER_METRIC})")
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
                problems.append(f"metric {name!r} has no numeric value at the root: {value!r}")
    return problems


def metric_values(documents: Iterable[dict[str, Any]], name: str, **dimensions: str) -> list[float]:
    """The values of `name` in documents declaring exactly the dimension set
    `service` + the given dimensions, with those dimension values."""
    wanted = sorted(["service", *dimensions])
    found: list[float] = []
    for document in documents:
        for directive in document["_aws"]["CloudWatchMetrics"]:
            if name not in {m["Name"] for m in directive["Metrics"]}:
                continue
            if wanted not in [sorted(keys) for keys in directive["Dimensions"]]:
                continue
            if any(document.get(key) != value for key, value in dimensions.items()):
                continue
            value = document[name]
            found.extend(value if isinstance(value, list) else [value])
    return found


def metric_names(documents: Iterable[dict[str, Any]]) -> set[str]:
    return {m["Name"] for d in documents for directive in d["_aws"]["CloudWatchMetrics"] for m in directive["Metrics"]}


# ------------------------------------------------------- business records --
# The JSON lines `nurture.core.observability` prints for every business count,
# which the dashboard's Logs Insights widgets read.


def business_records(output: str) -> list[dict[str, Any]]:
    """Every JSON object on its own line of `output` that names a business event."""
    from nurture.core.observability import BUSINESS_EVENT

    records = []
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict) and BUSINESS_EVENT in parsed and "_aws" not in parsed:
            records.append(parsed)
    return records


def record_values(records: Iterable[dict[str, Any]], name: str, **fields: str) -> list[float]:
    """The values of the business records of `name` whose fields have the given values."""
    from nurture.core.observability import BUSINESS_EVENT

    return [
        record[name]
        for record in records
        if record[BUSINESS_EVENT] == name and all(record.get(key) == value for key, value in fields.items())
    ]


def record_names(records: Iterable[dict[str, Any]]) -> set[str]:
    from nurture.core.observability import BUSINESS_EVENT

    return {record[BUSINESS_EVENT] for record in records}
