# Sourced by scripts/test: system packages the integration tests use (Debian, as root):
# Chromium (report renders in a browser), bubblewrap (container stand-in), and a real
# SLURM with accounting (hpc/localslurm; the tests start and stop its daemons).
# Without root/apt the tests that need them skip and say why.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  command -v chromium >/dev/null || need+=(chromium)
  command -v bwrap >/dev/null || need+=(bubblewrap)
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} (apt)" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  "$repo/hpc/localslurm/localslurm.sh" install >&2
fi
