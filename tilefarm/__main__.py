import sys

from tilefarm.cli.main import main

sys.exit(main())
