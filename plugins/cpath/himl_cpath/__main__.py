"""``python -m himl_cpath ARGS`` is ``himl cpath ARGS``.

This is how a pathology command runs as a job on any compute backend:
``himl submit --module himl_cpath --compute NAME -- montage slides/ --output outputs/``.
"""

from __future__ import annotations

import sys

from himl_kernel.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["cpath", *sys.argv[1:]]))
