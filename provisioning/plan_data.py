"""The MAX plan as data: what the provisioning plan and the architecture synthesis name.

Sources: ../shared/seeds/000 (the MAX provisioning plan: CT201-CT207 table, per-Eidolon resources,
LXC create parameters, AX42 capacity check) and 002 (the nine Eidolons, 36 CLI agents, the AX42
hardware). The seeds' addresses are data to store and show; the host record points at the local
Proxmox on loopback. ``provisioning.plan`` loads it.
"""

from eidolons.choices import PipelineStage

HOST = {
    "name": "ax42",
    "node": "ax42",
    "cpu_model": "AMD Ryzen 7 PRO 8700GE",
    "cpu_cores": 8,
    "cpu_threads": 16,
    "memory_mb": 64 * 1024,
    "storage_gb": 1024,
    "disks": "2 x 512 GB NVMe",
    "token_id": "root@pam!maxportal",
    "token_secret_env": "MAXPORTAL_PVE_TOKEN_SECRET",
}

# How the portal reaches the host: set when the host is created, then the operator's (or the local
# Proxmox's, manage.py local_proxmox --configure-host) to change, so never reported as a difference.
HOST_CONNECTION_FIELDS = ("token_id", "token_secret_env")

BRIDGE = {"name": "vmbr1", "subnet": "10.0.100.0/24", "gateway": "10.0.100.1"}

# Every MAX container is created with these (provisioning plan, phase 2: pct create ...).
MAX_CONTAINER_DEFAULTS = {
    "cores": 2,
    "memory_mb": 4096,
    "swap_mb": 0,
    "rootfs_gb": 40,
    "storage": "local-lvm",
    "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
    "feature_nesting": True,
    "feature_keyctl": True,
    "unprivileged": True,
    "managed": True,
    "prefix_length": 24,
    "gateway": "10.0.100.1",
}

# CT100 (mach42v2) exists already; the plan knows its cores and memory, not its disk or address.
EXISTING_CONTAINERS = [
    {"vmid": 100, "hostname": "mach42v2", "cores": 6, "memory_mb": 24 * 1024, "rootfs_gb": None, "managed": False},
]

# (vmid, name, slug, role, stage, mailbox, ip) in the order of the provisioning plan's table.
MAX_EIDOLONS = [
    (201, "LILLy", "lilly", "Lead Generator", PipelineStage.LEAD_GEN, "lilly@meetmike.pro", "10.0.100.201"),
    (202, "Mike", "mike", "First Responder", PipelineStage.FIRST_RESPONDER, "mike@meetmike.pro", "10.0.100.202"),
    (203, "Clara", "clara", "Scoping", PipelineStage.SCOPING, "clara@meetmike.pro", "10.0.100.203"),
    (204, "Aria", "aria", "Orchestra/Mockups", PipelineStage.ORCHESTRA, "aria@meetmike.pro", "10.0.100.204"),
    (205, "Finn", "finn", "Closer", PipelineStage.CLOSER, "finn@meetmike.pro", "10.0.100.205"),
    (206, "Anya", "anya", "Onboarding", PipelineStage.ONBOARDING, "anya@meetmike.pro", "10.0.100.206"),
    (207, "Atlas", "atlas", "Delivery PM", PipelineStage.DELIVERY_PM, "atlas@meetmike.pro", "10.0.100.207"),
]

# The core Eidolons support the pipeline and own no stage (architecture synthesis, section 5).
CORE_EIDOLONS = [
    {
        "name": "Mach42v2",
        "slug": "mach42v2",
        "role": "Core Orchestra: strategic oversight, escalation handling, technical scripts, QA",
        "container_vmid": 100,
        "personality_notes": "The proven pattern the MAX Eidolons follow; runs on CT100 on the AX42.",
    },
    {
        "name": "Maestro",
        "slug": "maestro",
        "role": "Core Orchestra: research support and requirement analysis (local)",
        "container_vmid": None,
        "personality_notes": "Local on a MacBook Pro M3 Max (Windsurf devcontainer); no Proxmox container.",
    },
]
