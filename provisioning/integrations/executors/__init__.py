"""Where in-container scripts run: ``ssh`` (pct exec on the node over SSH), ``simulated`` (the local
Proxmox has no containers), ``base`` (what both share), ``errors``, ``factory`` (the executor a host names)."""
