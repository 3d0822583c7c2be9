"""`python -m hitl_compliance`: the command line, see [`cli`][hitl_compliance.cli]."""

import sys

from hitl_compliance.cli import main

if __name__ == "__main__":
    sys.exit(main())
