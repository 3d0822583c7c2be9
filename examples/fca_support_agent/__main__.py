"""`python -m examples.fca_support_agent` (from the repository root)."""

import sys

from examples.fca_support_agent.app import main

if __name__ == "__main__":
    sys.exit(main())
