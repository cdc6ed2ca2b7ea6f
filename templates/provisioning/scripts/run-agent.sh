#!/usr/bin/env bash
# Started by max-agent@<agent>.service: runs the agent's cor-daemon in its tmux session and stays
# alive as long as that session does, so systemd sees the agent and restarts it if it ends.
set -euo pipefail
AGENT="${1:?usage: run-agent.sh <agent>}"
SESSION="max-${AGENT}"

if ! tmux has-session -t "$SESSION" 2>/dev/null; then
    tmux new-session -d -s "$SESSION" -c "$HOME/workspace"
    tmux send-keys -t "$SESSION" "cd ~/workspace && python3 cor-daemon.py ${AGENT}" C-m
fi
while tmux has-session -t "$SESSION" 2>/dev/null; do
    sleep 15
done
echo "tmux session $SESSION ended" >&2
exit 1
