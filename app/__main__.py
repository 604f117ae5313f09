"""`python -m app` is `sealscope serve`."""

import sys

from app.cli import main

sys.exit(main(sys.argv[1:] or ["serve"]))
