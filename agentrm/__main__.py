import sys

from agentrm.cli import main

sys.exit(main())
