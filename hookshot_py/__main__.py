import sys

from hookshot_py.cli import main

sys.exit(main())
