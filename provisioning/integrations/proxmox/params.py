"""A container record as Proxmox API parameters, and which parameters only root@pam may set.

An API token is never root@pam (its identity is ``root@pam!name``): Proxmox refuses it feature
flags other than ``nesting`` and mount points with a host path. ``create_params`` is what a token
may send to create the container; ``root_features`` is what follows through the root channel.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from provisioning.models import Container

MOUNT_SLOT_RE = re.compile(r"^mp\d+$")


def net0_of(container: Container) -> str:
    """The net0 value: name=eth0,bridge=vmbr1,ip=10.0.100.201/24,gw=10.0.100.1,type=veth ('' without a bridge)."""
    if not container.bridge_id:
        return ""
    parts = ["name=eth0", f"bridge={container.bridge.name}"]
    if container.ip_address:
        prefix = container.prefix_length or container.bridge.network.prefixlen
        parts.append(f"ip={container.ip_address}/{prefix}")
        gateway = container.gateway or container.bridge.gateway
        if gateway:
            parts.append(f"gw={gateway}")
    else:
        parts.append("ip=dhcp")
    parts.append("type=veth")
    return ",".join(parts)


def create_params(container: Container) -> dict:
    """The POST /nodes/{node}/lxc parameters of a container record, as a token may send them."""
    params = {
        "vmid": container.vmid,
        "ostemplate": container.ostemplate,
        "hostname": container.hostname,
        "cores": container.cores,
        "memory": container.memory_mb,
        "swap": container.swap_mb,
        "rootfs": f"{container.storage}:{container.rootfs_gb}",
        "unprivileged": 1 if container.unprivileged else 0,
        "start": 0,
    }
    if container.storage:
        params["storage"] = container.storage
    net0 = net0_of(container)
    if net0:
        params["net0"] = net0
    if container.feature_nesting:
        # The only feature flag a token may set; keyctl follows through the root channel.
        params["features"] = "nesting=1"
    return params


def root_features(container: Container) -> dict:
    """The config a token cannot set at create: ``{"features": "nesting=1,keyctl=1"}`` or {}."""
    if not container.feature_keyctl:
        return {}
    flags = (["nesting=1"] if container.feature_nesting else []) + ["keyctl=1"]
    return {"features": ",".join(flags)}


def flags(text) -> dict[str, str]:
    """``"nesting=1,keyctl=yes"`` as ``{"nesting": "1", "keyctl": "1"}`` (Proxmox's boolean spellings)."""
    out = {}
    for part in str(text or "").split(","):
        key, eq, value = part.partition("=")
        if eq and key:
            out[key.strip()] = {"true": "1", "false": "0", "yes": "1", "no": "0", "on": "1", "off": "0"}.get(
                value.strip().lower(), value.strip())
    return out


def root_only_params(params: dict, current_features: Callable[[], str]) -> list[str]:
    """The parameters a token cannot set (and root@pam can): feature flags other than nesting
    that change, mount points with a host path (bind or device), devN, hookscript, raw lxc keys.
    ``current_features`` reads the container's features (only called when ``features`` is set)."""
    needed = []
    for key, value in params.items():
        if key == "features":
            current = flags(current_features())
            wanted = flags(value)
            changed = {k for k in set(current) | set(wanted) if current.get(k) != wanted.get(k)}
            if changed - {"nesting"}:
                needed.append(key)
        elif (MOUNT_SLOT_RE.match(key) and str(value).split(",")[0].startswith("/")) or (
            re.fullmatch(r"dev\d+", key) or key == "hookscript" or key.startswith("lxc")
        ):
            needed.append(key)
    return needed
