"""The Proxmox VE API through proxmoxer: ``client`` (the calls), ``errors`` (what can go wrong and
how an HTTP answer is classified), ``params`` (a container record as API parameters)."""
