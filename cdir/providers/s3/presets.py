"""S3-compatible services as data: endpoint template, default region, addressing style.

A template's placeholders (`{region}`, `{account_id}`, `{namespace}`) are filled from the
options of the same name. Explicit `endpoint_url`, `region` and `addressing_style` options win
over a preset; a preset that needs an option it was not given fails and names the option.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cdir.errors import UsageError


@dataclass(frozen=True)
class Preset:
    endpoint_url: str | None  # a template; None: the endpoint_url option is needed
    region: str | None  # None: the region option is needed
    addressing_style: str
    notes: str
    endpoint_optional: bool = False  # without endpoint_url, boto3 finds the endpoint itself


PRESETS: dict[str, Preset] = {
    "aws": Preset(
        None, "us-east-1", "virtual", "Amazon S3; give region for buckets outside us-east-1",
        endpoint_optional=True,
    ),
    "wasabi": Preset(
        "https://s3.{region}.wasabisys.com", "us-east-1", "virtual",
        "one service URL per region, e.g. s3.eu-central-1.wasabisys.com",
    ),
    "backblaze-b2": Preset(
        "https://s3.{region}.backblazeb2.com", None, "virtual",
        "region is part of the bucket's endpoint (e.g. us-west-004); use an application key, "
        "not the master key",
    ),
    "cloudflare-r2": Preset(
        "https://{account_id}.r2.cloudflarestorage.com", "auto", "path",
        "account_id is the Cloudflare account ID",
    ),
    "oracle": Preset(
        "https://{namespace}.compat.objectstorage.{region}.oraclecloud.com", None, "path",
        "namespace is the tenancy's Object Storage namespace; customer secret keys",
    ),
    "idrive-e2": Preset(
        None, "us-east-1", "path",
        "the endpoint is per account and region: copy it from the e2 dashboard",
    ),
    "digitalocean-spaces": Preset(
        "https://{region}.digitaloceanspaces.com", "nyc3", "virtual",
        "region is the Spaces datacenter, e.g. nyc3, ams3, fra1",
    ),
    "minio": Preset(None, "us-east-1", "path", "self-hosted: give endpoint_url, e.g. http://host:9000"),
    "ceph": Preset(None, "us-east-1", "path", "Ceph RGW, self-hosted: give endpoint_url"),
    "seaweedfs": Preset(
        None, "us-east-1", "path", "self-hosted: give endpoint_url, e.g. http://host:8333"
    ),
}  # fmt: skip

_PLACEHOLDER = re.compile(r"{(\w+)}")


def resolve_endpoint(conf: Mapping[str, Any]) -> tuple[str | None, str, str]:
    """(endpoint_url, region, addressing_style) from the preset and the explicit options."""
    name = conf.get("preset")
    preset: Preset | None = None
    if name:
        if name not in PRESETS:
            raise UsageError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
        preset = PRESETS[name]
    region = conf.get("region") or (preset.region if preset else None)
    style = conf.get("addressing_style") or (preset.addressing_style if preset else "auto")
    endpoint = conf.get("endpoint_url")
    if not endpoint and preset:
        if preset.endpoint_url:
            values = {**{k: v for k, v in conf.items() if v}, "region": region}

            def fill(m: re.Match[str]) -> str:
                if not values.get(m.group(1)):
                    raise UsageError(f"preset {name!r} needs option {m.group(1)}")
                return str(values[m.group(1)])

            endpoint = _PLACEHOLDER.sub(fill, preset.endpoint_url)
        elif not preset.endpoint_optional:
            raise UsageError(f"preset {name!r} needs option endpoint_url")
    if not region:
        if preset:
            raise UsageError(f"preset {name!r} needs option region")
        region = "us-east-1"
    return endpoint or None, str(region), str(style)
