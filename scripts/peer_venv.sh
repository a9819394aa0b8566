#!/usr/bin/env bash
# Makes a virtualenv at DIR with what scripts/peer_tfidf.py needs (scikit-learn, scipy), for
# the side-by-side runs of benches/window.rs. Nothing Python is part of the product.
#
#     scripts/peer_venv.sh /tmp/peer && cargo bench --bench window -- --peer /tmp/peer/bin/python
set -euo pipefail
dir="${1:?usage: scripts/peer_venv.sh DIR}"
python3 -m venv "$dir"
"$dir/bin/pip" install --quiet --disable-pip-version-check scikit-learn scipy
"$dir/bin/python" -c 'import sklearn, scipy; print("peer ready: scikit-learn", sklearn.__version__, "scipy", scipy.__version__)'
