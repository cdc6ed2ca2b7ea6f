"""Run the embedded local Proxmox (fakepve as the AX42) in the foreground until stopped.

    python manage.py local_proxmox [--port 8006] [--time-scale 1.0] [--dir var/pve] [--configure-host]

``--configure-host`` points the ax42 ProxmoxHost row at it (loopback URL, CA file, token secret
file, root@pam ticket channel, simulated executor) and puts the host's pre-existing containers
(CT100) on the node. ``make run`` starts it next to the web server and the worker.

The containers are saved to <dir>/state.json every few seconds and at exit, and loaded at start, so
a restart keeps what was provisioned; ``--fresh`` starts with an empty node.
"""

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from provisioning.devtools.local_pve import NODE, configure_local_host, start_local_proxmox
from provisioning.models import Container, ProxmoxHost

STATE_FILE_NAME = "state.json"
SAVE_EVERY_SECONDS = 2.0


class Command(BaseCommand):
    help = "Run the local Proxmox (fakepve dressed as the AX42) on loopback until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=None,
                            help="Loopback port (default MAXPORTAL_PVE_LOCAL_PORT, 8006; 0 picks a free one).")
        parser.add_argument("--time-scale", type=float, default=None,
                            help="Real seconds per Proxmox second (default MAXPORTAL_PVE_LOCAL_TIME_SCALE, 1.0; "
                                 "0 ends tasks before the request returns).")
        parser.add_argument("--dir", default=None,
                            help="Where the CA, token secret and root password files go (default var/pve/).")
        parser.add_argument("--configure-host", action="store_true",
                            help=f"Point the ProxmoxHost row named {NODE!r} at this local Proxmox.")
        parser.add_argument("--host-name", default=NODE, help="The ProxmoxHost row to configure (default ax42).")
        parser.add_argument("--fresh", action="store_true",
                            help="Ignore the saved state: start with an empty node (it is overwritten).")

    def handle(self, *args, **options):
        try:
            local = start_local_proxmox(directory=options["dir"], port=options["port"],
                                        time_scale=options["time_scale"])
        except OSError as exc:
            raise CommandError(
                f"Cannot start the local Proxmox: {exc}. Is another one running? Pick another --port."
            ) from None
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        state_file = local.directory / STATE_FILE_NAME
        try:
            if not options["fresh"]:
                loaded = local.load_state(state_file)
                if loaded:
                    self.stdout.write(f"loaded {loaded} container(s) from {state_file}")
            if options["configure_host"]:
                self._configure(local, options["host_name"])
            self.stdout.write(
                f"local Proxmox listening on {local.url} (node {NODE}, time_scale {local.time_scale:g}); "
                f"CA {local.ca_file}, token {local.token_id} (secret in {local.token_secret_file})",
            )
            self.stdout.flush()
            saved = None
            while not stop.wait(SAVE_EVERY_SECONDS):
                saved = self._save(local, state_file, saved)
            self._save(local, state_file, saved)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        finally:
            local.stop()
            self.stdout.write("local Proxmox stopped")

    @staticmethod
    def _save(local, state_file, previous):
        """Write the state when it changed; returns what was written."""
        current = local.snapshot_state()
        if current != previous:
            local.save_state(state_file)
        return current

    def _configure(self, local, name):
        host = ProxmoxHost.objects.filter(name=name).first()
        if host is None:
            self.stderr.write(
                f"No ProxmoxHost named {name!r} to configure: load the plan first (python manage.py load_max_plan)."
            )
            return
        configure_local_host(host, local)
        existing = [
            {"vmid": c.vmid, "hostname": c.hostname, "cores": c.cores, "memory_mb": c.memory_mb,
             "rootfs_gb": c.rootfs_gb}
            for c in Container.objects.filter(host=host, managed=False)
        ]
        local.seed_containers(existing)
        seeded = ", ".join(f"CT{c['vmid']}" for c in existing) or "none"
        self.stdout.write(f"host {host.name} now points at {host.api_url}; pre-existing containers: {seeded}")
