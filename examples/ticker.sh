#!/usr/bin/env bash
# Prints a line every few seconds (see it with `pmsd logs ticker` or journalctl).
while true; do
    echo "tick $(date +%T)"
    sleep 5
done
