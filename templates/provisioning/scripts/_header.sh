#!/usr/bin/env bash
# maxportal-step: {{ step }}
# maxportal-target: {{ target }}
# {{ title }}: CT{{ vmid }} ({{ hostname }}), Eidolon {{ eidolon_name }} (user {{ user }}).
# Rendered by maxportal from templates/{{ template }}; safe to run again.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
export LC_ALL=C.UTF-8
