#!/usr/bin/env bash
# Builds bench/fanout/client (the C++ load client of bench/fanout.py) from client.cc.
set -euo pipefail
g++ -O2 -std=c++17 -o "$(dirname "$0")/client" "$(dirname "$0")/client.cc"
