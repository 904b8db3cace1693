import sys

from detector_cli.main import main

sys.exit(main())
